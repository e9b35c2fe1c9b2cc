"""Processes of `python -m benchmarks serve`: the server subprocess, CPU accounting from /proc, and
the code snapshot every child process imports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from benchmarks.serve_data import bench_settings
from medley.config import Settings

RETRAIN_OFF_S = 86_400  # no scheduled ALS retraining inside the measured window
# The defaults, but the client role's: see `Server`.
BENCH_RATE_LIMITS = {**{str(role): list(limit) for role, limit in
                        Settings.model_fields["rate_limits"].get_default(call_default_factory=True)
                        .items()}, "client": [100_000, 100_000]}
READY_TIMEOUT_S = 3600.0
SETTLE_MAX_S = 600.0  # a start finds every known user's nearline candidates (minutes at 100k)
SETTLE_CPU = 0.2  # cores: below this the server counts as idle
PACKAGES = ("medley", "api", "index", "workers", "enrich", "benchmarks")


def snapshot_code(dest: Path) -> Path:
    """Copy the service's packages and the benchmarks': every process of the run imports this
    copy (PYTHONPATH comes before the editable install; the benchmarks are only in the
    checkout), so edits made to the tree meanwhile change nothing."""
    root = Path(__file__).resolve().parents[1]
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


def tree(pid: int) -> list[int]:
    """A process and its descendants (uvicorn's API processes under `--workers`)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo.extend(int(c) for c in task.read_text().split())
            except OSError:
                continue
    return out


def pss_mib(pids: Sequence[int]) -> float:
    """Proportional set size of processes together: pages they share count once, split
    between them (summed RSS would count a shared page once per process)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


def mint_keys(settings: Settings, wanted: Sequence[tuple[str, str]]) -> list[str]:
    """Secrets of new keys, one per (role, name), written to the dataset's database before a
    server starts on it."""
    from medley.db import Database
    from medley.keys import KeyStore

    db = Database(settings.resolved_database_url)
    try:
        db.migrate()
        store = KeyStore(db)
        return [store.create(role, name)[1] for role, name in wanted]
    finally:
        db.dispose()


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
        # The bench calls the API as a client app would: with a client key of its own.
        self.client_key = mint_keys(settings, [("client", "bench client")])[0]
        env.update(MEDLEY_DATA_DIR=str(settings.data_dir), MEDLEY_PORT=str(self.port),
                   MEDLEY_HOST="127.0.0.1", MEDLEY_MODEL_CACHE_DIR=str(settings.models_dir),
                   MEDLEY_COLLAB_RETRAIN_INTERVAL_S=str(RETRAIN_OFF_S),
                   # Only the snapshot saved after start-up's replay: a periodic one taken
                   # after the events run would be ahead of the database once `restore`
                   # drops those events, and the next start would replay everything.
                   MEDLEY_BEHAVIOR_SNAPSHOT_INTERVAL_S=str(RETRAIN_OFF_S),
                   # One client key stands in for a whole app's users: at the default 500
                   # requests/s it, not the server, would bound a fast endpoint (429s).
                   MEDLEY_RATE_LIMITS=json.dumps(BENCH_RATE_LIMITS))
        env.update(extra_env or {})
        self.processes = int(env.get("MEDLEY_API_PROCESSES", "1"))
        self._log = self.log_path.open("w")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-P", "-m", "medley.cli", "serve"], env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def cpu_seconds(self) -> float:
        """CPU time of the server's processes together (all of them under `--workers`)."""
        total = 0.0
        for pid in tree(self.proc.pid):
            try:
                total += cpu_seconds(pid)
            except OSError:
                continue  # ended meanwhile
        return total

    def wait_ready(self, items: int, events: int, say: Callable[[str], None]) -> dict[str, Any]:
        """Seconds from launch until it answers, models are probed, recommendations ready
        (in every API process: each answers /healthz for itself)."""
        marks: dict[str, float] = {}
        ready: set[int] = set()
        last = ""
        with httpx.Client(timeout=10) as client:
            while time.perf_counter() - self.started < READY_TIMEOUT_S:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited ({self.proc.returncode}); see "
                                       f"{self.log_path}")
                try:
                    # A fresh connection each time: a kept-alive one stays with one process.
                    body = client.get(f"{self.base}/healthz",
                                      headers={"Connection": "close"}).json()
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
                    ready.add(body.get("process", {}).get("pid", self.proc.pid))
                if len(ready) >= self.processes:
                    marks.setdefault("recommendations_ready_s", now)
                state = f"{body['status']} {rec}"
                if state != last:
                    say(f"[{now:7.1f} s] {state}")
                    last = state
                if "models_probed_s" in marks and "recommendations_ready_s" in marks:
                    return {**marks, "health": body["status"], "models": body["models"],
                            "recommendations": rec, "rss_mib": rss_mib(self.proc.pid),
                            "pss_mib": pss_mib(tree(self.proc.pid))}
                time.sleep(0.5)
        raise TimeoutError(f"the server was not ready within {READY_TIMEOUT_S} s")

    def settle(self) -> dict[str, float]:
        """Wait (bounded) until background start-up work (prior warming) goes quiet."""
        started = time.perf_counter()
        cores = 0.0
        while time.perf_counter() - started < SETTLE_MAX_S:
            before = self.cpu_seconds()
            time.sleep(2.0)
            cores = (self.cpu_seconds() - before) / 2.0
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


def code_state() -> dict[str, Any]:
    """The commit and the files modified in the working tree: what was measured."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
        return done.stdout

    return {"commit": git("rev-parse", "--short", "HEAD").strip(),
            "modified": [line[3:] for line in git("status", "--short", "--untracked-files=no")
                         .splitlines() if line.strip()]}
