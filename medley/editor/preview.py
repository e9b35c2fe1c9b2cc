"""Side-by-side answers under the live profile and a candidate one, before anything is
published: the same engine, the same behaviour and collaborative state, only the weights differ.

The index holds fused vectors for the live weights only, so both sides search the item table
exactly (small catalogs) or take the union of the index's per-modality and fused candidates and
rescore them exactly under each side's weights (large ones). Both sides go the same way, so a
difference between them is the weights' doing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from index.base import FUSED, Where
from medley.recs.answers import SIMILAR, Answer, Preferences
from medley.recs.engine import Recommender
from medley.recs.items import FusionView, ItemTable
from medley.recs.signals import SearchFn
from medley.recs.user_lists import UserLists

EXACT_UP_TO = 20_000  # items; beyond this a preview rescores index candidates instead
K = 10


@dataclass(frozen=True)
class Row:
    item_id: str
    rank: int
    score: float
    parts: dict[str, float]
    shift: int | None  # rank elsewhere minus rank here (>0: higher here); None: absent there


@dataclass(frozen=True)
class Comparison:
    kind: str  # item | user | query
    key: str
    surface: str
    before: list[Row]
    after: list[Row]
    overlap: float  # shared items in the two top-10s, over 10


def view_search(table: ItemTable, index_search: SearchFn) -> SearchFn:
    """Fused-space search under `table`'s view; other spaces go to the index as usual."""

    def search(using: str, vector: np.ndarray, limit: int, where: Where | None
               ) -> list[tuple[str, float]]:
        if using != FUSED:
            return index_search(using, vector, limit, where)
        if len(table) <= EXACT_UP_TO:
            return table.nearest(FUSED, vector, limit, where)
        found = {i for i, _ in index_search(FUSED, vector, 2 * limit, where)}
        weights = table.view.weights
        for m, sl in table.layout.items():
            block = vector[sl]
            if weights.get(m, 0.0) > 0 and float(np.linalg.norm(block)) > 0:
                found.update(i for i, _ in index_search(m.value, block, limit, where))
        ids = list(found)
        rows = table.rows(ids)
        keep = rows >= 0
        ids, rows = [i for i, k in zip(ids, keep, strict=True) if k], rows[keep]
        if not ids:
            return []
        q = vector / max(float(np.linalg.norm(vector)), 1e-9)
        scores = table.vectors_of(rows) @ q
        order = np.argsort(-scores)[:limit]
        return [(ids[k], float(scores[k])) for k in order]

    return search


def under(rec: Recommender, view: FusionView, index_search: SearchFn) -> Recommender:
    """The recommender as it would answer under `view` (shares all state; for one preview)."""
    other = copy.copy(rec)
    other.table = rec.table.viewed(view)
    other.search = view_search(other.table, index_search)
    other.prior_budget = 0  # a preview must not fill the shared neighbour cache
    other.user_lists = UserLists(0, 0.0)  # nor the live users' nearline candidates
    return other


def parts_of(rec: Recommender, anchor: np.ndarray | None, ids: Sequence[str], surface: str
             ) -> list[dict[str, float]]:
    """Each modality's share of the cosine between the anchor and each item."""
    if anchor is None or not ids:
        return [{} for _ in ids]
    vecs = rec.table.vectors_of(rec.table.rows(ids), surface)
    return [{m.value: round(v, 6) for m, v in rec.table.contributions(anchor, vec).items()}
            for vec in vecs]


def compare(kind: str, key: str, surface: str, before: Answer, after: Answer,
            parts: Callable[[Answer, int], list[dict[str, float]]]) -> Comparison:
    rank_a = {s.item_id: k for k, s in enumerate(before.items, 1)}
    rank_b = {s.item_id: k for k, s in enumerate(after.items, 1)}

    def rows(answer: Answer, side: int, here: dict[str, int], there: dict[str, int]
             ) -> list[Row]:
        shares = parts(answer, side)
        return [Row(s.item_id, here[s.item_id], s.score, share,
                    (there[s.item_id] - here[s.item_id]) if s.item_id in there else None)
                for s, share in zip(answer.items, shares, strict=True)]

    top_a = {s.item_id for s in before.items[:K]}
    top_b = {s.item_id for s in after.items[:K]}
    # Over the lists' length when a preview asks for fewer than 10 (or the catalog is small).
    overlap = len(top_a & top_b) / max(len(top_a), len(top_b), 1)
    return Comparison(kind, key, surface, rows(before, 0, rank_a, rank_b),
                      rows(after, 1, rank_b, rank_a), overlap)


def preview_item(sides: tuple[Recommender, Recommender], item_id: str, n: int) -> Comparison:
    answers = [side.similar(item_id, n, None) for side in sides]

    def parts(answer: Answer, k: int) -> list[dict[str, float]]:
        return [s.parts or {} for s in answer.items]

    return compare("item", item_id, SIMILAR, answers[0], answers[1], parts)


def preview_user(sides: tuple[Recommender, Recommender], user_id: str, n: int,
                 prefs: Preferences | None) -> Comparison:
    answers = [side.for_user(user_id, n, None, prefs) for side in sides]
    tastes = [side.user_taste(user_id, prefs)[0].vector for side in sides]

    def parts(answer: Answer, k: int) -> list[dict[str, float]]:
        return parts_of(sides[k], tastes[k], [s.item_id for s in answer.items],
                        "recommendations")

    return compare("user", user_id, "recommendations", answers[0], answers[1], parts)


def preview_query(answers: tuple[Answer, Answer], query: str) -> Comparison:
    def parts(answer: Answer, k: int) -> list[dict[str, float]]:
        return [s.parts or {} for s in answer.items]

    return compare("query", query, "search", answers[0], answers[1], parts)
