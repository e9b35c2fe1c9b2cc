"""Group commit for behavioural events.

Why: every `POST /v1/events` used to write its batch in a transaction of its own. On SQLite
(the embedded default) each write transaction takes the database's single writer lock and ends
in a sync to disk, so 16 clients posting small batches queued behind one another (p95 ~1 s).
Here one writer thread takes everything that is queued and writes it in ONE transaction, then
wakes each request with its own answer: a burst of small batches becomes a few transactions.

A request still returns only once its events are committed ("accepted" still means "stored"),
and nothing waits on a timer: a lone request is written at once; requests that arrive while a
transaction is running are the ones grouped into the next.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence

from sqlalchemy.orm import Session

from medley.db import Database
from medley.recs import store
from medley.recs.events import Event

log = logging.getLogger(__name__)

class _Submission:
    """One request's events, waiting for the writer; the writer fills `inserted` or `error`."""

    __slots__ = ("done", "error", "events", "inserted")

    def __init__(self, events: Sequence[Event]) -> None:
        self.events = events
        self.done = threading.Event()
        self.inserted: set[str] = set()
        self.error: BaseException | None = None

    def finish(self, inserted: set[str] | None = None, error: BaseException | None = None
               ) -> None:
        self.inserted, self.error = inserted or set(), error
        self.done.set()


def _insert(s: Session, events: Sequence[Event]) -> set[str]:
    # Looked up on the module at each call, so a test can wrap store.insert_events (which
    # sends a large group as multi-row INSERTs of bounded size: SQLAlchemy's insertmanyvalues).
    return store.insert_events(s, events)


class GroupCommitter:
    """One writer thread (`run`) for the events of every request (`submit`)."""

    def __init__(self, db: Database, *, max_events: int = 5000) -> None:
        self.db = db
        self.max_events = max_events  # per transaction; a larger single submission goes alone
        self._cond = threading.Condition()
        self._queue: deque[_Submission] = deque()
        self._running = False
        self._closed = False
        self._writer: int | None = None  # the writer thread's ident while it runs
        self._stopped = threading.Event()  # set when run() has returned

    # --- request threads --------------------------------------------------------------------
    def submit(self, events: Sequence[Event]) -> set[str]:
        """Store `events`; returns the event ids this call inserted (the rest were stored
        already, or by an earlier submission). Blocks until committed; a database error of this
        submission is raised here, in the caller's thread."""
        if not events:
            return set()
        job = _Submission(events)
        with self._cond:
            queued = self._running and not self._closed
            if queued:
                self._queue.append(job)
                self._cond.notify()
        if not queued:
            # No writer (never started, as in tests and tools; or closed at shutdown): write
            # inline, as before group commit, rather than refuse events.
            return self._write_alone(job, raise_error=True)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.inserted

    @property
    def queued(self) -> int:
        """Submissions waiting for the writer."""
        with self._cond:
            return len(self._queue)

    @property
    def running(self) -> bool:
        """Whether submissions go to the writer thread (else each is written inline)."""
        with self._cond:
            return self._running and not self._closed

    # --- the writer thread ------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        """The writer loop. Returns after close() (or `stop`), once the queue is drained."""
        with self._cond:
            if self._running:
                raise RuntimeError("the event writer is already running")
            if self._closed:
                self._stopped.set()
                return
            self._running, self._writer = True, threading.get_ident()
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closed:
                        if stop is not None and stop.is_set():
                            self._closed = True
                            break
                        # Woken by submit() at once; the timeout only notices `stop`.
                        self._cond.wait(0.5)
                    if not self._queue:  # closed and drained
                        return
                    group = self._take()
                try:
                    self._write(group)
                except Exception:  # a bug here must not stop event storage for good
                    log.exception("event writer: unexpected error")
                finally:
                    for job in group:  # nobody is left waiting, whatever happened
                        if not job.done.is_set():
                            job.finish(error=RuntimeError("the event writer failed"))
        finally:
            with self._cond:
                self._running, self._writer = False, None
            self._stopped.set()

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking submissions (later ones are written inline), write what is queued, and
        wait for the writer thread to end."""
        with self._cond:
            self._closed = True
            wait = self._running and self._writer != threading.get_ident()
            self._cond.notify_all()
        if wait:
            self._stopped.wait(timeout)

    def _take(self) -> list[_Submission]:
        # In queue order, up to max_events (at least one submission, however large).
        group = [self._queue.popleft()]
        size = len(group[0].events)
        while self._queue and size + len(self._queue[0].events) <= self.max_events:
            job = self._queue.popleft()
            group.append(job)
            size += len(job.events)
        return group

    def _write(self, group: list[_Submission]) -> None:
        # Each event_id goes into the INSERT once, for the first submission in queue order that
        # holds it; a later holder in the same group sees it as a duplicate, as it would have had
        # it come in a later transaction. The database skips ids stored already (on conflict do
        # nothing, SQLite and PostgreSQL alike), so `inserted` tells whose rows are new.
        seen: set[str] = set()
        owned: list[list[Event]] = []
        for job in group:
            mine = [e for e in job.events if e.event_id not in seen]
            seen.update(e.event_id for e in mine)
            owned.append(mine)
        try:
            with self.db.session() as s:
                inserted = _insert(s, [e for mine in owned for e in mine])
        except Exception as exc:
            if len(group) == 1:
                group[0].finish(error=exc)
                return
            # One bad submission must not fail the others: write each alone, in queue order, so
            # only the one that really fails gets the error (an id a failed submission held
            # then goes to the next holder).
            log.warning("event group of %d submissions failed (%s); writing each alone",
                        len(group), exc)
            for job in group:
                self._write_alone(job, raise_error=False)
            return
        for job, mine in zip(group, owned, strict=True):
            job.finish({e.event_id for e in mine if e.event_id in inserted})

    def _write_alone(self, job: _Submission, *, raise_error: bool) -> set[str]:
        try:
            with self.db.session() as s:
                inserted = _insert(s, job.events)
        except Exception as exc:
            if raise_error:
                raise
            job.finish(error=exc)
            return set()
        job.finish(inserted)
        return inserted
