"""Deployments `python -m benchmarks ingest` imports into, and one timed import.

A deployment is real processes on this machine: `medley serve` on a temporary data folder and a
free port, plus, for the distributed one, `medley worker` processes on a Redis broker (each in
a session of its own, so a stop reaches a prefork pool's children). The import is
`medley.ingest.ingest`, the code behind `medley ingest --wait`, over HTTP with a content key;
a transport around its client times every upload. What happened inside the pipeline is read
from the database afterwards: every extraction's start, finish, timings and reuse.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks.serve_proc import _free_port, busy_seconds, child_env, cpu_seconds, tree
from medley.config import Settings

READY_TIMEOUT_S = 300.0
STOP_WAIT_S = 30.0


@dataclass
class Deployment:
    name: str
    data_dir: Path
    database_url: str
    base: str
    key: str  # a content key, as a content team's import would use
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def cpu_seconds(self) -> float:
        """CPU time of every process of the deployment (pool children included)."""
        total = 0.0
        for proc in self.procs:
            for pid in tree(proc.pid):
                try:
                    total += cpu_seconds(pid)
                except OSError:
                    continue  # ended meanwhile
        return total

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}"
                         for p in self.logs if p.exists())

    def stop(self) -> None:
        for proc in reversed(self.procs):  # workers first, then the API
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _spawn(args: list[str], env: dict[str, str], cwd: Path, log: Path
           ) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "medley.cli", *args], env=env, cwd=cwd,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def start(name: str, work: Path, settings_env: dict[str, str], *, code: Path | None = None,
          workers: Sequence[Sequence[str]] = ()) -> Deployment:
    """`medley serve` (and `medley worker ...` for each entry of `workers`) with these
    MEDLEY_* settings on a data folder under `work`; returns once /healthz has every model
    loaded. Nothing of the caller's own MEDLEY_* environment reaches the processes."""
    from benchmarks.serve_proc import mint_keys

    data_dir = work / name
    data_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    base_env = child_env(code) if code is not None else dict(os.environ)
    env = {k: v for k, v in base_env.items() if not k.startswith("MEDLEY_")}
    env.update(settings_env, MEDLEY_DATA_DIR=str(data_dir), MEDLEY_HOST="127.0.0.1",
               MEDLEY_PORT=str(port))
    settings = Settings(_env_file=None, data_dir=data_dir,  # type: ignore[call-arg]
                        database_url=settings_env.get("MEDLEY_DATABASE_URL"))
    key = mint_keys(settings, [("content", f"bench ingest {name}")])[0]
    dep = Deployment(name, data_dir, settings.resolved_database_url,
                     f"http://127.0.0.1:{port}", key)
    try:
        for k, args in enumerate([["serve"], *[["worker", *w] for w in workers]]):
            dep.logs.append(data_dir / f"{args[0]}-{k}.log")
            dep.procs.append(_spawn(args, env, data_dir, dep.logs[-1]))
        _wait_healthy(dep)
    except BaseException:
        dep.stop()
        raise
    return dep


def _wait_healthy(dep: Deployment) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    body: dict[str, Any] = {}
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in dep.procs):
                raise RuntimeError(f"{dep.name}: a process exited\n{dep.log_tail()}")
            try:
                body = client.get(f"{dep.base}/healthz").json()
            except (httpx.HTTPError, ValueError):
                time.sleep(0.5)
                continue
            models = body.get("models") or {}
            if models and all(m.get("status") == "ok" for m in models.values()):
                return
            if body.get("status") not in (None, "starting"):
                raise RuntimeError(f"{dep.name}: a model is unavailable: {models}")
            time.sleep(0.5)
    raise TimeoutError(f"{dep.name}: not ready in {READY_TIMEOUT_S} s: {body}\n{dep.log_tail()}")


class TimedTransport(httpx.BaseTransport):
    """Times every `POST /v1/items` the import makes (wall clock, until the answer is read)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.uploads: list[tuple[float, float, int]] = []  # (start, end, status)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or request.url.path != "/v1/items":
            return self.inner.handle_request(request)
        started = time.time()
        response = self.inner.handle_request(request)
        response.read()
        self.uploads.append((started, time.time(), response.status_code))
        return response

    def close(self) -> None:
        self.inner.close()


def percentile(values: list[float], q: float) -> float:
    """numpy's (linear between the nearest ranks), as the other benches report them."""
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


def import_catalog(dep: Deployment, manifest: Path, wait_timeout_s: float) -> dict[str, Any]:
    """`medley ingest --wait` of the manifest into the deployment, timed end to end."""
    from medley.ingest import ingest

    timer = TimedTransport()
    cpu0, busy0, wall0 = dep.cpu_seconds(), busy_seconds(), time.time()
    report = ingest(manifest, dep.base, api_key=dep.key, wait=True, progress=False,
                    transport=timer, wait_timeout_s=wait_timeout_s, poll_interval_s=0.5)
    done = time.time()
    cpu, busy = dep.cpu_seconds() - cpu0, busy_seconds() - busy0
    accepted = [(s, e) for s, e, status in timer.uploads if status == 202]
    first = min((s for s, _, _ in timer.uploads), default=wall0)
    last = max((e for _, e in accepted), default=first)
    latencies = [1000 * (e - s) for s, e in accepted]
    items = report.submitted + report.resumed
    stages = pipeline_stats(dep.database_url, report.item_ids)
    finished = stages.pop("last_finished_epoch", None) or done
    return {
        "items": items, "ready": report.ready, "partial": report.partial,
        "failed": report.failed, "failures": [f"{f.source}: {f.reason}"
                                              for f in report.failures[:5]],
        "seconds": round(done - first, 1),
        "items_per_s": round(items / (done - first), 2),
        "upload_seconds": round(last - first, 1),
        "uploads_per_s": round(len(accepted) / max(last - first, 1e-9), 1),
        "upload_p50_ms": round(percentile(latencies, 50), 1),
        "upload_p95_ms": round(percentile(latencies, 95), 1),
        "upload_max_ms": round(max(latencies, default=float("nan")), 1),
        "upload_429s": sum(1 for *_, status in timer.uploads if status == 429),
        "last_upload_to_last_extraction_s": round(finished - last, 1),
        "last_upload_to_all_seen_done_s": round(done - last, 1),
        "upload_to_done_median_s": round(statistics.median(report.upload_to_done_s), 1)
        if report.upload_to_done_s else None,
        "cpu_cores_deployment": round(cpu / (done - wall0), 2),
        "cpu_cores_machine": round(busy / (done - wall0), 2),
        "modalities": stages,
    }


def _epoch(when: datetime) -> float:
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _union(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one of these (start, end) intervals, sorted by start."""
    total, end = 0.0, float("-inf")
    for s, e in spans:
        if e > end:
            total += e - max(s, end)
            end = e
    return total


def pipeline_stats(database_url: str, item_ids: list[str]) -> dict[str, Any]:
    """Per modality, from the stored extractions of these items: how many ran (reused vectors
    apart), their rate over the span from the first start to the last finish, and over the
    busy time (when at least one of them was running); audio seconds for speech, keyframes
    for video."""
    from sqlalchemy import select

    from medley.db import Database
    from medley.db.models import ModalityRecord

    wanted = set(item_ids)
    db = Database(database_url)
    try:
        with db.session() as s:
            rows = [r for r in s.scalars(select(ModalityRecord)) if r.item_id in wanted]
    finally:
        db.dispose()
    out: dict[str, Any] = {}
    ends = [_epoch(r.finished_at) for r in rows if r.finished_at is not None]
    for modality in sorted({r.modality for r in rows}):
        mine = [r for r in rows if r.modality == modality]
        ran = [(_epoch(r.started_at), _epoch(r.finished_at), dict(r.timings or {}))
               for r in mine if r.reused_from is None and r.status == "ready"
               and r.started_at is not None and r.finished_at is not None]
        if not ran:
            out[modality] = {"extractions": 0, "other": len(mine)}
            continue
        ran.sort(key=lambda r: r[0])
        span = max(e for _, e, _ in ran) - ran[0][0]
        busy = _union([(s, e) for s, e, _ in ran])

        def total(key: str, ran: list[tuple[float, float, dict[str, Any]]] = ran) -> float:
            return sum(float(t.get(key) or 0.0) for _, _, t in ran)

        n = len(ran)
        stat: dict[str, Any] = {"extractions": n, "other": len(mine) - n,
                                "span_s": round(span, 1), "per_s": round(n / max(span, 1e-9), 2),
                                "busy_s": round(busy, 1),
                                "per_busy_s": round(n / max(busy, 1e-9), 2),
                                "mean_total_s": round(total("total_s") / n, 3)}
        if modality == "speech":
            stat["audio_s_per_s"] = round(total("audio_seconds") / max(span, 1e-9), 2)
            stat["audio_s_per_busy_s"] = round(total("audio_seconds") / max(busy, 1e-9), 2)
        if modality == "video":
            stat["keyframes_per_s"] = round(total("keyframes") / max(span, 1e-9), 2)
        out[modality] = stat
    out["last_finished_epoch"] = max(ends, default=None)
    return out
