"""Which users have told us something: stated preferences or controls (`user_preferences`,
`user_controls`).

Few users ever do, yet every for-you, new-items and search request read both tables for its
user: a database session per request, about 1 ms, the largest cost of a for-you request
outside ranking and most of an answer-cache hit's (`bench/serve.md`'s profile,
`service.py:personal`). The serving sync keeps the set of users with a row in either table, and
a request reads the database only for them.

Being in the set costs one read; missing from it would serve an answer without what the user
said. So the set errs towards holding users:
- a process marks a user before it writes their row (`add`), so its own next request reads it;
- every sync poll reads the rows changed since the newest it saw, minus an overlap for
  transactions that commit an older timestamp late (`updated_at` is indexed, migration 0009),
  so other processes see a new row within a poll (`MEDLEY_EVENTS_POLL_INTERVAL_S`);
- a deleted row leaves its user in the set until an erasure notice makes the sync look again
  (`recheck`): a reset keeps what the user stated, an erasure keeps nothing, not even the id.
Until the first read (`loaded`), every user may have something.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from medley.dates import WATERMARK_OVERLAP_S, naive_utc
from medley.db.models import UserControls, UserPreferences

TABLES = (UserPreferences, UserControls)


class StatedUsers:
    def __init__(self) -> None:
        self._users: set[str] = set()
        self._seen: datetime | None = None  # the newest updated_at read (naive UTC)
        self._lock = threading.Lock()  # the sync swaps the set while requests add to it
        self.loaded = False

    def may_have(self, user_id: str) -> bool:
        return not self.loaded or user_id in self._users

    def add(self, user_id: str) -> None:
        with self._lock:
            self._users.add(user_id)

    def refresh(self, s: Session) -> int:
        """Take in the users whose rows changed since the last read (every row the first
        time); returns how many rows were read."""
        since = None if self._seen is None else self._seen - timedelta(seconds=WATERMARK_OVERLAP_S)
        found, newest = _read(s, since)
        with self._lock:
            self._users |= found
        if newest is not None and (self._seen is None or newest > self._seen):
            self._seen = newest
        self.loaded = True
        return len(found)

    def recheck(self, s: Session, which: Callable[[str], bool] | None) -> None:
        """After erasures or resets: the users `which` picks (None: whose is unknown, so
        every user) keep their place only if a row of theirs is left."""
        if which is None:  # a user marked meanwhile is read again by the next poll's overlap
            found, _ = _read(s, None)
            with self._lock:
                self._users = set(found)
            return
        picked = [u for u in list(self._users) if which(u)]
        if not picked:
            return
        left: set[str] = set()
        for table in TABLES:
            left.update(s.scalars(select(table.user_id).where(table.user_id.in_(picked))))
        with self._lock:
            self._users -= set(picked) - left


def _read(s: Session, since: datetime | None) -> tuple[set[str], datetime | None]:
    """Users with a row changed after `since` (every row: None), and the newest change."""
    found: set[str] = set()
    newest: datetime | None = None
    for table in TABLES:
        q = select(table.user_id, table.updated_at)
        if since is not None:
            q = q.where(table.updated_at > since)
        for user_id, at in s.execute(q):
            found.add(user_id)
            at = naive_utc(at)
            if newest is None or at > newest:
                newest = at
    return found, newest
