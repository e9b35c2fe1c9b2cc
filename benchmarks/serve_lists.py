"""Every item's neighbour list for a prepared serving dataset, found once and saved where a
server finds it at start (`<data dir>/neighbours.npz`, beside the saved item table): what a
running server's sync builds in the background over its first minutes (`medley.recs.neighbours`),
done ahead of the measured runs, as the index's HNSW build is. Run while no server holds the
index: one process at a time may open it."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.report import publish
from benchmarks.serve_data import bench_settings


def build(data_dir: Path) -> dict[str, float]:
    from medley.recs import neighbours
    from medley.recs.service import Recommendations
    from workers.runtime import Runtime

    settings = bench_settings(data_dir)
    rt = Runtime.build(settings)
    try:
        rt.index()
        recs = Recommendations(settings, rt.db, rt.models, rt.index, lambda: None)
        started = time.perf_counter()
        recs.sync.catch_up()
        ready_s = time.perf_counter() - started
        table = recs.rec.table
        started = time.perf_counter()
        searched = neighbours.fill(recs.rec.neighbours, table, recs.index_search,
                                   len(table.ids))
        fill_s = time.perf_counter() - started
        recs.sync.save_neighbours()
        if recs.sync._lists_writer is not None:
            recs.sync._lists_writer.join()
    finally:
        rt.close()
    return {"catch_up_s": round(ready_s, 1), "lists_searched": searched,
            "lists_s": round(fill_s, 1), "lists": len(recs.rec.neighbours),
            "ms_per_list": round(fill_s / max(searched, 1) * 1000, 2)}


def report(result: dict[str, float], commit: str) -> str:
    return "\n".join([
        "# Item neighbour lists for the serving dataset (`python -m benchmarks.serve_lists`)", "",
        f"Commit {commit}; {result['lists']:,} lists found by {result['lists_searched']:,} index "
        f"searches in {result['lists_s']} s in one process ({result['ms_per_list']} ms each: "
        "the search and the list's insertion into its neighbours'), after the serving state "
        f"was built ({result['catch_up_s']} s). A running server's sync does the same at "
        "200 lists a second beside the requests, and saves them for its next start.", ""])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.serve_lists", description=__doc__)
    p.add_argument("--data-dir", type=Path, required=True, help="a prepared bench-serve dataset")
    p.add_argument("--out", type=Path, help="also write serve-lists.json / .md here")
    p.add_argument("--fresh", action="store_true",
                   help="ignore lists saved before (time a first build)")
    args = p.parse_args(argv)
    if args.fresh:
        (args.data_dir / "neighbours.npz").unlink(missing_ok=True)
    result = build(args.data_dir)
    if args.out is not None:
        print(publish(args.out, "serve-lists", result, report))
    print(json.dumps(result))  # last line: what `benchmarks.serve` reads
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
