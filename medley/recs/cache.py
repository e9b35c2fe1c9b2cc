"""Whole answers kept for a short while, per process, so a person reopening a screen (back
navigation, a second tab, a client that polls) costs a dictionary lookup, not a ranking.

An entry is valid while two stamps hold:
- the recommender's `generation`, which the sync thread bumps whenever something every answer
  depends on changes: items indexed or removed, a fusion switch, a new collaborative model,
  editorial pins and boosts, a rebuild after an erasure;
- the subject's own stamp (a user's count of applied events, their preferences and controls),
  so a like reshapes that user's next answer at once.
What drifts without a stamp (everyone else's events moving popularity and trending, the clock
moving items out of "new") is bounded by the time-to-live.

Several API processes each keep their own cache: every stamp comes from state that each
process's sync thread reads from the shared database, so they invalidate alike.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from medley.recs.answers import Answer


class AnswerCache:
    def __init__(self, capacity: int, ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.ttl_s = ttl_s
        self.clock = clock
        # key -> (stamp, expires at, answer); oldest use first. The key's second element is
        # the subject (a user id or an item id), which `forget` matches on.
        self._entries: OrderedDict[tuple[Any, ...], tuple[Hashable, float, Answer]] = \
            OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.capacity > 0 and self.ttl_s > 0

    def get(self, key: tuple[Any, ...], stamp: Hashable) -> Answer | None:
        """The cached answer for `key` under `stamp`, with a fresh recommendation id (each
        serving is its own recommendation, for crediting events); None on a miss."""
        if not self.enabled:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != stamp or entry[1] <= self.clock():
                if entry is not None:
                    del self._entries[key]
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            answer = entry[2]
        return dataclasses.replace(answer, recommendation_id=str(uuid.uuid4()))

    def put(self, key: tuple[Any, ...], stamp: Hashable, answer: Answer) -> None:
        if not self.enabled or answer.fallback:  # a fallback answers an outage: retry next time
            return
        with self._lock:
            self._entries[key] = (stamp, self.clock() + self.ttl_s, answer)
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def forget(self, which: Callable[[str], bool]) -> int:
        """Drop every entry whose subject matches (erasure: nothing derived from the user may
        outlive it, even until the time-to-live)."""
        with self._lock:
            gone = [k for k in self._entries if isinstance(k[1], str) and which(k[1])]
            for k in gone:
                del self._entries[k]
        return len(gone)

    def count(self, which: Callable[[str], bool]) -> int:
        """Entries whose subject matches."""
        with self._lock:
            return sum(1 for k in self._entries if isinstance(k[1], str) and which(k[1]))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def stats(self) -> dict[str, float | int]:
        with self._lock:
            total = self.hits + self.misses
            return {"entries": len(self._entries), "hits": self.hits, "misses": self.misses,
                    "hit_rate": round(self.hits / total, 4) if total else 0.0}


class QueryVectorCache:
    """Embedded search queries by (model family, text): a repeated query skips the model."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_embed(self, family: str, text: str, embed: Callable[[], Any]) -> Any:
        key = (family, text)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key]
            self.misses += 1
        vector = embed()  # outside the lock: the model runs for tens of milliseconds
        if vector is not None and self.capacity > 0:
            with self._lock:
                self._entries[key] = vector
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
        return vector

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
