"""Offline evaluations as background jobs: progress and results reach the database, a failed
job says why and the next one still runs, a job whose process died shows as failed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from medley.db import Database
from medley.editor import jobs
from medley.errors import NotFound
from medley.recs.items import FusionView


def _wait(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_jobs_run_in_turn_and_a_failure_does_not_stop_the_next(database_url: str) -> None:
    db = Database(database_url)  # SQLite, and PostgreSQL (integration)
    db.migrate()
    halfway = threading.Event()
    go_on = threading.Event()

    def run(views: Mapping[str, FusionView], progress: Callable[[float], None]
            ) -> dict[str, Any]:
        if "boom" in views:
            raise RuntimeError("the event log could not be read")
        progress(0.5)
        halfway.set()
        go_on.wait(5)
        return {"users": 7, **{name: {"ndcg_at_10": 0.1} for name in views}}

    queue = jobs.EvaluationJobs(db, run)
    view = FusionView({})
    bad = queue.submit("draft", {"boom": view}, "ana")
    good = queue.submit("profile:3", {"active": view, "candidate": view}, "ana")
    assert queue.get(good.id).status == "queued" or halfway.is_set()
    halfway.wait(5)
    running = queue.get(good.id)
    assert running.status == "running" and running.progress == 0.5
    failed = queue.get(bad.id)
    assert failed.status == "failed" and "could not be read" in (failed.error or "")
    go_on.set()
    _wait(lambda: queue.get(good.id).status == "succeeded")
    done = queue.get(good.id)
    assert done.progress == 1.0 and done.result == {"users": 7, "active": {"ndcg_at_10": 0.1},
                                                    "candidate": {"ndcg_at_10": 0.1}}
    assert done.finished_at is not None and done.views["active"]["profile_id"] is None
    with pytest.raises(NotFound):
        queue.get("no-such-job")


def test_a_job_whose_process_stopped_reads_as_failed(database_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(database_url)
    db.migrate()
    stuck = threading.Event()
    def run(views: Mapping[str, FusionView], progress: Callable[[float], None]
            ) -> dict[str, Any]:
        stuck.wait(5)
        return {}

    queue = jobs.EvaluationJobs(db, run)
    job = queue.submit("draft", {"active": FusionView({})}, "ana")
    _wait(lambda: queue.get(job.id).status == "running")
    monkeypatch.setattr(jobs, "STALE_S", 0.0)  # its heartbeat is now too old
    time.sleep(0.01)
    stale = queue.get(job.id)
    assert stale.status == "failed" and stale.error == "the process running it stopped"
    stuck.set()
