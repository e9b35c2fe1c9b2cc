"""Training groups for the ranker: a user as of a past moment, their candidates drawn as
serving draws them, and those candidates' features with what the user did later."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from medley.recs import features, ranker, topk
from medley.recs.answers import FOR_YOU
from medley.recs.behavior import Behavior
from medley.recs.collab import CollabModel
from medley.recs.items import ItemTable
from medley.recs.knn import ItemKnn
from medley.recs.predicted import Predicted
from medley.recs.signals import taste_of

MAX_SKIP_SCAN = 1000  # consumed items a candidate scan looks past, at most
ITEM_BLOCK = 20_000  # catalog rows per block of a scan (bounds memory at any catalog size)


class Past:
    """A user as of the end of the history: taste, collaborative vector, what they consumed."""

    def __init__(self, user: str, behavior: Behavior, table: ItemTable, model: CollabModel,
                 now: float) -> None:
        state = behavior.user(user)
        assert state is not None
        self.id = user
        self.events = state.events
        self.taste = taste_of(table, list(state.positives), dict(state.negatives), now, FOR_YOU)
        self.vector = model.fold_in(self.taste.positives) if self.taste.positives else None
        self.skip = state.consumed


def candidates(users: Sequence[Past], table: ItemTable, model: CollabModel,
                alive: np.ndarray, per_source: int, knn: ItemKnn | None = None
                ) -> list[list[str]]:
    """Per user, ALS's, centred content's and (with `knn`) the item-to-item weights' top
    `per_source` items (beyond what they consumed), as serving's candidate sources draw them;
    one scan of the catalog per batch."""
    k = per_source + min(max((len(u.skip) for u in users), default=0), MAX_SKIP_SCAN)
    out: list[list[str]] = [[] for _ in users]
    n = len(table.ids)

    def content_blocks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, n, ITEM_BLOCK):
            rows = np.arange(start, min(start + ITEM_BLOCK, n))
            rows = rows[alive[rows]]
            yield rows, table.vectors_of(rows, FOR_YOU, centred=True)

    def factor_blocks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(model.item_ids), ITEM_BLOCK):
            idx = np.arange(start, min(start + ITEM_BLOCK, len(model.item_ids)))
            yield idx, model.item_factors[idx]

    for which, dim, blocks, name in (
            ("taste", table.dim, content_blocks, lambda r: table.ids[r]),
            ("vector", model.item_factors.shape[1], factor_blocks, lambda r: model.item_ids[r])):
        q = np.zeros((len(users), dim), dtype=np.float32)
        has = np.zeros(len(users), dtype=bool)
        for at, user in enumerate(users):
            v = user.taste.vector if which == "taste" else user.vector
            if v is not None:
                q[at], has[at] = v, True
        if not has.any():
            continue
        ids, _ = topk.top_k(q[has], blocks(), k)
        for at, row_ids in zip(np.flatnonzero(has).tolist(), ids, strict=True):
            take = per_source + len(users[at].skip)
            out[at] += [name(int(r)) for r in row_ids[:take]]
    if knn is not None:
        for at, user in enumerate(users):
            history = [table.ids[r] for r in user.taste.liked_rows]
            found = knn.top(history, per_source // 2, user.skip)
            rows = table.rows(found)
            out[at] += [i for i, r in zip(found, rows.tolist(), strict=True)
                        if 0 <= r < len(alive) and alive[r]]
    return out


def group(user: Past, liked: set[str], candidates: Sequence[str], table: ItemTable,
          behavior: Behavior, model: CollabModel, predicted: Predicted, now: float,
          knn: ItemKnn | None = None) -> ranker.Group | None:
    """One user's candidates with their features and labels (1: in `liked`); None when none
    of them is."""
    ids = [i for i in dict.fromkeys(candidates) if i not in user.skip and table.get(i) is not None]
    if not ids:
        return None
    y = np.array([1.0 if i in liked else 0.0 for i in ids])
    if not y.any():
        return None
    x = features.compute(table, behavior, model, predicted, now, _signals(user, model), ids,
                         FOR_YOU, knn)
    return ranker.Group(x, y, cold_of(user, ids, table, model, predicted))


def cold_of(user: Past, ids: Sequence[str], table: ItemTable, model: CollabModel,
            predicted: Predicted) -> np.ndarray | None:
    """The cold scorer's inputs (`features.cold`) for these candidates under the model's CALS
    as it is now (the cold check swaps CALS fits on one model); None without CALS."""
    if model.cals is None:
        return None
    return features.cold(table, model, predicted, _signals(user, model), ids)


def _signals(user: Past, model: CollabModel) -> features.UserSignals:
    """The user's signals, with the training user's stored CALS vector and taste classifier
    read from the model's CALS as it is now."""
    return features.UserSignals(user.taste.vector, user.vector, user.taste.liked_rows,
                                user.events, model.cals_user(user.id),
                                features.uclf_of(model, user.id), user.taste.liked_vectors,
                                features.trained_of(model, user.id))
