"""`python -m benchmarks drain`: how fast the embedded worker's plumbing hands out tasks.

Sends short tasks (a fixed sleep standing in for a model call) through the embedded default's
broker and in-process worker, configured by `workers.app.configure`, once at this version's
polling interval and once at kombu's default (1 s), in the same run. The tasks do no work, so
the rate is what the broker and worker allow, the ceiling of any catalog import on the
embedded default; models then bound it from below. Then the same comparison end to end:
text-only items uploaded through the API until every one is done.
"""

from __future__ import annotations

import os
import platform
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import SecretStr

from benchmarks.report import table, write_report
from medley.config import Settings

KOMBU_DEFAULT_POLL_S = 1.0
IDLE_S = 3.0


def drain_rate(poll_s: float, tasks: int, task_ms: float) -> dict[str, Any]:
    from workers import app as celery_setup
    from workers.embedded import InProcessWorker

    with tempfile.TemporaryDirectory() as tmp:
        app = celery_setup.configure(Settings(data_dir=Path(tmp),
                                              embedded_poll_interval_s=poll_s))
        done: list[int] = []
        lock = threading.Lock()

        @app.task(name="bench.short", shared=False)
        def short(k: int) -> None:
            time.sleep(task_ms / 1000)
            with lock:
                done.append(k)

        # Queues of its own: the in-memory broker is shared by everything in this process.
        queues = (f"bench-media-{poll_s}", f"bench-text-{poll_s}")
        worker = InProcessWorker(app, list(queues))
        worker.start()
        try:
            started = time.perf_counter()
            for k in range(tasks):
                short.apply_async((k,), queue=queues[k % 2])
            while len(done) < tasks and time.perf_counter() - started < 600:
                time.sleep(0.005)
            elapsed = time.perf_counter() - started
            cpu = time.process_time()  # then what polling costs with nothing queued
            time.sleep(IDLE_S)
            idle_cores = (time.process_time() - cpu) / IDLE_S
        finally:
            worker.stop()
    slots = worker.concurrency
    return {"poll_s": poll_s, "tasks": len(done), "seconds": round(elapsed, 2),
            "tasks_per_s": round(len(done) / elapsed, 1),
            "idle_cpu_percent": round(100 * idle_cores, 2),
            # What the slots could do if a freed slot took its next task at once.
            "ceiling_per_s": round(slots * 1000 / task_ms, 1) if task_ms else None}


def import_rate(poll_s: float, items: int, models_dir: Path | None,
                batching: bool = True, paused: bool = True) -> dict[str, Any]:
    """Text-only items uploaded through the API of the embedded default (the real app in
    this process, real text model) until none is queued or processing: three tasks each
    (text, CLIP text, index). `paused`: uploaded with the workers paused, then the drain is
    timed; else uploaded while the workers run, each upload's latency recorded."""
    import json

    from fastapi.testclient import TestClient

    from api.app import create_app

    key = "bench-drain-admin-key-0123456789"
    with tempfile.TemporaryDirectory() as tmp:
        # Batching off: one input per model call, and the text queue on two threads as before
        # micro-batching (the same code otherwise).
        settings = Settings(data_dir=Path(tmp) / "data", bootstrap_admin_key=SecretStr(key),
                            embedded_poll_interval_s=poll_s, model_cache_dir=models_dir)
        if not batching:
            settings = settings.model_copy(update={"batch_max_items": 1,
                                                   "text_worker_concurrency": 2})
        with TestClient(create_app(settings),
                        headers={"Authorization": f"Bearer {key}"}) as client:
            while client.get("/healthz").json()["status"] == "starting":
                time.sleep(0.2)  # models loaded before the clock starts
            # The whole catalog is queued first, its workers paused, so the clock measures the
            # pipeline draining a backlog (as after a bulk upload), not the upload loop.
            workers = client.app.state.service.workers  # type: ignore[attr-defined]
            for worker in workers if paused else []:
                worker.stop()
            started, uploads = time.perf_counter(), []
            for k in range(items):
                meta = {"title": f"Title {k}", "description": f"Story {k}: rockets, coffee "
                        "and a football final in a small town"}
                sent = time.perf_counter()
                while (r := client.post("/v1/items", data={"metadata": json.dumps(meta)})
                       ).status_code == 429:
                    time.sleep(float(r.headers.get("Retry-After", "1")))
                uploads.append(time.perf_counter() - sent)
            if paused:
                started = time.perf_counter()
                for worker in workers:
                    worker.start()
            while any(client.get("/v1/items", params={"limit": 1, "status": status}
                                 ).json()["total"] for status in ("queued", "processing")):
                time.sleep(0.1)
            elapsed = time.perf_counter() - started
            batchers = client.app.state.service.runtime._batchers  # type: ignore[attr-defined]
            text = batchers.get("text")
            per_call = round(text.inputs / text.batches, 2) if text and text.batches else None
    ms = np.percentile(uploads, [50, 95]) * 1000
    return {"poll_s": poll_s, "items": items, "batching": batching, "paused": paused,
            "seconds": round(elapsed, 1), "items_per_s": round(items / elapsed, 1),
            "text_inputs_per_model_call": per_call,
            "upload_p50_ms": round(float(ms[0]), 1), "upload_p95_ms": round(float(ms[1]), 1)}


def run_drain_bench(out: Path, tasks: int = 200, task_ms: float = 20.0, items: int = 150,
                    models_dir: Path | None = None) -> dict[str, Any]:
    configured = Settings().embedded_poll_interval_s
    runs = [drain_rate(configured, tasks, task_ms),
            drain_rate(KOMBU_DEFAULT_POLL_S, max(tasks // 4, 20), task_ms)]
    imports = [import_rate(configured, items, models_dir),
               import_rate(configured, items, models_dir, batching=False),
               import_rate(configured, items, models_dir),
               import_rate(configured, items, models_dir, batching=False),
               import_rate(KOMBU_DEFAULT_POLL_S, max(items // 3, 10), models_dir)]
    live = import_rate(configured, items, models_dir, paused=False)
    data = {"machine": {"cores": os.cpu_count(), "python": platform.python_version()},
            "task_ms": task_ms, "runs": runs,
            "speedup": round(runs[0]["tasks_per_s"] / runs[1]["tasks_per_s"], 1),
            "imports": imports, "uploads_while_importing": live}
    lines = ["# Embedded worker plumbing (`python -m benchmarks drain`)", "",
             f"Short tasks ({task_ms:g} ms of sleep each, standing in for a model call) through "
             "the embedded default's in-memory broker and in-process worker (2 slots), at "
             "this version's polling interval and at kombu's default, in one run.", "",
             table(["polling interval (s)", "tasks", "seconds", "tasks/s", "slots' ceiling/s",
                    "idle CPU (% of a core)"],
                   [[r["poll_s"], r["tasks"], r["seconds"], r["tasks_per_s"],
                     r["ceiling_per_s"], r["idle_cpu_percent"]] for r in runs]), "",
             f"{data['speedup']}x the rate at kombu's default interval.", "",
             "Text-only items uploaded through the API (the real app in-process, the real "
             "text model; three tasks each: text, CLIP text, index), queued while the workers "
             "are paused, then drained until every one is done, "
             "with cross-task micro-batching (the text queue on "
             f"{Settings().text_worker_concurrency} threads sharing batches of up to "
             f"{Settings().batch_max_items}) and without it (one input per model call, two "
             "threads), alternated:",
             "", table(["polling interval (s)", "micro-batching", "items", "seconds", "items/s",
                        "text inputs per model call"],
                       [[r["poll_s"], "on" if r["batching"] else "off", r["items"],
                         r["seconds"], r["items_per_s"], r["text_inputs_per_model_call"]]
                        for r in imports]), "",
             f"Uploads while the import runs (the same {items} items posted one after another, "
             "the workers draining beside them in the same process): upload p50 "
             f"{live['upload_p50_ms']} ms, p95 {live['upload_p95_ms']} ms; all done in "
             f"{live['seconds']} s ({live['items_per_s']} items/s)."]
    write_report(out, "drain", data, "\n".join(lines))
    return data
