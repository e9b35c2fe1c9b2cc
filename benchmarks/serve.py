"""`python -m benchmarks serve`: latency of the recommendation endpoints on the embedded default.

Prepares (or reuses) a synthetic dataset, starts `medley serve` on it as a subprocess, waits
until recommendations are ready with every item and event, then drives each endpoint from a
separate load-generator process at 1 and 16 concurrent clients. Afterwards the same state is
built in this process to time start-up stages and profile each endpoint (pyinstrument), so the
report says where the time goes rather than guessing.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.report import write_report
from benchmarks.serve_data import INPUTS, DataSpec, prepare, restore
from benchmarks.serve_proc import (
    BENCH_RATE_LIMITS,
    RETRAIN_OFF_S,
    Server,
    busy_seconds,
    child_env,
    code_state,
    pss_mib,
    rss_mib,
    snapshot_code,
    tree,
)
from benchmarks.serve_report import TARGET_ENDPOINTS, render, target_verdict

ENDPOINTS = ("healthz", "similar", "recommendations", "new-items", "search", "events")
CONCURRENCY = (1, 16)
WARMUP_S = 3.0
# The baseline in the same sitting: the same server without nearline user candidates
# (`medley/recs/user_lists.py`), i.e. every for-you request searching its personal sources and
# computing every candidate's features, as the code before them did.
WHATIF_ENV = {"MEDLEY_USER_LISTS_SIZE": "0"}
WHATIF_ENDPOINTS = (*TARGET_ENDPOINTS, "new-items")  # new-items reads a held entry too
WHATIF_WHY = ("without nearline user candidates: every for-you request searches and computes "
              "its personal sources itself, as the code before them did (the baseline, "
              "measured in the same sitting)")
QUIET_CORES = 0.3  # other processes' CPU use below which a run may start
QUIET_WAIT_S = 180.0


def wait_quiet(server: Server) -> float:
    """Wait (bounded) until other processes leave the CPUs alone; their last use, in cores."""
    started = time.perf_counter()
    while True:
        busy, cpu = busy_seconds(), server.cpu_seconds()
        time.sleep(2.0)
        other = (busy_seconds() - busy - (server.cpu_seconds() - cpu)) / 2.0
        if other < QUIET_CORES or time.perf_counter() - started > QUIET_WAIT_S:
            return round(max(other, 0.0), 2)


def drive(server: Server, inputs: Path, endpoint: str, concurrency: int, duration: float,
          seed: int) -> dict[str, Any]:
    """One load-generator run; adds the server's CPU use (cores) and RSS over the run."""
    cmd = [sys.executable, "-P", "-m", "benchmarks.loadgen", "--port", str(server.port),
           "--endpoint", endpoint, "--concurrency", str(concurrency), "--duration", str(duration),
           "--inputs", str(inputs), "--seed", str(seed), "--key", server.client_key]
    cpu, busy, started = server.cpu_seconds(), busy_seconds(), time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          timeout=duration + 120, env=child_env(server.code))
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    result["server_cpu_cores"] = round((server.cpu_seconds() - cpu) / wall, 2)
    machine = (busy_seconds() - busy) / wall
    result["machine_busy_cores"] = round(machine, 2)
    # Anything else on the machine meanwhile (other people's jobs would skew the figures).
    result["other_cpu_cores"] = round(max(machine - result["server_cpu_cores"]
                                          - result["client_cpu_cores"], 0.0), 2)
    result["server_rss_mib"] = rss_mib(server.proc.pid)
    result["server_pss_mib"] = pss_mib(tree(server.proc.pid))  # all its processes
    return result


def measure(server: Server, inputs: Path, endpoints: tuple[str, ...], duration: float,
            say: Callable[[str], None], tag: str = "") -> list[dict[str, Any]]:
    """Each endpoint: a short warm-up, then a run per client count."""
    runs = []
    for n, endpoint in enumerate(endpoints):
        drive(server, inputs, endpoint, 4, WARMUP_S, seed=900 + n)
        for concurrency in CONCURRENCY:
            other = wait_quiet(server)
            before = cache_stats(server)
            r = drive(server, inputs, endpoint, concurrency, duration, seed=n * 10 + concurrency)
            r["other_cpu_cores_before"] = other
            after = cache_stats(server)
            for cache in ("answer_cache", "user_lists"):  # (code without one lacks its key)
                if cache in before and cache in after:
                    hits = after[cache]["hits"] - before[cache]["hits"]
                    misses = after[cache]["misses"] - before[cache]["misses"]
                    r[f"{cache}_hit_rate"] = round(hits / (hits + misses), 4) \
                        if hits + misses else None
            say(f"{tag}{endpoint:>16} x{concurrency:<2} p50 {r['p50_ms']} p95 {r['p95_ms']} "
                f"p99 {r['p99_ms']} ms, {r['rps']} req/s, {r['errors']} errors, server "
                f"{r['server_cpu_cores']} cores")
            runs.append(r)
    return runs


def cache_stats(server: Server) -> dict[str, Any]:
    """The server's answer-cache and user-list counters, as /healthz reports them."""
    body = httpx.get(f"{server.base}/healthz", timeout=10).json()
    recs: dict[str, Any] = body["recommendations"]
    return {k: recs[k] for k in ("answer_cache", "user_lists") if k in recs}


def start(data_dir: Path, code: Path, spec: DataSpec, say: Callable[[str], None],
          extra_env: dict[str, str] | None = None) -> tuple[Server, dict[str, Any]]:
    say(f"starting medley serve on {data_dir} {extra_env or ''}")
    server = Server(data_dir, code, extra_env)
    try:
        startup = server.wait_ready(spec.items, spec.events, say)
        startup.update(server.settle())
    except BaseException:
        server.stop()
        raise
    say(f"ready: { {k: v for k, v in startup.items() if k != 'models'} }")
    return server, startup


def run_serve_bench(out: Path, data_dir: Path, *, items: int = 100_000, events: int = 1_000_000,
                    duration: float = 15.0, rebuild: bool = False, profile: bool = True,
                    say: Callable[[str], None] = print) -> dict[str, Any]:
    spec = DataSpec(items=items, events=events)
    started = time.perf_counter()
    manifest = prepare(data_dir, spec, rebuild=rebuild, say=say)
    prep_s = time.perf_counter() - started
    inputs = data_dir / INPUTS
    code = code_state()
    snapshot = snapshot_code(data_dir / "code")
    restore(data_dir, manifest)  # a run stopped half-way may have left posted events
    lists: dict[str, Any] | None = None
    if not (data_dir / "neighbours.npz").exists():
        say("finding every item's neighbour list (once per dataset, as a server's sync does)")
        done = subprocess.run([sys.executable, "-P", "-m", "benchmarks.serve_lists",
                               "--data-dir", str(data_dir)], env=child_env(snapshot),
                              check=True, capture_output=True, text=True)
        lists = json.loads(done.stdout.strip().splitlines()[-1])
    server, startup = start(data_dir, snapshot, spec, say)
    try:
        runs = measure(server, inputs, ENDPOINTS, duration, say)  # events last: they add state
    finally:
        server.stop()
        say(f"removed {restore(data_dir, manifest):,} posted events")
    # What-if: the same server with one setting changed.
    server, whatif_startup = start(data_dir, snapshot, spec, say, WHATIF_ENV)
    try:
        whatif = measure(server, inputs, WHATIF_ENDPOINTS, duration, say, tag="[what-if] ")
    finally:
        server.stop()
        restore(data_dir, manifest)
    profiled: dict[str, Any] | None = None
    if profile:
        say("profiling the same state in-process")
        target = data_dir / "profile.json"
        subprocess.run([sys.executable, "-P", "-m", "benchmarks.serve_profile", "--data-dir",
                        str(data_dir), "--out", str(target)], env=child_env(snapshot),
                       check=True)
        profiled = json.loads(target.read_text())
    data: dict[str, Any] = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "processor": platform.processor()},
        "dataset": {**manifest, "users": spec.users, "topics": spec.topics},
        "prep_s": round(prep_s, 1),
        "neighbour_lists": lists,
        "startup": startup,
        "duration_s": duration,
        "server_env": {"MEDLEY_COLLAB_RETRAIN_INTERVAL_S": RETRAIN_OFF_S,
                       "MEDLEY_RATE_LIMITS": BENCH_RATE_LIMITS},
        "code": code,
        "runs": runs,
        "whatif": {"env": WHATIF_ENV, "why": WHATIF_WHY, "startup": whatif_startup,
                   "runs": whatif},
        "profile": profiled,
    }
    data["target"] = target_verdict(runs)
    markdown, limits = render(data)
    data["limits"] = limits
    write_report(out, "serve", data, markdown)
    data["summary"] = {"target": data["target"], "runs": [
        {k: r[k] for k in ("endpoint", "concurrency", "p50_ms", "p95_ms", "p99_ms", "rps",
                           "errors")} for r in runs]}
    return data
