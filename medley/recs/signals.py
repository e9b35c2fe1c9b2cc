"""Per-request signals: a user's taste, and a new item's prior appeal from its neighbours."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from index.base import FUSED, Where
from medley.recs.behavior import Behavior
from medley.recs.collab import CollabModel
from medley.recs.items import ItemTable
from medley.recs.ranking import neighbour_mean

# (named vector, query, limit, where) -> [(item_id, cosine)]: the index, or the table's exact scan.
SearchFn = Callable[[str, np.ndarray, int, Where | None], list[tuple[str, float]]]

TASTE_HALF_LIFE_S = 30 * 86400.0  # older likes count half as much after a month
NEGATIVE_WEIGHT = 0.5  # how hard disliked/skipped items push the taste vector away
# Weight of "no evidence" (a value of 0) in a prior: twenty close neighbours (cosine ~0.8) lend
# ~94% of their appeal, twenty faint ones (~0.1) ~67%, one faint one ~9%.
PRIOR_SHRINK = 1.0
ESTABLISHED = 5  # interactions an item needs to lend its behaviour to a neighbour's prior


@dataclass
class Taste:
    vector: np.ndarray | None  # unit fused-space vector, None without any positive
    positives: list[tuple[str, float]]  # (item, weight) newest first, for collab fold-in
    liked_rows: np.ndarray  # table rows of positives, for "because you liked"


def taste_of(
    table: ItemTable,
    positives: Sequence[tuple[str, float, float]],
    negatives: dict[str, float],
    now: float,
) -> Taste:
    """Recency-weighted mean of liked items' vectors, minus a share of the disliked ones."""
    pos = list(reversed(positives))  # newest first
    rows = table.rows([i for i, _, _ in pos])
    weights = np.array([w * 0.5 ** (max(now - ts, 0.0) / TASTE_HALF_LIFE_S) for _, w, ts in pos])
    ok = rows >= 0
    ok[ok] = table.has_vector[rows[ok]]
    vec = None
    if ok.any():
        vec = (weights[ok, None] * table.vectors_of(rows[ok])).sum(axis=0)
        neg_rows = table.rows(list(negatives))
        neg_rows = neg_rows[neg_rows >= 0]
        if len(neg_rows):
            vec -= NEGATIVE_WEIGHT * weights[ok].mean() * table.vectors_of(neg_rows).sum(axis=0)
        norm = float(np.linalg.norm(vec))
        vec = vec / norm if norm > 0 else None
    return Taste(vec, [(i, w) for i, w, _ in pos], np.unique(rows[ok]))


class Priors:
    """Each item's nearest neighbours by content, searched once per item and cached. The
    established ones' current popularity and collaborative factors give the item's prior
    appeal, so the prediction follows behaviour without searching again."""

    def __init__(self, k: int) -> None:
        self.k = k
        self._cache: dict[str, tuple[list[str], np.ndarray]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._cache)

    def forget(self, item_id: str) -> None:
        with self._lock:
            self._cache.pop(item_id, None)

    def neighbours(
        self,
        items: Sequence[str],
        table: ItemTable,
        behavior: Behavior,
        search: SearchFn,
        budget: int,
    ) -> dict[str, tuple[list[str], np.ndarray]]:
        """Each item's nearest established neighbours (at most k). The raw search result is
        cached (at most `budget` new searches in this call); "established" is applied on every
        read, so a neighbour that gathers evidence later starts to count."""
        out: dict[str, tuple[list[str], np.ndarray]] = {}
        for item in items:
            raw = self._cache.get(item)
            if raw is None and budget > 0:
                r = table.row.get(item)
                if r is None or not table.has_vector[r]:
                    continue
                budget -= 1
                found = search(FUSED, table.vectors_of(np.array([r]))[0], self.k * 3,
                               Where(exclude_ids=frozenset({item})))
                raw = ([i for i, _ in found], np.array([s for _, s in found], dtype=np.float64))
                with self._lock:
                    self._cache[item] = raw
            if raw is not None:
                keep = [j for j, i in enumerate(raw[0])
                        if behavior.interactions.get(i, 0) >= ESTABLISHED][: self.k]
                out[item] = ([raw[0][j] for j in keep], raw[1][keep])
        return out

    def predict(
        self,
        items: Sequence[str],
        found: dict[str, tuple[list[str], np.ndarray]],
        behavior: Behavior,
        collab: CollabModel | None,
        user_vec: np.ndarray | None,
        now: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(collab prior, popularity prior) per item; NaN where nothing is known."""
        k = self.k
        sims = np.zeros((len(items), k))
        flat: list[str] = []
        where_r: list[int] = []
        where_c: list[int] = []
        for r, item in enumerate(items):
            ids, s = found.get(item, ([], np.zeros(0)))
            sims[r, : len(ids)] = s
            flat.extend(ids)
            where_r.extend([r] * len(ids))
            where_c.extend(range(len(ids)))
        pops = np.full((len(items), k), np.nan)
        cols = np.full((len(items), k), np.nan)
        if flat:  # one lookup for every neighbour of every item
            pops[where_r, where_c] = behavior.popularity_log(flat, now)
            if collab is not None and user_vec is not None:
                cols[where_r, where_c] = collab.scores(user_vec, flat)
        return (neighbour_mean(sims, cols, PRIOR_SHRINK),
                neighbour_mean(sims, pops, PRIOR_SHRINK))
