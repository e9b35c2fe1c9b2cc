"""Start and stop everything the API process owns, according to settings."""

from __future__ import annotations

import logging
import threading
import time

from medley.catalog import Catalog
from medley.config import Settings
from medley.editor.service import FusionEditor
from medley.keys import KeyStore
from medley.ratelimit import RateLimiter
from medley.recs.service import Recommendations
from workers import app as celery_setup
from workers.dispatch import CeleryDispatcher
from workers.embedded import InProcessWorker, recover
from workers.recovery import Sweeper
from workers.runtime import Runtime, set_runtime

log = logging.getLogger("medley")


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runtime = Runtime.build(settings)
        self.dispatch = CeleryDispatcher()
        self.keys = KeyStore(self.runtime.db, settings.key_cache_s)
        self.limiter = RateLimiter(settings.rate_limits)
        self.catalog = Catalog(self.runtime.db, self.runtime.store, self.dispatch)
        self.recs = Recommendations(settings, self.runtime.db, self.runtime.models,
                                    self.runtime.index, self.dispatch.train)
        self.editor = FusionEditor(self.recs, self.dispatch.refuse)
        self.worker: InProcessWorker | None = None
        self.health: dict[str, dict[str, str]] | None = None  # None while models load
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._index_probe: tuple[float, dict[str, str]] = (-1e9, {})

    @property
    def owns_index(self) -> bool:
        return self.settings.qdrant_url is None or self.settings.embedded_broker

    def worker_queues(self) -> list[str]:
        if self.settings.embedded_broker:
            return list(celery_setup.ALL_QUEUES)
        return list(self.settings.embedded_worker_queues) if self.owns_index else []

    def start(self) -> None:
        from threadpoolctl import threadpool_limits

        # Ranking does many small matrix products from many request threads at once; BLAS
        # threads on top of that only contend for the same cores.
        threadpool_limits(1, user_api="blas")
        set_runtime(self.runtime)
        if self.settings.bootstrap_admin_key is not None:
            self.keys.ensure_bootstrap(self.settings.bootstrap_admin_key.get_secret_value())
        app = celery_setup.configure(self.settings)
        if self.owns_index:
            self.runtime.index()  # fail at start, plainly, if the index cannot be opened
        queues = self.worker_queues()
        if queues:
            self.worker = InProcessWorker(app, queues)
            self.worker.start()
        if self.settings.embedded_broker:
            recover(self.runtime, self.dispatch)
            self.editor.resume()
        self._spawn(self._probe_models, "medley-model-probe")
        self._spawn(self._sweep_stale, "medley-stale-sweep")
        for target, name in self.recs.threads(self._stop):
            self._spawn(target, name)

    def _spawn(self, target: object, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        t.start()
        self._threads.append(t)

    def _probe_models(self) -> None:
        # Off the event loop: loading weights takes seconds, and a failure must be said plainly.
        health = self.runtime.models.health()
        for family, state in health.items():
            if state["status"] != "ok":
                log.warning("MODEL UNAVAILABLE: %s: %s", family, state["detail"])
        self.health = health

    def _sweep_stale(self) -> None:
        # Timed-out extractions fail; work the broker lost (a restart, an outage during a
        # dispatch) is sent again (workers/recovery.py).
        sweeper = Sweeper(self.settings, self.runtime.db, self.dispatch)
        while not self._stop.wait(self.settings.stale_sweep_interval_s):
            try:
                sweeper.sweep()
            except Exception:
                log.exception("stale sweep failed")

    def index_state(self) -> dict[str, str]:
        """Whether the index answers (GET /healthz): an outage is reported, not raised. Probed
        at most once a second, so a health-check storm is not an index-load storm."""
        at, state = self._index_probe
        if time.monotonic() - at < 1.0:
            return state
        backend = "embedded" if self.settings.qdrant_url is None else "qdrant"
        try:
            self.runtime.index().count()
            state = {"backend": backend, "status": "ok"}
        except Exception as exc:
            state = {"backend": backend, "status": "unavailable", "detail": str(exc)}
        self._index_probe = (time.monotonic(), state)
        return state

    def stop(self) -> None:
        self._stop.set()
        self.recs.sync.wake.set()
        self.recs.close()  # queued event writes land before the database closes
        if self.worker is not None:
            self.worker.stop()
        self.runtime.close()
        set_runtime(None)
