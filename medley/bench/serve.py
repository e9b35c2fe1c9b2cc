"""`medley bench serve`: latency of the recommendation endpoints on the embedded default.

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
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from medley.bench.report import write_report
from medley.bench.serve_data import INPUTS, DataSpec, bench_settings, prepare, restore
from medley.bench.serve_report import render, target_verdict

ENDPOINTS = ("healthz", "similar", "recommendations", "new-items", "search", "events")
CONCURRENCY = (1, 16)
WARMUP_S = 3.0
RETRAIN_OFF_S = 86_400  # no scheduled ALS retraining inside the measured window
READY_TIMEOUT_S = 3600.0
SETTLE_MAX_S = 120.0
SETTLE_CPU = 0.2  # cores: below this the server counts as idle
TARGET_ENDPOINTS = ("similar", "recommendations")
# Per-candidate work dominates ranking; this run halves the candidates each source brings
# (a setting, no code change) to show how latency scales with them.
WHATIF_ENV = {"MEDLEY_CANDIDATES_PER_SOURCE": "50"}
QUIET_CORES = 0.3  # other processes' CPU use below which a run may start
QUIET_WAIT_S = 180.0


PACKAGES = ("medley", "api", "index", "workers", "enrich")


def snapshot_code(dest: Path) -> Path:
    """Copy the service's packages: every process of the run imports this copy (PYTHONPATH
    comes before the editable install), so edits made to the tree meanwhile change nothing."""
    root = Path(__file__).resolve().parents[2]
    if dest.exists():
        shutil.rmtree(dest)
    for pkg in PACKAGES:
        shutil.copytree(root / pkg, dest / pkg,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    probe = subprocess.run(
        [sys.executable, "-P", "-c", "import medley.recs.engine as m; print(m.__file__)"],
        env=child_env(dest), capture_output=True, text=True, check=True)
    if not Path(probe.stdout.strip()).resolve().is_relative_to(dest.resolve()):
        raise RuntimeError(f"children would not import the snapshot: {probe.stdout.strip()}")
    return dest


def child_env(code: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(code.resolve()),
                                                    env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all processes; Linux /proc/stat)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class Server:
    """`medley serve` on the dataset, as a subprocess with its log in the data dir."""

    def __init__(self, data_dir: Path, code: Path, extra_env: dict[str, str] | None = None
                 ) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "server.log"
        settings = bench_settings(data_dir)
        self.code = code
        env = {k: v for k, v in child_env(code).items()
               if k not in ("MEDLEY_DATABASE_URL", "MEDLEY_BROKER_URL", "MEDLEY_QDRANT_URL")}
        env.update(MEDLEY_DATA_DIR=str(settings.data_dir), MEDLEY_PORT=str(self.port),
                   MEDLEY_HOST="127.0.0.1", MEDLEY_MODEL_CACHE_DIR=str(settings.models_dir),
                   MEDLEY_COLLAB_RETRAIN_INTERVAL_S=str(RETRAIN_OFF_S))
        env.update(extra_env or {})
        self._log = self.log_path.open("w")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-P", "-m", "medley.cli", "serve"], env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, items: int, events: int, say: Callable[[str], None]) -> dict[str, Any]:
        """Seconds from launch until it answers, models are probed, recommendations ready."""
        marks: dict[str, float] = {}
        last = ""
        with httpx.Client(timeout=10) as client:
            while time.perf_counter() - self.started < READY_TIMEOUT_S:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited ({self.proc.returncode}); see "
                                       f"{self.log_path}")
                try:
                    body = client.get(f"{self.base}/healthz").json()
                except httpx.HTTPError:
                    time.sleep(0.5)
                    continue
                now = round(time.perf_counter() - self.started, 1)
                marks.setdefault("listening_s", now)
                rec = body["recommendations"]
                if body["status"] != "starting":
                    marks.setdefault("models_probed_s", now)
                if (rec["ready"] and rec["items"] >= items and rec["events_applied"] >= events
                        and rec["collab_model"] is not None):
                    marks.setdefault("recommendations_ready_s", now)
                state = f"{body['status']} {rec}"
                if state != last:
                    say(f"[{now:7.1f} s] {state}")
                    last = state
                if "models_probed_s" in marks and "recommendations_ready_s" in marks:
                    return {**marks, "health": body["status"], "models": body["models"],
                            "recommendations": rec, "rss_mib": rss_mib(self.proc.pid)}
                time.sleep(0.5)
        raise TimeoutError(f"the server was not ready within {READY_TIMEOUT_S} s")

    def settle(self) -> dict[str, float]:
        """Wait (bounded) until background start-up work (prior warming) goes quiet."""
        started = time.perf_counter()
        cores = 0.0
        while time.perf_counter() - started < SETTLE_MAX_S:
            before = cpu_seconds(self.proc.pid)
            time.sleep(2.0)
            cores = (cpu_seconds(self.proc.pid) - before) / 2.0
            if cores < SETTLE_CPU:
                break
        return {"settle_s": round(time.perf_counter() - started, 1),
                "idle_cpu_cores": round(cores, 2)}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def wait_quiet(server: Server) -> float:
    """Wait (bounded) until other processes leave the CPUs alone; their last use, in cores."""
    started = time.perf_counter()
    while True:
        busy, cpu = busy_seconds(), cpu_seconds(server.proc.pid)
        time.sleep(2.0)
        other = (busy_seconds() - busy - (cpu_seconds(server.proc.pid) - cpu)) / 2.0
        if other < QUIET_CORES or time.perf_counter() - started > QUIET_WAIT_S:
            return round(max(other, 0.0), 2)


def drive(server: Server, inputs: Path, endpoint: str, concurrency: int, duration: float,
          seed: int) -> dict[str, Any]:
    """One load-generator run; adds the server's CPU use (cores) and RSS over the run."""
    cmd = [sys.executable, "-P", "-m", "medley.bench.loadgen", "--port", str(server.port),
           "--endpoint", endpoint, "--concurrency", str(concurrency), "--duration", str(duration),
           "--inputs", str(inputs), "--seed", str(seed)]
    cpu, busy, started = cpu_seconds(server.proc.pid), busy_seconds(), time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          timeout=duration + 120, env=child_env(server.code))
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    result["server_cpu_cores"] = round((cpu_seconds(server.proc.pid) - cpu) / wall, 2)
    machine = (busy_seconds() - busy) / wall
    result["machine_busy_cores"] = round(machine, 2)
    # Anything else on the machine meanwhile (other people's jobs would skew the figures).
    result["other_cpu_cores"] = round(max(machine - result["server_cpu_cores"]
                                          - result["client_cpu_cores"], 0.0), 2)
    result["server_rss_mib"] = rss_mib(server.proc.pid)
    return result


def measure(server: Server, inputs: Path, endpoints: tuple[str, ...], duration: float,
            say: Callable[[str], None], tag: str = "") -> list[dict[str, Any]]:
    """Each endpoint: a short warm-up, then a run per client count."""
    runs = []
    for n, endpoint in enumerate(endpoints):
        drive(server, inputs, endpoint, 4, WARMUP_S, seed=900 + n)
        for concurrency in CONCURRENCY:
            other = wait_quiet(server)
            r = drive(server, inputs, endpoint, concurrency, duration, seed=n * 10 + concurrency)
            r["other_cpu_cores_before"] = other
            say(f"{tag}{endpoint:>16} x{concurrency:<2} p50 {r['p50_ms']} p95 {r['p95_ms']} "
                f"p99 {r['p99_ms']} ms, {r['rps']} req/s, {r['errors']} errors, server "
                f"{r['server_cpu_cores']} cores")
            runs.append(r)
    return runs


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


def code_state() -> dict[str, Any]:
    """The commit and the files modified in the working tree: what was measured."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
        return done.stdout

    return {"commit": git("rev-parse", "--short", "HEAD").strip(),
            "modified": [line[3:] for line in git("status", "--short", "--untracked-files=no")
                         .splitlines() if line.strip()]}


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
    server, startup = start(data_dir, snapshot, spec, say)
    try:
        runs = measure(server, inputs, ENDPOINTS, duration, say)  # events last: they add state
    finally:
        server.stop()
        say(f"removed {restore(data_dir, manifest):,} posted events")
    # What-if: the same server with one setting changed.
    server, whatif_startup = start(data_dir, snapshot, spec, say, WHATIF_ENV)
    try:
        whatif = measure(server, inputs, TARGET_ENDPOINTS, duration, say, tag="[what-if] ")
    finally:
        server.stop()
        restore(data_dir, manifest)
    profiled: dict[str, Any] | None = None
    if profile:
        say("profiling the same state in-process")
        target = data_dir / "profile.json"
        subprocess.run([sys.executable, "-P", "-m", "medley.bench.serve_profile", "--data-dir",
                        str(data_dir), "--out", str(target)], env=child_env(snapshot),
                       check=True)
        profiled = json.loads(target.read_text())
    data: dict[str, Any] = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "processor": platform.processor()},
        "dataset": {**manifest, "users": spec.users, "topics": spec.topics},
        "prep_s": round(prep_s, 1),
        "startup": startup,
        "duration_s": duration,
        "server_env": {"MEDLEY_COLLAB_RETRAIN_INTERVAL_S": RETRAIN_OFF_S},
        "code": code,
        "runs": runs,
        "whatif": {"env": WHATIF_ENV, "startup": whatif_startup, "runs": whatif},
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
