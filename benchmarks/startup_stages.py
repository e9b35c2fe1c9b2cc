"""`python -m benchmarks.startup_stages`: the pieces of a serving start-up that
`python -m benchmarks.startup` does not time one by one, each in a fresh process on the serving
bench's dataset: reading CLIP's vector size (the architecture's JSON, as the code reads it now,
beside importing open_clip, as it did before); opening the embedded index (time, resident
memory); predicting every item's content-map outputs for the stored model (what a start no
longer waits for). -> `<out>/startup-stages.json` + `.md`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.report import publish, table

STAGES: dict[str, str] = {
    "clip size from the JSON file (now)": """
import time; t = time.perf_counter()
from medley.config import Settings
from enrich.clip import architecture
architecture(Settings())
out = {"s": time.perf_counter() - t}
""",
    "clip size through open_clip (before)": """
import time; t = time.perf_counter()
import open_clip
open_clip.get_model_config("ViT-B-32")
out = {"s": time.perf_counter() - t}
""",
    "index open": """
import os, time
from pathlib import Path
from benchmarks.serve_data import bench_settings
from enrich.registry import Models
from index.edge import EdgeIndex
from medley import indexing
s = bench_settings(DATA)
dims = indexing.named_dims(Models(s.models, max_media_seconds=s.max_media_seconds).dims())
t = time.perf_counter()
index = EdgeIndex(s.index_dir / s.collection)  # kept open while its memory is read
index.ensure(dims)
out = {"s": time.perf_counter() - t, "points": index.count()}
for line in open(f"/proc/{os.getpid()}/status"):
    if line.startswith(("RssAnon", "RssFile")):
        out[line.split(":")[0] + "_mib"] = int(line.split()[1]) // 1024
""",
    "content-map predictions, every item": """
import time
from benchmarks.serve_data import bench_settings, stored_model
from enrich.registry import Models
from medley.db import Database
from medley.recs import table_file
from medley.recs.items import ItemTable
from medley.recs.predicted import Predicted
s = bench_settings(DATA)
table = ItemTable(Models(s.models, max_media_seconds=s.max_media_seconds).dims())
assert table_file.load(s.items_snapshot_file, table) is not None, "start the server once"
model = stored_model(Database(s.resolved_database_url))
t = time.perf_counter()
Predicted(model).warm(table)
out = {"s": time.perf_counter() - t, "items": len(table)}
""",
}


def _once(code: str, data_dir: Path) -> dict[str, Any]:
    script = (f"from pathlib import Path\nDATA = Path({str(data_dir.resolve())!r})\n{code}\n"
              "import json\nprint(json.dumps(out))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def measure(data_dir: Path, repeats: int) -> dict[str, Any]:
    rows = {}
    for name, code in STAGES.items():
        runs = [_once(code, data_dir) for _ in range(repeats)]
        rows[name] = {"median_s": round(statistics.median(r["s"] for r in runs), 2),
                      "runs": runs}
        print(name, rows[name]["median_s"])
    return {"data_dir": str(data_dir), "repeats": repeats, "stages": rows}


def report(result: dict[str, Any], commit: str) -> str:
    def extra(r: dict[str, Any]) -> str:
        last = r["runs"][-1]
        return ", ".join(f"{k} {v}" for k, v in last.items() if k != "s") or "-"

    body = table(["stage", "seconds (median)", "runs (s)", "also (last run)"],
                 [[name, r["median_s"], [round(x["s"], 2) for x in r["runs"]], extra(r)]
                  for name, r in result["stages"].items()])
    return f"""# Start-up stages (`python -m benchmarks.startup_stages`)

Each stage in a fresh process, {result['repeats']} times, on `{result['data_dir']}` (the serving
bench's dataset, 100,000 items); code {commit}. The CLIP rows include the interpreter's imports
each needs; "index open" is `EdgeIndex.ensure` on the dataset's shard, with the process's
resident memory after it (MiB); the predictions are `Predicted.warm` for the stored model over
the saved item table.

{body}
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.startup_stages", description=__doc__)
    p.add_argument("--data-dir", type=Path, default=Path("data/bench-serve"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("bench"), help="report folder")
    a = p.parse_args(argv)
    print(publish(a.out, "startup-stages", measure(a.data_dir, a.repeats), report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
