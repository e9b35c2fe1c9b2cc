"""What the whole-catalogue scan costs a request: the ALS top items of a for-you request
(`CollabModel.top_for_user`) and `similar`'s item neighbours scan every item's factors. The
stored model of a prepared `python -m benchmarks serve` dataset, the same user vectors
through the served scan (torch's matrix-vector product and top-k, `collab._top`) and through
the numpy product and argpartition it replaced, alternating, CPU time of this process.

    python -m benchmarks.scan_cost --data-dir data/bench-serve --out bench

writes `scan-cost.json` and `scan-cost.md`. Run it with the server stopped.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import publish
from benchmarks.serve_data import bench_settings, stored_model

ROUNDS = 3  # served, numpy, served, numpy...: drift on a noisy machine hits both alike
N = 150  # items asked for: candidates per source (100) plus what a user already consumed


def numpy_top(matrix: np.ndarray, vec: np.ndarray, n: int) -> list[int]:
    """The scan before torch: numpy's product, argpartition, then the n sorted."""
    s = matrix @ vec
    part = np.argpartition(-s, n - 1)[:n]
    return [int(i) for i in part[np.argsort(-s[part])]]


def _cpu_ms(call: Callable[[np.ndarray], Any], vecs: np.ndarray) -> float:
    for v in vecs[:10]:
        call(v)  # warm: lazy imports
    started = time.process_time()
    for v in vecs:
        call(v)
    return (time.process_time() - started) / len(vecs) * 1000


def measure(data_dir: Path, calls: int) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    from medley.db import Database
    from medley.recs.collab import _top

    threadpool_limits(1, user_api="blas")  # as `api.service.Service.start` does
    db = Database(bench_settings(data_dir).resolved_database_url)
    model = stored_model(db)
    db.dispose()
    rng = np.random.default_rng(0)
    vecs = model.user_factors[rng.choice(len(model.user_factors), calls, replace=False)]
    factors = model.item_factors
    modes: dict[str, Callable[[np.ndarray], Any]] = {
        "served (torch)": lambda v: _top(factors, v, N),
        "numpy (before)": lambda v: numpy_top(factors, v, N),
    }
    runs: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(ROUNDS):
        for mode, call in modes.items():
            runs[mode].append(round(_cpu_ms(call, vecs), 3))
    # the two scans must find the same items (ties aside)
    same = np.mean([len({i for i, _ in _top(factors, v, N)} & set(numpy_top(factors, v, N))) / N
                    for v in vecs])
    return {"items": int(factors.shape[0]), "factors": int(factors.shape[1]), "n": N,
            "calls": calls, "rounds": ROUNDS, "cores": os.cpu_count(), "runs_ms": runs,
            "median_ms": {m: float(np.median(r)) for m, r in runs.items()},
            "same_items": round(float(same), 4)}


def report(r: dict[str, Any], commit: str) -> str:
    lines = ["# The whole-catalogue scan of a request (`python -m benchmarks.scan_cost`)", "",
             f"The dataset's stored model: {r['items']:,} items x {r['factors']} factors; top "
             f"{r['n']} for {r['calls']} stored user vectors, {r['rounds']} alternating runs per "
             f"scan, CPU ms per call (median of runs); {r['cores']} cores; commit {commit}. The "
             f"two scans found the same items for {r['same_items']:.2%} of the top {r['n']}.", "",
             "| scan | CPU ms per call | runs |", "|---|---|---|"]
    lines += [f"| {m} | {r['median_ms'][m]:.3f} | {r['runs_ms'][m]} |" for m in r["runs_ms"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scan_cost", description=__doc__)
    p.add_argument("--data-dir", type=Path, required=True, help="a prepared bench-serve dataset")
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--out", type=Path, default=Path("bench"), help="report folder")
    a = p.parse_args(argv)
    result = measure(a.data_dir, a.calls)
    print(publish(a.out, "scan-cost", result, report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
