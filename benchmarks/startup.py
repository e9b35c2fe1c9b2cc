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
import json
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.report import head_commit, table, write_report
from benchmarks.serve_data import INPUTS, DataSpec, prepare, restore
from benchmarks.serve_proc import Server, pss_mib, snapshot_code, tree

KEPT = ("listening_s", "models_probed_s", "recommendations_ready_s", "rss_mib", "pss_mib")
STEPS = (("cold", 1), ("restart", 1), ("restart", 2))
TRAFFIC = 300  # for-you and similar requests after ready, before memory is read again


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
    inputs = json.loads((data_dir / INPUTS).read_text())
    rows: list[dict[str, Any]] = []
    for k in range(rounds):
        for label, code in codes.items():
            _clear_item_table(data_dir)
            for step, processes in STEPS:
                server = Server(data_dir, code, {"MEDLEY_API_PROCESSES": str(processes)})
                try:
                    got = server.wait_ready(spec.items, spec.events, lambda _: None)
                    after = _traffic(server, inputs)
                finally:
                    server.stop()
                rows.append({"round": k + 1, "code": label, "start": step,
                             "processes": processes, **{f: got.get(f) for f in KEPT},
                             "pss_after_traffic_mib": after})
                say(str(rows[-1]))
    return {"machine": {"platform": platform.platform(), "python": platform.python_version()},
            "commit": head_commit(), "baseline": _commit_of(baseline) if baseline else None,
            "dataset": {"items": spec.items, "events": spec.events}, "runs": rows,
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def _commit_of(checkout: Path) -> str:
    done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)
    return f"commit {done.stdout.strip()}" if done.returncode == 0 else str(checkout)


def _traffic(server: Server, inputs: dict[str, Any]) -> float:
    """PSS of the server's processes after TRAFFIC answers (pages a start maps are read in
    as requests touch them: memory at ready alone would flatter a mapped table)."""
    headers = {"Authorization": f"Bearer {server.client_key}", "Connection": "close"}
    with httpx.Client(base_url=server.base, timeout=60, headers=headers) as client:
        for k in range(TRAFFIC):
            if k % 2:
                path = f"/v1/users/{inputs['users'][k % len(inputs['users'])]}/recommendations"
            else:
                path = f"/v1/items/{inputs['items'][k % len(inputs['items'])]}/similar"
            client.get(path).raise_for_status()
    return pss_mib(tree(server.proc.pid))


def render(data: dict[str, Any]) -> str:
    body = table(["round", "code", "start", "API processes", "answering s",
                  "recommendations ready s", "PSS MiB when ready",
                  f"PSS MiB after {TRAFFIC} answers"],
                 [[r["round"], r["code"], r["start"], r["processes"], r["listening_s"],
                   r["recommendations_ready_s"], r["pss_mib"], r["pss_after_traffic_mib"]]
                  for r in data["runs"]])
    return f"""# Start-up of `medley serve` (`python -m benchmarks.startup`)

{data['dataset']['items']:,} items, {data['dataset']['events']:,} events (the serving bench's
dataset), embedded default, {data['machine']['platform']}, {data['when']}; code {data['commit']}
("after") beside {data['baseline'] or 'nothing'} ("before"), alternating. "cold": no saved item
table; "restart": the one the previous start saved (the code before the change has none). The
behaviour snapshot is in place for every start, so none replays the whole event log (but the
run's very first start, when the dataset has no snapshot yet: it replays and saves one).
Ready: every API process reports recommendations ready with every item, event and the model.
PSS: the server's processes together (the index process included), pages they share counted
once; read when ready and again after {TRAFFIC} for-you and similar answers.

{body}
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path("data/bench-serve"))
    ap.add_argument("--baseline", type=Path, default=None,
                    help="a checkout of the code to compare with (e.g. a git worktree)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench"))
    ap.add_argument("--render", type=Path, default=None,
                    help="write the markdown again from this JSON report, measuring nothing")
    a = ap.parse_args(argv)
    data = (json.loads(a.render.read_text()) if a.render
            else run(a.out, a.data_dir, a.baseline, a.rounds))
    for path in write_report(a.out, "startup", data, render(data)):
        print(path)


if __name__ == "__main__":
    main()
