"""`python -m benchmarks scale`: throughput of the embedded default with 1, 2 and 4 API processes.

The dataset of `python -m benchmarks serve`. For each process count the same server starts with
`MEDLEY_API_PROCESSES=N` (`medley serve --workers N`): the first process owns the index and the
worker; index calls go to the index process it starts (index/process.py), or, with
MEDLEY_INDEX_PROCESS=false, to the owner itself (medley/owner.py). Once every process reports
ready, each read endpoint is driven at 16 clients (and, on one process, at one client: the
unloaded latency). CPU is the server processes' together;
memory is their proportional set size (PSS) together, so what they share counts once.

The answer cache is off: each process has its own, so its hit rate falls as processes are
added, and a run would measure the load generator's repeats more than the serving work.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.report import table, write_report
from benchmarks.serve import WARMUP_S, drive, start, wait_quiet
from benchmarks.serve_data import INPUTS, DataSpec, prepare, restore
from benchmarks.serve_proc import code_state, pss_mib, snapshot_code, tree

PROCESSES = (1, 2, 4)
ENDPOINTS = ("similar", "recommendations", "new-items", "search")
CLIENTS = 16
NA = "n/a"
KEPT = ("p50_ms", "p95_ms", "rps", "errors", "server_cpu_cores", "client_cpu_cores",
        "other_cpu_cores")


def run_scale_bench(out: Path, data_dir: Path, *, items: int, events: int,
                    processes: Sequence[int] = PROCESSES, duration: float = 15.0,
                    say: Callable[[str], None] = print) -> dict[str, Any]:
    spec = DataSpec(items=items, events=events)
    manifest = prepare(data_dir, spec, say=say)
    inputs = data_dir / INPUTS
    code = snapshot_code(data_dir / "code")
    restore(data_dir, manifest)
    runs: list[dict[str, Any]] = []
    starts: list[dict[str, Any]] = []
    for n in processes:
        server, startup = start(data_dir, code, spec, say, {"MEDLEY_API_PROCESSES": str(n),
                                                            "MEDLEY_ANSWER_CACHE_SIZE": "0"})
        try:
            starts.append({"processes": n, **{k: v for k, v in startup.items()
                                              if k not in ("models", "recommendations")}})
            for k, endpoint in enumerate(ENDPOINTS):
                drive(server, inputs, endpoint, 4, WARMUP_S, seed=900 + k)
                # One client on one process: the unloaded latency the size plot shows.
                for clients in (1, CLIENTS) if n == 1 else (CLIENTS,):
                    wait_quiet(server)
                    r = drive(server, inputs, endpoint, clients, duration,
                              seed=k * 10 + clients)
                    row = {"processes": n, "clients": clients, "endpoint": endpoint,
                           **{f: r[f] for f in KEPT},
                           "server_pss_mib": pss_mib(tree(server.proc.pid))}
                    # Server CPU per answer: what one more process can add before the cores
                    # run out.
                    row["server_cpu_ms_per_request"] = round(
                        1000 * r["server_cpu_cores"] / r["rps"], 2) if r["rps"] else None
                    runs.append(row)
                    say(f"x{n} {endpoint:>16} {clients:>2} clients: p50 {r['p50_ms']} p95 "
                        f"{r['p95_ms']} ms, {r['rps']} req/s, server {r['server_cpu_cores']} "
                        "cores")
        finally:
            server.stop()
            restore(data_dir, manifest)
    data: dict[str, Any] = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "dataset": {"items": spec.items, "events": spec.events, "users": spec.users},
        "clients": CLIENTS, "duration_s": duration, "code": code_state(),
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "startup": starts, "runs": runs,
    }
    write_report(out, report_name(items), data, render(data))
    return data


def report_name(items: int) -> str:
    """scale-10k, scale-100k...: one report per catalog size, which `bench sizes` plots."""
    return f"scale-{items // 1000}k" if items % 1000 == 0 else f"scale-{items}"


def render(data: dict[str, Any]) -> str:
    counts = [s["processes"] for s in data["startup"]]
    by = {(r["processes"], r["endpoint"]): r for r in data["runs"] if r["clients"] == CLIENTS}
    alone = {r["endpoint"]: r for r in data["runs"] if r["clients"] == 1}
    base = {e: by.get((counts[0], e), {}).get("rps") for e in ENDPOINTS}

    def rps(n: int, e: str) -> str:
        r = by.get((n, e))
        if r is None:
            return NA
        gain = f" ({r['rps'] / base[e]:.2f}x)" if base[e] and n != counts[0] else ""
        return f"{r['rps']}{gain}"

    def cpu(n: int, e: str) -> str:
        r = by.get((n, e))
        return NA if r is None else \
            f"{r['server_cpu_cores']} / {r['server_cpu_ms_per_request']}"

    ds = data["dataset"]
    lines = [
        "# Serving with several API processes (`python -m benchmarks scale`)", "",
        f"{ds['items']:,} items, {ds['events']:,} events; {data['clients']} clients, "
        f"{data['duration_s']:g} s per run; {data['machine']['cores']} cores; "
        f"{data['measured_at']}; commit {data['code']['commit']}.",
        "Each process count is the same server started with `MEDLEY_API_PROCESSES=N`; the "
        "first process owns the embedded index and the worker; index searches go over a "
        "local socket to the index process it starts (or, with MEDLEY_INDEX_PROCESS=false, "
        "to the owner). The answer cache is off (each process would have "
        "its own), so these are the costs of computing answers.", "",
        "## Requests per second (gain over one process)", "",
        table(["endpoint", *[f"{n} process{'es' if n > 1 else ''}" for n in counts]],
              [[e, *[rps(n, e) for n in counts]] for e in ENDPOINTS]), "",
        "## p95 latency (ms)", "",
        table(["endpoint", *[str(n) for n in counts]],
              [[e, *[by[(n, e)]["p95_ms"] if (n, e) in by else NA for n in counts]]
               for e in ENDPOINTS]), "",
        "## Server CPU (cores busy, and ms of CPU per request)", "",
        table(["endpoint", *[str(n) for n in counts]],
              [[e, *[cpu(n, e) for n in counts]] for e in ENDPOINTS]), "",
        "## One client, one process (unloaded latency, ms)", "",
        table(["endpoint", "p50", "p95", "server CPU ms per request"],
              [[e, alone[e]["p50_ms"], alone[e]["p95_ms"], alone[e]["server_cpu_ms_per_request"]]
               for e in ENDPOINTS if e in alone]), "",
        "## Start-up and memory", "",
        table(["processes", "ready (s)", "PSS when ready (MiB)", "PSS after the runs (MiB)"],
              [[s["processes"], s.get("recommendations_ready_s"), s.get("pss_mib"),
                max((r["server_pss_mib"] for r in data["runs"]
                     if r["processes"] == s["processes"]), default=NA)]
               for s in data["startup"]]),
    ]
    return "\n".join(lines)
