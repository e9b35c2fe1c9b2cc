"""Live behavioural state folded from the event stream, in the serving process's memory.

Everything here is derived from the events table, so a restarted process replays it and several
API processes each converge on the same state (they all tail the same table).
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat

import numpy as np

from medley.recs.events import CONSUMED, Event, EventType

LN2 = math.log(2.0)
RECENT_POSITIVES = 50  # per user: what the taste vector and "because you liked" draw on
COOC_WINDOW = 10  # a positive pairs with the user's previous positives up to this many back
CONTEXT_KEYS = ("surface", "device", "locale")
TOP_REFRESH_S = 0.5
TOP_CACHED = 1000


class DecayedCounter:
    """Per-key exponentially decayed sums, kept in log space so any time span is safe:
    log S = log Σ w·e^(r·t); the value at time T is S·e^(-r·T). Ranking by log S is the same
    at every T, so the top list needs no clock."""

    def __init__(self, half_life_s: float) -> None:
        self.rate = LN2 / half_life_s
        self.log: dict[str, float] = {}
        self._top: list[str] = []
        self._top_at = -1.0  # monotonic time of the cached ranking; < 0: none
        self._dirty = False

    def add(self, key: str, w: float, t: float) -> None:
        if w <= 0:
            return
        v = math.log(w) + self.rate * t
        self._dirty = True
        old = self.log.get(key)
        if old is None:
            self.log[key] = v
        else:  # log(e^old + e^v) without overflow
            hi, lo = (old, v) if old >= v else (v, old)
            self.log[key] = hi + math.log1p(math.exp(lo - hi))

    def value(self, key: str, now: float) -> float:
        v = self.log.get(key)
        return 0.0 if v is None else math.exp(min(v - self.rate * now, 700.0))

    def log1p_values(self, keys: Sequence[str], now: float) -> np.ndarray:
        """log(1 + value) of many keys at once (0 for unknown keys): one dictionary lookup
        each, mapped in C (a generator costs twice as much), the arithmetic in numpy (per-key
        `value` calls cost ~1 µs apiece)."""
        logs = np.fromiter(map(self.log.get, keys, repeat(-np.inf)), dtype=np.float64,
                           count=len(keys))
        return np.log1p(np.exp(np.minimum(logs - self.rate * now, 700.0)))

    def top(self, n: int) -> list[str]:
        """The n highest keys. Ranking 100k keys costs ~15 ms, so the ranking is cached and
        refreshed at most once per TOP_REFRESH_S while events arrive."""
        now = time.monotonic()
        stale = self._dirty and now - self._top_at >= TOP_REFRESH_S
        short = n > len(self._top) and len(self._top) < len(self.log)
        if self._top_at < 0 or stale or short:
            self._top = heapq.nlargest(max(n, TOP_CACHED), self.log, key=self.log.__getitem__)
            self._top_at, self._dirty = now, False
        return self._top[:n]


@dataclass
class UserState:
    positives: deque[tuple[str, float, float]] = field(
        default_factory=lambda: deque(maxlen=RECENT_POSITIVES)
    )  # (item, weight, ts), newest last
    negatives: dict[str, float] = field(default_factory=dict)  # item -> summed negative weight
    consumed: set[str] = field(default_factory=set)
    engaged: set[str] = field(default_factory=set)  # items with a positive event: audience
    events: int = 0
    # (item, seq) of recent positives, for co-engagement pairs
    recent: deque[tuple[str, int]] = field(default_factory=lambda: deque(maxlen=COOC_WINDOW))


# What `replace` swaps: everything folded from events (not the half-lives, not the lock).
_STATE = ("popularity", "trending", "trending_by_context", "interactions", "impressions", "users",
          "cooc", "cooc_after_seq", "last_seq", "latest_ts", "audience")


class Behavior:
    def __init__(self, popularity_half_life_s: float, trending_half_life_s: float) -> None:
        self.popularity = DecayedCounter(popularity_half_life_s)
        self.trending = DecayedCounter(trending_half_life_s)
        self._popularity_half_life_s = popularity_half_life_s
        self._trending_half_life_s = trending_half_life_s
        self.trending_by_context: dict[tuple[str, str], DecayedCounter] = {}
        self.interactions: Counter[str] = Counter()  # non-impression events per item
        self.impressions: Counter[str] = Counter()
        # Distinct users with a positive event, per item: whether it has found its audience.
        self.audience: Counter[str] = Counter()
        self._audience_rows: tuple[float, int, np.ndarray] | None = None  # (at, rows, counts)
        self._audience_dirty = False
        self.users: dict[str, UserState] = {}
        # Co-engagement counted since the collaborative model's training data ended.
        self.cooc: dict[str, Counter[str]] = {}
        self.cooc_after_seq = 0
        self.last_seq = 0
        self.latest_ts = 0.0
        self.lock = threading.Lock()
        # Per item, a count of changes to what its own answers read (its interactions and
        # co-engagement): answer caches stamp "similar to X" with it. Not part of the state a
        # snapshot or a rebuild carries: it only has to move, never to mean anything.
        self.item_changes: Counter[str] = Counter()

    # --- folding events in ------------------------------------------------------------------
    def apply(self, rows: Iterable[tuple[int, Event]]) -> int:
        n = 0
        with self.lock:
            for seq, ev in rows:
                self._apply_one(seq, ev)
                n += 1
        return n

    def _apply_one(self, seq: int, ev: Event) -> None:
        self.last_seq = max(self.last_seq, seq)
        self.latest_ts = max(self.latest_ts, ev.ts)
        if ev.type is EventType.IMPRESSION:
            self.impressions[ev.item_id] += 1
            return
        self.interactions[ev.item_id] += 1
        self.item_changes[ev.item_id] += 1
        user = self.users.get(ev.user_id)
        if user is None:
            user = self.users[ev.user_id] = UserState()
        user.events += 1
        if ev.type in CONSUMED:
            user.consumed.add(ev.item_id)
        w = ev.weight
        if w < 0:
            user.negatives[ev.item_id] = user.negatives.get(ev.item_id, 0.0) + w
            return
        if w > 0 and ev.item_id not in user.engaged:
            user.engaged.add(ev.item_id)
            self.audience[ev.item_id] += 1
            self._audience_dirty = True
        self.popularity.add(ev.item_id, w, ev.ts)
        self.trending.add(ev.item_id, w, ev.ts)
        for key in CONTEXT_KEYS:
            value = ev.context.get(key)
            if value:
                counter = self.trending_by_context.get((key, value))
                if counter is None:
                    counter = DecayedCounter(self._trending_half_life_s)
                    self.trending_by_context[(key, value)] = counter
                counter.add(ev.item_id, w, ev.ts)
        if seq > self.cooc_after_seq:
            self._count_cooc(user, ev.item_id)
        user.positives.append((ev.item_id, w, ev.ts))
        user.recent.append((ev.item_id, seq))

    def _count_cooc(self, user: UserState, item: str) -> None:
        # Only pairs the collaborative model has not seen: both events after its data ends,
        # the same rule `add_cooc` applies on replay, so live and restarted processes agree.
        others = {i for i, q in user.recent if i != item and q > self.cooc_after_seq}
        if not others:
            return
        mine = self.cooc.setdefault(item, Counter())
        for other in others:
            mine[other] += 1
            self.cooc.setdefault(other, Counter())[item] += 1
            self.item_changes[other] += 1

    def reset_cooc(self, after_seq: int) -> None:
        """A new collaborative model covers events up to `after_seq`; live counts start after."""
        with self.lock:
            self.cooc = {}
            self.cooc_after_seq = after_seq

    def add_cooc(self, rows: Iterable[tuple[int, Event]]) -> None:
        """Recount co-engagement for events after the model (replayed after `reset_cooc`)."""
        last: dict[str, deque[str]] = {}
        with self.lock:
            for seq, ev in rows:
                if seq <= self.cooc_after_seq or ev.weight <= 0:
                    continue
                window = last.setdefault(ev.user_id, deque(maxlen=COOC_WINDOW))
                for other in set(window) - {ev.item_id}:
                    self.cooc.setdefault(ev.item_id, Counter())[other] += 1
                    self.cooc.setdefault(other, Counter())[ev.item_id] += 1
                    self.item_changes[other] += 1
                self.item_changes[ev.item_id] += 1
                window.append(ev.item_id)

    # --- erasure ----------------------------------------------------------------------------
    def drop_users(self, which: Callable[[str], bool]) -> int:
        """Forget these users' own state at once (erasure); the aggregates their events fed
        are rebuilt by replay (`empty` + `replace`), since decayed sums cannot be unwound."""
        with self.lock:
            gone = [u for u in self.users if which(u)]
            for u in gone:
                del self.users[u]
        return len(gone)

    def empty(self) -> Behavior:
        """A fresh state with the same half-lives, to replay the event table into."""
        return Behavior(self._popularity_half_life_s, self._trending_half_life_s)

    def replace(self, other: Behavior) -> None:
        """Take over `other`'s state in place: every holder of this object (the recommender,
        editor previews that copied it) sees the rebuilt state at once."""
        with self.lock:
            for name in _STATE:
                setattr(self, name, getattr(other, name))
            self._audience_rows = None  # replay can lower counts (erasure): rebuild at once

    # --- reading ----------------------------------------------------------------------------
    def user(self, user_id: str) -> UserState | None:
        return self.users.get(user_id)

    def trending_top(self, n: int, context: dict[str, str] | None = None) -> list[str]:
        """Trending in the given context first (device, surface, locale), then overall."""
        with self.lock:
            picks: list[str] = []
            for key in CONTEXT_KEYS:
                value = (context or {}).get(key)
                counter = self.trending_by_context.get((key, value)) if value else None
                if counter is not None:
                    picks.extend(counter.top(n))
            picks.extend(self.trending.top(n))
        return list(dict.fromkeys(picks))[: max(n, 0) * 2]

    def popularity_top(self, n: int) -> list[str]:
        with self.lock:
            return self.popularity.top(n)

    def counts(self, items: Sequence[str]) -> list[int]:
        return list(map(self.interactions.get, items, repeat(0)))

    def within_audience(self, items: Sequence[str], cap: int) -> list[str]:
        """The items that at most `cap` distinct users engaged with (exact, as of now)."""
        return [i for i in items if self.audience.get(i, 0) <= cap]

    def audience_by_row(self, row: Mapping[str, int], n: int, *, refresh: bool = False
                        ) -> np.ndarray:
        """Audience per catalog row (`row`: item id -> row, n rows), for masks over the whole
        catalog. Rebuilding walks every engaged item (~13 ms for 50k), so requests read the
        last build (rebuilt at once only when the catalog grew) and the sync thread calls
        with `refresh`, which rebuilds at most every TOP_REFRESH_S while engagement arrives:
        callers that must be exact check `within_audience` on their final candidates."""
        now = time.monotonic()
        with self.lock:
            cached = self._audience_rows
            if cached is not None and cached[1] == n and (
                    not refresh or not self._audience_dirty or now - cached[0] < TOP_REFRESH_S):
                return cached[2]
            counts = np.zeros(n, dtype=np.int64)
            for item, c in self.audience.items():
                r = row.get(item)
                if r is not None and r < n:
                    counts[r] = c
            self._audience_rows, self._audience_dirty = (now, n, counts), False
            return counts

    def popularity_log(self, items: Sequence[str], now: float) -> np.ndarray:
        """log(1 + decayed popularity): comparable across items, 0 for an item nobody touched."""
        return self.popularity.log1p_values(items, now)

    def trending_log(self, items: Sequence[str], now: float) -> np.ndarray:
        """log(1 + trending score), likewise."""
        return self.trending.log1p_values(items, now)

    def velocity(self, item: str, now: float) -> float:
        return self.trending.value(item, now)

    def co_engagement(self, item: str, n: int) -> list[tuple[str, int]]:
        with self.lock:
            counter = self.cooc.get(item)
            return counter.most_common(n) if counter else []
