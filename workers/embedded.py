"""A real Celery worker running on threads inside the API process (the embedded default), and
the start-up sweep that makes the embedded deployment durable across restarts."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from celery import Celery
from celery.worker import WorkController

from medley import repo
from medley.catalog import Dispatcher
from workers.runtime import Runtime

log = logging.getLogger(__name__)
RESTART_STOP_S = 5.0  # how long a restart waits for the stuck consumer to stop


class _Controller(WorkController):
    """A WorkController that tells us when its consumer is ready."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: Any) -> None:
        self.ready.set()


class InProcessWorker:
    def __init__(self, app: Celery, queues: Sequence[str], concurrency: int = 2) -> None:
        self.app = app
        self.queues = list(queues)
        self.concurrency = concurrency
        self._controller: _Controller | None = None
        self._thread: threading.Thread | None = None
        self.restarts = 0  # by the stale sweep, on a queue that stopped moving

    def start(self, timeout: float = 30.0) -> None:
        app = self.app
        app.finalize()
        app.set_current()
        self._controller = _Controller(
            app=app,
            pool="threads",
            concurrency=self.concurrency,
            queues=self.queues,
            hostname=f"embedded-{'-'.join(self.queues)}@{threading.get_native_id()}",
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            loglevel="WARNING",
        )
        self._thread = threading.Thread(
            target=self._controller.start, name="medley-worker", daemon=True
        )
        self._thread.start()
        if not self._controller.ready.wait(timeout):
            raise RuntimeError("the in-process Celery worker did not start")
        log.info("in-process worker consuming %s", ", ".join(self.queues))

    def restart(self, why: str) -> None:
        """A consumer that stopped consuming (its thread gone or stuck): a fresh one takes
        the queues. Threads stuck in the old one cannot be killed; they are left behind
        (daemon threads) and their tasks are re-sent by the sweep."""
        log.warning("in-process worker restarted: %s", why)
        self.restarts += 1
        self.stop(timeout=RESTART_STOP_S)
        self.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self._controller is not None:
            self._controller.stop(in_sighandler=False)
        if self._thread is not None:
            self._thread.join(timeout)
        self._controller = None
        self._thread = None


def recover(rt: Runtime, dispatch: Dispatcher) -> int:
    """Dispatch again what a stopped process left unfinished. Tasks are idempotent, so a
    duplicate is harmless. Returns how many tasks were sent."""
    with rt.db.session() as s:
        pending = repo.pending(s)
        unindexed = repo.unindexed(s)
    for item_id, m in pending:
        dispatch.extract(item_id, m)
    waiting = {item_id for item_id, _ in pending}
    for item_id in unindexed:
        if item_id not in waiting:
            dispatch.index(item_id)
    if pending or unindexed:
        log.info("resumed %d extractions and %d index writes", len(pending), len(unindexed))
    return len(pending) + len(unindexed)
