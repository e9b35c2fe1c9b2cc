"""Writers to one SQLite file from the threads of one process take turns through a lock of
their own, and the request threads' writes go first.

SQLite lets one connection write at a time, and a connection that finds the file locked
polls for it with growing sleeps (1 ms at first, 100 ms after a dozen tries): under steady
writing a waiter keeps missing the moment the lock comes free. During an import on the
embedded default an upload's insert waited up to 0.7 s behind the extraction tasks' commits
(timed by a probe patch; `medley_db_write_wait_seconds` now shows such waits, and
`benchmarks.upload_latency` the uploads' latency). Here a waiting thread wakes as soon as
the writer before it is done, and of the threads waiting, one serving a request (an upload,
an event, an edit) goes before background work (the worker's tasks, marked with
`mark_background`).

The lock is held from a connection's first write until its commit or rollback: pysqlite
begins a transaction just before the first INSERT, UPDATE or DELETE, so that is where SQLite's
own lock is taken too. Writers in other processes still meet SQLite's wait; a thread that
waits here longer than `timeout` goes on to it as well, as it did before.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from medley import metrics

DML = ("INSERT", "UPDATE", "DELETE", "REPLACE")
_role = threading.local()


def mark_background(on: bool) -> None:
    """Whether this thread's writes wait for the request threads' (a worker's task threads,
    between tasks: `workers.tasks`)."""
    _role.background = on


class OneWriter:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._mutex = threading.Lock()
        self._urgent_turn = threading.Condition(self._mutex)
        self._background_turn = threading.Condition(self._mutex)
        self._busy = False
        self._urgent = 0  # request threads waiting
        self._holder: tuple[str, float] = ("", 0.0)  # the turn's role and since when

    def install(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "commit", self._done)
        event.listen(engine, "rollback", self._done)

    def acquire(self, background: bool) -> bool:
        """Wait for the turn to write; False after `timeout`."""
        asked = time.monotonic()
        deadline = asked + self.timeout
        turn = self._background_turn if background else self._urgent_turn
        role = "background" if background else "request"
        with self._mutex:
            if not background:
                self._urgent += 1
            try:
                while self._busy or (background and self._urgent):
                    left = deadline - time.monotonic()
                    if left <= 0 or not turn.wait(left):
                        return False
                self._busy = True
                self._holder = (role, time.monotonic())
            finally:
                if not background:
                    self._urgent -= 1
        metrics.DB_WRITE_WAIT.labels(role).observe(self._holder[1] - asked)
        return True

    def release(self) -> None:
        with self._mutex:
            role, since = self._holder
            self._busy = False
            # One waiter, the most urgent: waking every thread would only make them queue
            # for the GIL to find the lock taken again.
            if self._urgent:
                self._urgent_turn.notify()
            else:
                self._background_turn.notify()
        metrics.DB_WRITE_HOLD.labels(role).observe(time.monotonic() - since)

    def _before(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "writer" in conn.info or not statement.lstrip()[:7].upper().startswith(DML):
            return
        conn.info["writer"] = self.acquire(getattr(_role, "background", False))

    def _done(self, conn: Any) -> None:
        if conn.info.pop("writer", False):
            self.release()
