"""Start and stop everything the API process owns, according to settings."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from enrich.registry import Family
from index import process as index_process
from index.process import IndexProcess
from index.remote import OPERATIONS as INDEX_OPERATIONS
from index.remote import RemoteIndex
from medley import owner
from medley.catalog import Catalog
from medley.config import Settings
from medley.editor.service import FusionEditor
from medley.experiments.service import Experiments
from medley.keys import KeyStore
from medley.ratelimit import RateLimiter
from medley.recs.service import Recommendations
from workers import app as celery_setup
from workers.dispatch import CeleryDispatcher, ForwardingDispatcher, owner_handlers
from workers.embedded import InProcessWorker, recover
from workers.recovery import Sweeper, queue_health
from workers.runtime import Runtime, set_runtime

log = logging.getLogger("medley")
QUEUE_PROBE_S = 2.0  # a health-check storm is not a database-load storm


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Something only one process may hold (the embedded shard, the embedded broker): the
        # first process on this data folder owns it and the others are its peers
        # (medley/owner.py). With a Qdrant server and an external broker, all are equal.
        self._claim = owner.claim(settings.data_dir) if self.owns_index else None
        self.peer = owner.OwnerClient(settings.data_dir) \
            if self.owns_index and self._claim is None else None
        # The embedded shard: in the owner's index process (every process calls it), else
        # in the owner itself (peers call through the owner).
        self.index_process = IndexProcess(settings.storage) \
            if self.embedded_index and settings.index_process and self.peer is None else None
        remote = None
        if self.embedded_index and settings.index_process:
            remote = index_process.remote(settings.storage)
        elif self.peer is not None and self.embedded_index:
            remote = RemoteIndex(self.peer.call)
        with owner.one_at_a_time(settings.data_dir, "migrate"):
            self.runtime = Runtime.build(settings, index=remote)
        self.dispatch: CeleryDispatcher | ForwardingDispatcher = CeleryDispatcher()
        if self.peer is not None and settings.embedded_broker:
            self.dispatch = ForwardingDispatcher(self.peer.call)
        self._server: owner.OwnerServer | None = None
        self.keys = KeyStore(self.runtime.db, settings.key_cache_s)
        self.limiter = RateLimiter(settings.rate_limits)
        self.catalog = Catalog(self.runtime.db, self.runtime.store, self.dispatch)
        self.recs = Recommendations(settings, self.runtime.db, self.runtime.models,
                                    self.runtime.index, self.dispatch.train)
        self.editor = FusionEditor(self.recs, self.dispatch.re_fuse)
        self.experiments = Experiments(self.recs, self.editor)
        # In-process workers: the text queue on one of its own with many threads (they mostly
        # wait on a shared batch, enrich/batching.py), the other queues on two threads.
        self.workers: list[InProcessWorker] = []
        self.health: dict[str, dict[str, str]] | None = None  # None while models load
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._index_probe: tuple[float, dict[str, str]] = (-1e9, {})
        self._queue_probe: tuple[float, dict[str, Any]] = (-1e9, {})

    @property
    def owns_index(self) -> bool:
        """Whether this deployment has something one process must own (see __init__)."""
        return self.settings.qdrant_url is None or self.settings.embedded_broker

    @property
    def embedded_index(self) -> bool:
        return self.settings.qdrant_url is None

    @property
    def role(self) -> str:
        """"owner", "peer", or "equal" (external index and broker: nothing to own)."""
        return "equal" if not self.owns_index else "peer" if self.peer else "owner"

    def worker_queues(self) -> list[str]:
        if self.peer is not None:
            return []  # the owner's worker runs what this process dispatches
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
        # The serving state (items, behaviour, the model) builds while the index opens, in
        # its own process or here: a start waits for the longer of the two, not their sum.
        index_up = threading.Event()
        for target, name in self.recs.threads(self._stop, owner=self.peer is None,
                                              index_up=index_up):
            self._spawn(target, name)
        if self.index_process is not None:
            # Raises, plainly, if the index cannot be opened.
            self.index_process.start(self.runtime.named_dims())
            self._spawn(self.index_process.watch, "medley-index-watch")
        if self.owns_index and self.peer is None:
            self.runtime.index()  # fail at start, plainly, if the index cannot be opened
            self._server = owner.OwnerServer(self.settings.data_dir, self._owner_handlers())
            self._server.start()
        index_up.set()
        queues = self.worker_queues()
        if queues:
            text = [q for q in queues if q == celery_setup.TEXT_QUEUE]
            rest = [q for q in queues if q != celery_setup.TEXT_QUEUE]
            for group, threads in ((rest, 2), (text, self.settings.text_worker_concurrency)):
                if group:
                    worker = InProcessWorker(app, group, threads)
                    worker.start()
                    self.workers.append(worker)
        if self.settings.embedded_broker and self.peer is None:
            recover(self.runtime, self.dispatch)
            self.editor.resume()
        self._spawn(self._probe_models, "medley-model-probe")
        if self.peer is None:  # the owner sweeps and schedules for every process
            self._spawn(self._sweep_stale, "medley-stale-sweep")
        self.experiments.refresh()  # the first answers already serve running experiments
        for target, name in self.experiments.threads(self._stop, owner=self.peer is None):
            self._spawn(target, name)

    def _owner_handlers(self) -> dict[str, Callable[..., Any]]:
        def on_index(op: str) -> Callable[..., Any]:
            return lambda *a, **k: getattr(self.runtime.index(), op)(*a, **k)

        handlers = {f"index.{op}": on_index(op) for op in INDEX_OPERATIONS}
        if isinstance(self.dispatch, CeleryDispatcher):
            handlers.update(owner_handlers(self.dispatch))
        return handlers

    def _spawn(self, target: object, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        t.start()
        self._threads.append(t)

    def _probe_models(self) -> None:
        # Off the event loop: loading weights takes seconds, and a failure must be said plainly.
        # A peer only embeds queries (text and CLIP text); the owner's worker transcribes, so
        # a peer does not hold Whisper in memory too.
        families = (Family.CLIP, Family.TEXT) if self.peer is not None else tuple(Family)
        health = self.runtime.models.health(families)
        for family, state in health.items():
            if state["status"] != "ok":
                log.warning("MODEL UNAVAILABLE: %s: %s", family, state["detail"])
        self.health = health

    def _sweep_stale(self) -> None:
        # Timed-out extractions fail; work the broker lost (a restart, an outage during a
        # dispatch) is sent again (workers/recovery.py).
        sweeper = Sweeper(self.settings.limits, self.runtime.db, self.dispatch,
                          on_stall=self._worker_stalled if self.workers else None)
        while not self._stop.wait(self.settings.stale_sweep_interval_s):
            try:
                sweeper.sweep()
            except Exception:
                log.exception("stale sweep failed")

    def _worker_stalled(self, queue: str) -> None:
        if queue == celery_setup.INDEX_QUEUE and self.index_state()["status"] != "ok":
            return  # the index is away: its writes wait for it, not for a new consumer
        for worker in self.workers:
            if queue in worker.queues:
                worker.restart(f"queue {queue} has waiting work and nothing started or "
                               f"finished for {self.settings.redispatch_idle_s:.0f} s")

    def index_state(self) -> dict[str, str]:
        """Whether the index answers (GET /healthz): an outage is reported, not raised. Probed
        at most once a second, so a health-check storm is not an index-load storm."""
        at, state = self._index_probe
        if time.monotonic() - at < 1.0:
            return state
        backend = "qdrant" if self.settings.qdrant_url is not None else \
            "embedded, in its own process" if self.settings.index_process else \
            "embedded, through the owner process" if self.peer else "embedded"
        try:
            self.runtime.index().count()
            state = {"backend": backend, "status": "ok"}
        except Exception as exc:
            state = {"backend": backend, "status": "unavailable", "detail": str(exc)}
        self._index_probe = (time.monotonic(), state)
        return state

    def queue_state(self) -> dict[str, Any]:
        """Per extraction queue: waiting, the oldest one's age, finished per minute (GET
        /healthz), read from the database at most every QUEUE_PROBE_S."""
        at, state = self._queue_probe
        if time.monotonic() - at < QUEUE_PROBE_S:
            return state
        try:
            state = queue_health(self.runtime.db)
        except Exception as exc:  # the database away: said, not raised (503s say it too)
            state = {"unavailable": str(exc)[:200]}
        self._queue_probe = (time.monotonic(), state)
        return state

    def stop(self) -> None:
        self._stop.set()
        self.recs.sync.wake.set()
        self.recs.close()  # queued event writes land before the database closes
        self.experiments.exposures.flush()  # and so do logged exposures
        for worker in self.workers:
            worker.stop()
        if self._server is not None:
            self._server.close()
        if self.peer is not None:
            self.peer.close()
        self.runtime.close()
        if self.index_process is not None:
            self.index_process.stop()
        set_runtime(None)
        if self._claim is not None:
            self._claim.close()  # the next process to start here owns the folder
