"""Timing beside a peer on a shared, noisy machine: interleave the runs, report the median."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def interleaved(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    for run in runs.values():
        run()  # warm-up: allocations, lazy init, caches
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for k, run in runs.items():
            start = time.perf_counter()
            run()
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}
