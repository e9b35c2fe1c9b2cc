"""The embedded worker takes queued tasks as fast as it finishes them: its plumbing (the
in-memory broker's polling) must not bound a catalog import."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

from medley.config import Settings
from workers import app as celery_setup
from workers.embedded import InProcessWorker


def test_the_embedded_worker_drains_short_tasks_without_waiting_on_the_broker(
    tmp_path: Path
) -> None:
    app = celery_setup.configure(Settings(data_dir=tmp_path))  # the embedded default's broker
    done: list[int] = []
    lock = threading.Lock()

    @app.task(name="tests.short", shared=False)
    def short(k: int) -> None:
        with lock:
            done.append(k)

    # Queues of this test's own: the in-memory broker is shared by the whole process, and a
    # worker another test left running must not take (and drop) these tasks.
    queues = (f"drain-{uuid.uuid4().hex}", f"drain-{uuid.uuid4().hex}")
    worker = InProcessWorker(app, list(queues))
    worker.start()
    try:
        started = time.monotonic()
        for k in range(60):  # spread over two queues, as extractions are
            short.apply_async((k,), queue=queues[k % 2])
        while len(done) < 60 and time.monotonic() - started < 60:
            time.sleep(0.01)
        elapsed = time.monotonic() - started
    finally:
        worker.stop()
    assert sorted(done) == list(range(60))
    # Two slots at kombu's default 1 s polling took ~30 s for this (about 2 tasks/s); at the
    # embedded interval it takes well under a second. 10 s leaves room for a busy machine.
    assert elapsed < 10, f"60 short tasks took {elapsed:.1f} s: the worker waits on polling"
