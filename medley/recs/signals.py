"""Per-request signals: a user's taste, and a new item's prior appeal from its neighbours."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from index.base import FUSED, Where
from medley.recs.behavior import Behavior
from medley.recs.collab import CollabModel
from medley.recs.features import LIKED_MAX_RECENT
from medley.recs.items import ItemTable
from medley.recs.ranking import neighbour_mean

# (named vector, query, limit, where) -> [(item_id, cosine)]: the index, or the table's exact scan.
SearchFn = Callable[[str, np.ndarray, int, Where | None], list[tuple[str, float]]]

TASTE_HALF_LIFE_S = 30 * 86400.0  # older likes count half as much after a month
NEGATIVE_WEIGHT = 0.5  # how hard disliked/skipped items push the taste vector away
PRIOR_TTL_S = 60.0
WANTED_MAX = 50_000  # how long a computed prior stands before behaviour is read again
# Weight of "no evidence" (a value of 0) in a prior: twenty close neighbours (cosine ~0.8) lend
# ~94% of their appeal, twenty faint ones (~0.1) ~67%, one faint one ~9%.
PRIOR_SHRINK = 1.0
ESTABLISHED = 5  # interactions an item needs to lend its behaviour to a neighbour's prior


@dataclass
class Taste:
    vector: np.ndarray | None  # unit fused-space vector, None without any positive
    positives: list[tuple[str, float]]  # (item, weight) newest first, for collab fold-in
    liked_rows: np.ndarray  # table rows of positives, newest first, each once
    events: int = 0  # the user's non-impression events (how much the history says)
    # (model, its fold-in of `positives`): a request's candidate step and its scoring step
    # share one solve (`Recommender.user_vector`).
    folded: tuple[object, np.ndarray | None] | None = None
    user: str | None = None  # whose taste (their stored model vectors are looked up by it)
    # The centred vectors of the first LIKED_MAX_RECENT `liked_rows` (the taste's surface),
    # computed for the taste anyway: the ranker's closest-liked-item feature reads them
    # instead of centring the same rows again (~0.3 ms of a for-you request at 100k items).
    # Only those few: training holds a taste for each of up to 2,000 users.
    liked_vectors: np.ndarray | None = None


def taste_of(
    table: ItemTable,
    positives: Sequence[tuple[str, float, float]],
    negatives: dict[str, float],
    now: float,
    surface: str | None = None,
) -> Taste:
    """Recency-weighted mean of liked items' centred vectors (`ItemTable.vectors_of`), minus a
    share of the disliked ones."""
    pos = list(reversed(positives))  # newest first
    rows = table.rows([i for i, _, _ in pos])
    weights = np.array([w * 0.5 ** (max(now - ts, 0.0) / TASTE_HALF_LIFE_S) for _, w, ts in pos])
    ok = rows >= 0
    ok[ok] = table.has_vector(rows[ok])
    vec = None
    centred = np.zeros((0, table.dim), dtype=np.float32)
    if ok.any():
        centred = table.vectors_of(rows[ok], surface, centred=True)
        vec = (weights[ok, None] * centred).sum(axis=0)
        neg_rows = table.rows(list(negatives))
        neg_rows = neg_rows[neg_rows >= 0]
        if len(neg_rows):
            disliked = table.vectors_of(neg_rows, surface, centred=True).sum(axis=0)
            vec -= NEGATIVE_WEIGHT * weights[ok].mean() * disliked
        norm = float(np.linalg.norm(vec))
        vec = vec / norm if norm > 0 else None
    # Newest first by time, not by list position: stated likes come first in `positives`
    # (so last here) but are dated now; each row once, at its newest.
    kept = np.flatnonzero(ok)
    stamps = np.array([ts for _, _, ts in pos], dtype=np.float64)
    order = np.argsort(-stamps[kept], kind="stable")
    liked = rows[kept[order]]
    _, first = np.unique(liked, return_index=True)
    once = np.sort(first)
    return Taste(vec, [(i, w) for i, w, _ in pos], liked[once],
                 liked_vectors=centred[order[once[:LIKED_MAX_RECENT]]])


@dataclass
class Prior:
    pop: float  # neighbour-weighted log-popularity; NaN without an established neighbour
    factor: np.ndarray | None  # neighbour-weighted collaborative factor (of `model`)
    model: int  # id() of the collaborative model the factor belongs to
    at: float  # monotonic time it was computed


class Priors:
    """A new item's prior appeal, predicted from its nearest neighbours by content.

    The neighbour search runs once per item (the result is cached). From it, the established
    neighbours' popularity and collaborative factors are averaged, weighted by similarity and
    shrunk toward "no evidence"; that value does not depend on the user, so it is cached too
    and refreshed every PRIOR_TTL_S (behaviour moves) or when the model changes. Per request
    what is left is one product with the user's factor vector."""

    def __init__(self, k: int) -> None:
        self.k = k
        self._raw: dict[str, tuple[list[str], np.ndarray]] = {}
        self._values: dict[str, Prior] = {}
        self._lock = threading.Lock()
        # Items a request needed a prior for before their neighbours were searched; the
        # background warmer searches these next.
        self.wanted: dict[str, None] = {}
        self._order: list[str] = []  # round-robin order for `refresh`
        self._cursor = 0

    def __len__(self) -> int:
        return len(self._raw)

    def forget(self, item_id: str) -> None:
        with self._lock:
            self._raw.pop(item_id, None)
            self._values.pop(item_id, None)

    def search_neighbours(self, items: Sequence[str], table: ItemTable, search: SearchFn,
                          budget: int) -> int:
        """Search (and cache) the neighbours of up to `budget` items not searched yet."""
        done = 0
        for item in items:
            if done >= budget:
                break
            if item in self._raw:
                continue
            r = table.row.get(item)
            if r is None or not table.has_vector(r):
                self.wanted.pop(item, None)  # nothing to search with (yet)
                continue
            found = search(FUSED, table.vectors_of(np.array([r]))[0], self.k * 3,
                           Where(exclude_ids=frozenset({item})))
            with self._lock:
                self._raw[item] = ([i for i, _ in found],
                                   np.array([s for _, s in found], dtype=np.float64))
                self.wanted.pop(item, None)
            done += 1
        return done

    def _compute(self, item: str, behavior: Behavior, collab: CollabModel | None,
                 now: float) -> Prior:
        ids, sims = self._raw[item]
        keep = [j for j, i in enumerate(ids)
                if behavior.interactions.get(i, 0) >= ESTABLISHED][: self.k]
        est = [ids[j] for j in keep]
        s = np.clip(sims[keep], 0.0, None)
        pops = np.array(behavior.popularity_log(est, now))
        pop = neighbour_mean(s[None, :], pops[None, :], PRIOR_SHRINK)[0] if est else np.nan
        factor = None
        if collab is not None:
            rows = [(w, collab.item_row[i]) for w, i in zip(s, est, strict=True)
                    if i in collab.item_row and w > 0]
            if rows:
                w = np.array([w for w, _ in rows])
                f = collab.item_factors[[r for _, r in rows]]
                factor = (w[:, None] * f).sum(axis=0) / (w.sum() + PRIOR_SHRINK)
        return Prior(float(pop), factor, id(collab), time.monotonic())

    def refresh(self, behavior: Behavior, collab: CollabModel | None, now: float,
                limit: int) -> int:
        """Compute up to `limit` missing or stale priors (background work, so requests find
        them ready)."""
        stale = time.monotonic() - PRIOR_TTL_S
        items = list(self._raw) if len(self._order) != len(self._raw) else self._order
        self._order = items
        done = 0
        for _ in range(min(len(items), limit * 20)):  # a bounded slice of a round robin
            self._cursor = (self._cursor + 1) % len(items)
            item = items[self._cursor]
            v = self._values.get(item)
            if item in self._raw and (v is None or v.at < stale or v.model != id(collab)):
                self._values[item] = self._compute(item, behavior, collab, now)
                done += 1
                if done >= limit:
                    break
        return done

    def predict(
        self,
        items: Sequence[str],
        behavior: Behavior,
        collab: CollabModel | None,
        user_vec: np.ndarray | None,
        now: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(collab prior, popularity prior) per item; NaN where nothing is known."""
        pop = np.full(len(items), np.nan)
        col = np.full(len(items), np.nan)
        stale = time.monotonic() - PRIOR_TTL_S
        rows, factors = [], []
        for k, item in enumerate(items):
            v = self._values.get(item)
            if v is None or v.at < stale or v.model != id(collab):
                if item not in self._raw:
                    if len(self.wanted) < WANTED_MAX:
                        self.wanted[item] = None
                    continue
                v = self._compute(item, behavior, collab, now)
                self._values[item] = v
            pop[k] = v.pop
            if v.factor is not None:
                rows.append(k)
                factors.append(v.factor)
        if rows and user_vec is not None:
            col[rows] = np.stack(factors) @ user_vec
        return col, pop
