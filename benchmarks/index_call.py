"""What an index search costs through the index process (index/process.py) against the same
search in the calling process, on a prepared `python -m benchmarks serve` dataset's shard: wall
time, the caller's CPU (what holds the serving process's GIL) and the index process's CPU, per
search, one thread, fused (2,304-d) and text (384-d) queries.

    python -m benchmarks.index_call --data-dir data/bench-serve --out bench

writes `index-call.json` and `index-call.md`. Run it with the server stopped (one process at a
time may open the shard).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import table, write_report

SEARCHES = 300
LIMIT = 100


def _cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _time(idx: Any, using: str, queries: list[list[float]], pid: int | None) -> dict[str, float]:
    for q in queries[:10]:
        idx.search(using, q, LIMIT, with_payload=False)  # warm
    wall, cpu, child = time.perf_counter(), time.process_time(), _cpu_s(pid)
    for q in queries:
        idx.search(using, q, LIMIT, with_payload=False)
    n = len(queries)
    return {"wall_ms": round((time.perf_counter() - wall) / n * 1000, 2),
            "caller_cpu_ms": round((time.process_time() - cpu) / n * 1000, 2),
            "index_process_cpu_ms": round((_cpu_s(pid) - child) / n * 1000, 2)}


def measure(data_dir: Path) -> dict[str, Any]:
    from benchmarks.serve_data import bench_settings
    from index.base import FUSED
    from index.process import IndexProcess, remote
    from workers.runtime import Runtime

    settings = bench_settings(data_dir).model_copy(update={"index_process": True})
    rt = Runtime.build(settings)
    dims = rt.named_dims()
    rng = np.random.default_rng(0)
    queries = {using: [rng.standard_normal(dims[using]).astype(np.float32).tolist()
                       for _ in range(SEARCHES)] for using in (FUSED, "text")}
    out: dict[str, Any] = {"searches": SEARCHES, "limit": LIMIT, "rows": []}
    local = rt.index()
    for using, qs in queries.items():
        out["rows"].append({"how": "in the calling process", "using": using,
                            **_time(local, using, qs, None)})
    rt.close()  # the shard's lock goes with it: the child opens the same shard
    proc = IndexProcess(settings)
    proc.start(dims)
    try:
        through = remote(settings)
        for using, qs in queries.items():
            out["rows"].append({"how": "through the index process", "using": using,
                                **_time(through, using, qs, proc.pid())})
    finally:
        proc.stop()
    return out


def report(result: dict[str, Any]) -> str:
    rows = [[r["how"], r["using"], r["wall_ms"], r["caller_cpu_ms"], r["index_process_cpu_ms"]]
            for r in result["rows"]]
    return "\n".join([
        "# An index search through the index process (`python -m benchmarks.index_call`)", "",
        f"{result['searches']} searches per row, limit {result['limit']}, one thread, random "
        "queries, on the `python -m benchmarks serve` dataset's shard (100,000 points, int8). "
        "*Caller CPU* is what the serving process spends (holding its GIL); *index process CPU* is "
        "the child's.", "",
        table(["how", "vector", "wall ms", "caller CPU ms", "index process CPU ms"], rows), "",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.index_call", description=__doc__)
    p.add_argument("--data-dir", type=Path, default=Path("data/bench-serve"))
    p.add_argument("--out", type=Path, default=Path("bench"))
    a = p.parse_args(argv)
    result = measure(a.data_dir)
    write_report(a.out, "index-call", result, report(result))
    print(report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
