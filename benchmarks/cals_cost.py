"""What one CALS fit costs the training task: the stored model's users and items on a prepared
`python -m benchmarks serve` dataset, CALS fitted as the task fits it (`fitting.fit_cals`) once
per cap on the items it is fitted on (`fitting.MAX_CALS_ITEMS`), wall time.

    python -m benchmarks.cals_cost --data-dir data/bench-serve --caps 20000,1000000 --out bench

writes `cals-cost.json` and `cals-cost.md`. Run it with the server stopped.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.report import publish
from benchmarks.serve_data import bench_settings, stored_model


def measure(data_dir: Path, caps: list[int]) -> dict[str, Any]:
    from enrich.registry import Models
    from medley.db import Database
    from medley.recs import fitting, store
    from medley.recs.training import catalog

    settings = bench_settings(data_dir)
    db = Database(settings.resolved_database_url)
    with db.session() as s:
        last = store.max_seq(s)
        rows = [(q, e) for q, e in store.events_after(s, 0) if q <= last]
    model = stored_model(db)
    models = Models(settings.models, max_media_seconds=settings.max_media_seconds)
    table = catalog(db, settings, models.dims())
    out: dict[str, Any] = {"items": len(model.item_ids), "users": len(model.user_ids),
                           "events": len(rows), "cores": os.cpu_count(), "fits": []}
    kept = fitting.MAX_CALS_ITEMS
    try:
        for cap in caps:
            fitting.MAX_CALS_ITEMS = cap
            started = time.perf_counter()
            fitted = fitting.fit_cals(table, model, rows, settings)
            out["fits"].append({"cap": cap, "items_fitted": min(cap, len(model.item_ids)),
                                "seconds": round(time.perf_counter() - started, 1),
                                "fitted": fitted is not None})
    finally:
        fitting.MAX_CALS_ITEMS = kept
    return out


def report(result: dict[str, Any], commit: str) -> str:
    lines = ["# What one CALS fit costs the training task (`python -m benchmarks.cals_cost`)", "",
             f"The stored model of the dataset: {result['items']:,} items with events, "
             f"{result['users']:,} users, {result['events']:,} events; {result['cores']} cores; "
             f"commit {commit}. The training task fits CALS twice (the model, and the check on "
             "held-out items).", "", "| items fitted on (cap) | seconds |", "|---|---|"]
    lines += [f"| {f['items_fitted']:,} ({f['cap']:,}) | {f['seconds']} |" for f in result["fits"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cals_cost", description=__doc__)
    p.add_argument("--data-dir", type=Path, required=True, help="a prepared bench-serve dataset")
    p.add_argument("--caps", default="20000,1000000", help="item caps, comma-separated")
    p.add_argument("--out", type=Path, default=Path("bench"), help="report folder")
    a = p.parse_args(argv)
    result = measure(a.data_dir, [int(c) for c in a.caps.split(",") if c.strip()])
    print(publish(a.out, "cals-cost", result, report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
