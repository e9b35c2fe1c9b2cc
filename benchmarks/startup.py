"""`python -m benchmarks.startup`: how long `medley serve` takes until recommendations are
ready, and how much memory its processes hold then, for this checkout's code beside another
(`--baseline DIR`: a worktree of the commit before a change), alternating, on the serving
bench's dataset.

Each round, for each code: a start with no saved item table (what the code saves on its
first start is then in place), a restart, and a restart with two API processes (memory as
PSS, so pages the processes share count once). The behaviour snapshot a first start saves is
kept throughout, so every start tails the events instead of replaying them all: the figures
are restarts, which is what an operator waits through after a deploy or a crash.
-> `<out>/startup.json` + `<out>/startup.md`.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.report import head_commit, table, write_report
from benchmarks.serve import start
from benchmarks.serve_data import DataSpec, prepare, restore
from benchmarks.serve_proc import snapshot_code

KEPT = ("listening_s", "models_probed_s", "recommendations_ready_s", "rss_mib", "pss_mib")
STEPS = (("cold", 1), ("restart", 1), ("restart", 2))


def _clear_item_table(data_dir: Path) -> None:
    for p in data_dir.glob("items.table*"):
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def run(out: Path, data_dir: Path, baseline: Path | None, rounds: int,
        say: Callable[[str], None] = print) -> dict[str, Any]:
    spec = DataSpec()
    manifest = prepare(data_dir, spec, say=say)
    codes = {"after": snapshot_code(data_dir / "code")}
    if baseline is not None:
        codes = {"before": baseline, **codes}
    restore(data_dir, manifest)
    rows: list[dict[str, Any]] = []
    for k in range(rounds):
        for label, code in codes.items():
            _clear_item_table(data_dir)
            for step, processes in STEPS:
                server, got = start(data_dir, code, spec, say,
                                    {"MEDLEY_API_PROCESSES": str(processes)})
                server.stop()
                rows.append({"round": k + 1, "code": label, "start": step,
                             "processes": processes, **{f: got.get(f) for f in KEPT}})
                say(str(rows[-1]))
    return {"machine": {"platform": platform.platform(), "python": platform.python_version()},
            "commit": head_commit(), "baseline": str(baseline) if baseline else None,
            "dataset": {"items": spec.items, "events": spec.events}, "runs": rows,
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def render(data: dict[str, Any]) -> str:
    body = table(["round", "code", "start", "API processes", "answering s",
                  "recommendations ready s", "RSS MiB (first process)", "PSS MiB (all)"],
                 [[r["round"], r["code"], r["start"], r["processes"], r["listening_s"],
                   r["recommendations_ready_s"], r["rss_mib"], r["pss_mib"]]
                  for r in data["runs"]])
    return f"""# Start-up of `medley serve` (`python -m benchmarks.startup`)

{data['dataset']['items']:,} items, {data['dataset']['events']:,} events (the serving bench's
dataset), embedded default, {data['machine']['platform']}, {data['when']}; code {data['commit']}
("after") beside {data['baseline'] or 'nothing'} ("before"), alternating. "cold": no saved item
table; "restart": the one the previous start saved (the code before the change has none). The
behaviour snapshot is in place for every start, so none replays the whole event log.
Ready: every API process reports recommendations ready with every item, event and the model.

{body}
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path("data/bench-serve"))
    ap.add_argument("--baseline", type=Path, default=None,
                    help="a checkout of the code to compare with (e.g. a git worktree)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench"))
    a = ap.parse_args(argv)
    data = run(a.out, a.data_dir, a.baseline, a.rounds)
    for path in write_report(a.out, "startup", data, render(data)):
        print(path)


if __name__ == "__main__":
    main()
