"""Offline evaluations as background jobs: a request queues one and answers at once; one
worker thread of this process runs them in turn, writing progress and the result to the
database, where any serving process can report it (`GET /v1/fusion/evaluations/{id}`).

An evaluation replays the event log under each view (`medley.editor.evaluate`): tens of
seconds at a hundred thousand events, too long to hold a request open. A job that fails is
recorded with why and the next one runs; a job whose process stopped mid-run shows as failed
once its heartbeat is older than STALE_S.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from medley.db import Database
from medley.db.models import Evaluation, utcnow
from medley.errors import NotFound
from medley.recs.items import FusionView

log = logging.getLogger(__name__)
STALE_S = 600.0  # no sign of life for this long while "running": its process is gone
Run = Callable[[Mapping[str, FusionView], Callable[[float], None]], dict[str, Any]]


class EvaluationJobs:
    def __init__(self, db: Database, run: Run) -> None:
        self.db = db
        self._run = run
        self._queue: queue.Queue[tuple[str, dict[str, FusionView]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, subject: str, views: Mapping[str, FusionView], actor: str) -> Evaluation:
        row = Evaluation(id=str(uuid.uuid4()), subject=subject, status="queued", progress=0.0,
                         actor=actor, views={name: {"weights": {m.value: w for m, w in
                                                                v.weights.items()},
                                                    "profile_id": v.profile_id}
                                             for name, v in views.items()})
        with self.db.session() as s:
            s.add(row)
        self._queue.put((row.id, dict(views)))
        with self._lock:  # the worker starts with the first job, not at import or start-up
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="medley-evaluations",
                                                daemon=True)
                self._thread.start()
        return row

    def get(self, job_id: str) -> Evaluation:
        with self.db.session() as s:
            row = s.get(Evaluation, job_id)
        if row is None:
            raise NotFound(f"evaluation {job_id} does not exist")
        if row.status == "running" and time.time() - (row.heartbeat or 0.0) > STALE_S:
            row.status, row.error = "failed", "the process running it stopped"
        return row

    def _update(self, job_id: str, **values: Any) -> None:
        with self.db.session() as s:
            row = s.get(Evaluation, job_id)
            if row is not None:
                for key, value in values.items():
                    setattr(row, key, value)

    def _reporter(self, job_id: str) -> Callable[[float], None]:
        def report(share: float) -> None:
            self._update(job_id, progress=round(min(max(share, 0.0), 1.0), 3),
                         heartbeat=time.time())

        return report

    def _work(self) -> None:
        while True:
            job_id, views = self._queue.get()
            try:
                self._update(job_id, status="running", heartbeat=time.time())
                result = self._run(views, self._reporter(job_id))
                self._update(job_id, status="succeeded", progress=1.0, result=result,
                             finished_at=utcnow())
            except Exception as exc:  # one failed evaluation must not stop the next ones
                log.exception("evaluation %s failed", job_id)
                try:
                    self._update(job_id, status="failed", error=str(exc)[:500],
                                 finished_at=utcnow())
                except Exception:
                    log.exception("could not record evaluation %s as failed", job_id)
