"""What an exposure costs to keep: `python -m benchmarks.exposure_size [--rows N] [--out DIR]`
inserts N exposures of 10 UUID-named items (as `medley.experiments` writes them) into a fresh
SQLite database, once with the items packed and once with the ids as newline-joined text, and
reports bytes per row (table and indexes, after a WAL checkpoint) and insert rate; then times
the per-arm metrics and comparisons one results read (or guardrail check) computes over that
many exposures -> `exposure-size.json` + `exposure-size.md`."""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.report import table, write_report
from medley.db import Database
from medley.experiments import store
from medley.experiments.packing import pack

BATCH = 5000


def measure(rows: int, packed: bool, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    items = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(5000)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exposures.db"
        db = Database(f"sqlite:///{path}")
        db.migrate()
        with db.engine.connect() as c:
            c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        empty = path.stat().st_size
        started = time.perf_counter()
        for k in range(0, rows, BATCH):
            shown = [rng.sample(items, 10) for _ in range(min(BATCH, rows - k))]
            with db.session() as s:
                store.write_exposures(s, [{
                    "recommendation_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "experiment_id": 1, "arm": rng.choice(("control", "treatment")),
                    "user_id": f"user-{rng.randrange(200_000)}", "surface": "recommendations",
                    "ts": time.time(), "items": pack(ids) if packed else "\n".join(ids).encode(),
                    "teams": None, "ms": 12.3} for ids in shown])
        seconds = time.perf_counter() - started
        with db.engine.connect() as c:
            c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        size = path.stat().st_size - empty
        db.dispose()
    return {"items": "packed" if packed else "text", "rows": rows,
            "bytes_per_row": round(size / rows), "mb_per_million": round(size / rows, 0),
            "rows_per_s": round(rows / seconds)}


def metrics_cost(rows: int, seed: int = 0) -> dict[str, Any]:
    """CPU seconds of `online.per_arm` + `verdict.compare_arms` over `rows` exposures of
    rows / 4 users, a click on every seventh answer (the reads from the database excluded)."""
    from medley.experiments.online import Shown, per_arm
    from medley.experiments.spec import Arm
    from medley.experiments.verdict import compare_arms

    rng = random.Random(seed)
    items = [f"item-{k}" for k in range(5000)]
    shown = [Shown(f"r{k}", ("control", "treatment")[k % 2], f"u{k % max(rows // 4, 1)}",
                   float(k), rng.sample(items, 10)) for k in range(rows)]
    clicks = [(x.recommendation_id, x.items[0], "view", None) for x in shown[::7]]
    started = time.process_time()
    compare_arms((Arm("control"), Arm("treatment")),
                 per_arm(shown, clicks, {}, now=1e12, is_new=lambda i, t: False,
                         catalog_size=len(items)))
    return {"exposures": rows, "users": rows // 4, "clicks": len(clicks),
            "cpu_s": round(time.process_time() - started, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("bench"))
    args = parser.parse_args()
    runs = [measure(args.rows, packed=True), measure(args.rows, packed=False)]
    cost = metrics_cost(2 * args.rows)
    md = "\n".join([
        "# Exposure storage (`python -m benchmarks.exposure_size`)", "",
        f"{args.rows:,} exposures of 10 UUID-named items each in a fresh SQLite database "
        "(table and its three indexes, after a WAL checkpoint); the machine may be busy, so "
        "read the insert rate as a floor.", "",
        table(["items stored as", "bytes per exposure", "MB per million answers",
               "inserts per second"],
              [[r["items"], r["bytes_per_row"], r["mb_per_million"], r["rows_per_s"]]
               for r in runs]), "",
        f"One results read (or guardrail check) over {cost['exposures']:,} exposures of "
        f"{cost['users']:,} users with {cost['clicks']:,} clicks: {cost['cpu_s']} s of CPU for "
        "the per-arm metrics and comparisons (`online.per_arm` + `verdict.compare_arms`), "
        "the database reads not included."])
    write_report(args.out, "exposure-size", {"runs": runs, "metrics_cost": cost}, md)
    print(md)


if __name__ == "__main__":
    main()
