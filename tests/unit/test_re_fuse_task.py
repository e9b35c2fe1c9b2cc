"""Re-fusion's Celery task was named "medley.refuse" until this release ("refuse" reads as
"deny"). A message an older version queued under that name still runs the job after an upgrade,
through a real in-process worker on the embedded broker; so does an older peer's dispatch."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from medley.config import Settings
from workers.app import (
    RE_FUSE_SOFT_TIME_LIMIT_S,
    RE_FUSE_TASK,
    RE_FUSE_TASK_OLD_NAME,
    RE_FUSE_TIME_LIMIT_S,
)


def test_a_message_queued_under_the_old_task_name_still_runs_the_job(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workers import app as celery_setup
    from workers import pipeline, tasks
    from workers.embedded import InProcessWorker

    ran: list[str] = []
    lock = threading.Lock()

    def re_fuse(rt: Any, job_id: str) -> str:
        with lock:
            ran.append(job_id)
        return "succeeded"

    monkeypatch.setattr(pipeline, "re_fuse", re_fuse)
    monkeypatch.setattr(tasks, "get_runtime", lambda: None)
    app = celery_setup.configure(Settings(data_dir=tmp_path))
    # A queue of its own: the in-memory broker is shared by everything in this process.
    queue = f"index-{uuid.uuid4().hex[:8]}"
    worker = InProcessWorker(app, [queue])
    worker.start()
    try:
        # The message as an older version sent it, then as this one does.
        for name, job_id in ((RE_FUSE_TASK_OLD_NAME, "job-old"), (RE_FUSE_TASK, "job-new")):
            app.send_task(name, (job_id,), queue=queue, ignore_result=True,
                          soft_time_limit=RE_FUSE_SOFT_TIME_LIMIT_S,
                          time_limit=RE_FUSE_TIME_LIMIT_S)
        deadline = time.monotonic() + 30
        while len(ran) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert sorted(ran) == ["job-new", "job-old"]
    old, new = app.tasks[RE_FUSE_TASK_OLD_NAME], app.tasks[RE_FUSE_TASK]
    assert (old.soft_time_limit, old.time_limit, old.max_retries) == (
        new.soft_time_limit, new.time_limit, new.max_retries)


def test_an_older_peers_dispatch_under_the_old_name_reaches_re_fusion() -> None:
    from workers.dispatch import CeleryDispatcher, owner_handlers

    dispatch = CeleryDispatcher()
    handlers = owner_handlers(dispatch)
    assert handlers["dispatch.refuse"] == handlers["dispatch.re_fuse"] == dispatch.re_fuse
