"""Exposure logging off the request path: answers append a row to a buffer, one writer thread
inserts what gathered in one transaction every FLUSH_S. A row the database refuses is dropped
alone, with a warning; the buffer is bounded, so a database outage costs exposures (counted),
never memory or answers."""

from __future__ import annotations

import logging
import threading
from typing import Any

from medley.db import Database
from medley.experiments import store

log = logging.getLogger(__name__)
FLUSH_S = 0.5
MAX_BUFFER = 200_000


class ExposureLog:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        # One flush at a time, held across its write: a flush returns once every row added
        # before it is in the database, even while the writer thread's own flush is mid-insert
        # (a caller reading the table right after, as a test or an erasure does, saw nothing).
        self._writing = threading.Lock()
        self.written = 0
        self.dropped = 0

    def add(self, row: dict[str, Any]) -> None:
        with self._lock:
            if len(self._rows) >= MAX_BUFFER:
                self.dropped += 1
                return
            self._rows.append(row)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(FLUSH_S):
            self.flush()
        self.flush()

    def flush(self) -> None:
        with self._writing:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return
        try:
            with self.db.session() as s:
                store.write_exposures(s, rows)
            self.written += len(rows)
            return
        except Exception as exc:  # one bad row must not cost the others: write them one by one
            log.warning("exposure batch of %d failed (%s); writing one by one", len(rows), exc)
        for row in rows:
            try:
                with self.db.session() as s:
                    store.write_exposures(s, [row])
                self.written += 1
            except Exception as exc:
                self.dropped += 1
                log.warning("exposure %s dropped: %s", row.get("recommendation_id"), exc)
