"""Nearline per-user candidates: what a for-you request's personal sources find for a user (the
index search of their content taste, the collaborative model's top items for their folded-in
vector, the ranker's item-to-item neighbours of their recent items) kept per user, so that a
request reads three short arrays instead of searching the index and scanning every item's
factors.

They depend only on the user's own events, the served model and the fusion view, so an entry
is stamped with those and holds until one of them moves: a like, a new model or a publish makes
the next request (or the background fill, whichever comes first) find them again. What moves
without a stamp is the catalog: an item indexed after an entry was found is not among its
content candidates. New items reach every user through the request's live "new" source anyway;
for the rest an entry found under an older catalog serves for at most `max_age_s`. Items
removed since are filtered out at request time, with every other filter.

Only requests without filters of their own use them (no `where`, no stated preferences): those
searches are the ones an entry answers exactly. The background fill (the sync's slow tick)
finds them first for users whose events just arrived, then for every known user, newest
activity first, so a returning user's first request reads them too. Where the learned ranker
scores, an entry also keeps its candidates' personal features (`features.PERSONAL`: the
products with the user's taste, liked items and collaborative vectors), so a request computes
those only for the candidates it finds beyond them. Stored as table rows (int32) and float32
columns: ~8 KB per user at 100 candidates per source, capped by `capacity` (least recently
used out).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from index.base import IndexUnavailable

if TYPE_CHECKING:
    from medley.recs.items import ItemTable

EMPTY = np.zeros(0, dtype=np.int32)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UserCandidates:
    stamp: Hashable  # (the user's events, the fusion view): see `PersonalSources.stamp`
    table_version: int  # the catalog they were found under
    found_at: float  # monotonic seconds
    content: np.ndarray  # table rows, best first; the user's consumed items already left out
    collab: np.ndarray  # table rows, best first; consumed ones still in (the request skips them)
    knn: np.ndarray  # table rows, best first; consumed ones left out
    user_vector: np.ndarray | None  # the folded-in collaborative vector they were found with
    # Where the learned ranker scores: (sorted rows, their `features.PERSONAL` columns) for the
    # candidates above and those a request is likely to find besides (trending, popular, the
    # new items matching the taste), so a request computes those columns only for candidates
    # it finds beyond them.
    kept: tuple[np.ndarray, np.ndarray] | None = None
    model: int = -1  # the model (`Recommender` serial) the model part was found under
    # New items matching the taste (table rows, best first; None: not searched). A request
    # takes these plus the rows written since `table_version` (`PersonalSources.young`).
    young: np.ndarray | None = None
    young_at: float = 0.0  # the clock (`Recommender.clock`) when they were searched


class UserLists:
    def __init__(self, capacity: int, max_age_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.max_age_s = max_age_s
        self.clock = clock
        self._entries: OrderedDict[str, UserCandidates] = OrderedDict()
        self._lock = threading.Lock()
        # Users to find first (their events just arrived), then the backfill's walk over
        # every known user; both drained by the sync's slow tick (`due`).
        self._pending: dict[str, None] = {}
        self._walk: list[str] = []
        self._walked: Hashable = ()  # the walk key of the walk under way (or the last one)
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, user_id: object) -> bool:
        with self._lock:
            return user_id in self._entries

    def _valid(self, entry: UserCandidates | None, stamp: Hashable, table_version: int) -> bool:
        return entry is not None and entry.stamp == stamp and (
            entry.table_version == table_version
            or self.clock() - entry.found_at < self.max_age_s)

    def get(self, user_id: str, stamp: Hashable, table_version: int) -> UserCandidates | None:
        """The user's entry if it still holds under these stamps; None on a miss."""
        if not self.enabled:
            return None
        with self._lock:
            entry = self._entries.get(user_id)
            if not self._valid(entry, stamp, table_version):
                self.misses += 1
                return None
            self._entries.move_to_end(user_id)
            self.hits += 1
            return entry

    def peek(self, user_id: str, stamp: Hashable, table_version: int
             ) -> UserCandidates | None:
        """`get` without counting a hit or a miss (the background fill asks)."""
        with self._lock:
            entry = self._entries.get(user_id)
            return entry if self._valid(entry, stamp, table_version) else None

    def put(self, user_id: str, entry: UserCandidates) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._entries[user_id] = entry
            self._entries.move_to_end(user_id)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    # --- the background fill ----------------------------------------------------------------
    def changed(self, users: Iterable[str]) -> None:
        """These users' events just arrived: their entries are found again first."""
        if not self.enabled:
            return
        with self._lock:
            for u in users:
                self._pending[u] = None

    def due(self, known: Callable[[], list[str]], limit: int, walk_key: Hashable = None
            ) -> list[str]:
        """Up to `limit` users to look at: those with new events, then the next of the walk
        over `known()` (every user with behaviour, newest activity last). A walk starts when
        `walk_key` (the model and the view every entry depends on) differs from the last
        walk's: a new model refinds every entry once, ahead of the requests."""
        if not self.enabled or limit <= 0:
            return []
        with self._lock:
            out = list(self._pending)[:limit]
            for u in out:
                del self._pending[u]
            if len(out) < limit:
                if not self._walk and walk_key != self._walked:
                    self._walked = walk_key
                    self._walk = known()[-self.capacity:]  # the newest `capacity` users
                take = min(limit - len(out), len(self._walk))
                out += self._walk[len(self._walk) - take:][::-1]  # newest activity first
                del self._walk[len(self._walk) - take:]
            return out

    # --- erasure ----------------------------------------------------------------------------
    def forget(self, which: Callable[[str], bool]) -> int:
        """Drop the entries (and pending work) of the users that match: nothing derived from an
        erased user may outlive the erasure."""
        with self._lock:
            gone = [u for u in self._entries if which(u)]
            for u in gone:
                del self._entries[u]
            self._pending = {u: None for u in self._pending if not which(u)}
            self._walk = [u for u in self._walk if not which(u)]
        return len(gone)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._pending.clear()
            self._walk = []
            self._walked = ()  # walk again

    def stats(self) -> dict[str, float | int]:
        with self._lock:
            total = self.hits + self.misses
            return {"users": len(self._entries), "hits": self.hits, "misses": self.misses,
                    "hit_rate": round(self.hits / total, 4) if total else 0.0}

    def nbytes(self) -> int:
        """The arrays the entries hold (what their memory grows with)."""
        with self._lock:
            entries = list(self._entries.values())
        return sum(e.content.nbytes + e.collab.nbytes + e.knn.nbytes
                   + (e.young.nbytes if e.young is not None else 0)
                   + (e.user_vector.nbytes if e.user_vector is not None else 0)
                   + (e.kept[0].nbytes + e.kept[1].nbytes if e.kept is not None else 0)
                   for e in entries)


def fill(lists: UserLists, known: Callable[[], list[str]], warm: Callable[[str], bool],
         budget_s: float, walk_key: Hashable, batch: int = 16) -> int:
    """Background work (the sync's ticks): find entries for the users `due` until `budget_s`
    of this thread's time is spent; `warm(user)` finds one user's (False: theirs still holds).
    Returns how many were found. A user whose entry cannot be found is skipped: their
    requests find it themselves."""
    if not lists.enabled:
        return 0
    started = time.perf_counter()
    done = 0
    while time.perf_counter() - started < budget_s:
        users = lists.due(known, batch, walk_key)
        if not users:
            break
        for at, u in enumerate(users):
            try:
                done += warm(u)
            except IndexUnavailable:  # an outage: these are found once the index answers
                lists.changed(users[at:])
                raise
            except Exception:  # this user alone: their request finds it itself
                log.exception("nearline candidates of user %s not found; skipped", u)
        if len(users) < batch:  # nothing more due
            break
    return done


def rows_of(table: ItemTable, ids: Sequence[str]) -> np.ndarray:
    """The table rows of the ids it holds, as an entry keeps them."""
    rows = table.rows(ids)
    return rows[rows >= 0].astype(np.int32)


def ids_of(table: ItemTable, rows: np.ndarray, allowed: np.ndarray) -> list[str]:
    """The ids of an entry's rows that pass a request's `allowed` mask, in their order (a row
    past the mask is an item added since the mask was built: not allowed)."""
    ok = rows < len(allowed)
    ok[ok] = allowed[rows[ok]]
    ids = table.ids
    return [ids[r] for r in rows[ok].tolist()]
