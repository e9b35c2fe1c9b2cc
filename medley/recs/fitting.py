"""The fits the training task makes, each on a stream of events: ALS, the ridge content map
(`content_map`) and CALS (`cals`). `learn` fits them on every event for the model it stores,
and again on parts of the history for the ranker's training groups and the cold check
(`coldcheck`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from medley.config import RecommendationSettings
from medley.recs import cals, collab, content_map
from medley.recs.collab import CollabModel
from medley.recs.events import Event, EventType
from medley.recs.items import ItemTable

if TYPE_CHECKING:
    import scipy.sparse as sp

ESTABLISHED = 3  # interactions an item needs to teach the content map
LIKED_WEIGHT = 2.0  # an event at least this strong (like, complete, share) is a positive
# CALS's content -> factors map has (content width + modalities + 1) x factors parameters
# (~150k at the default models), which this many items pin down; each of its conjugate-gradient
# steps multiplies the items' design matrix twice, so at 100k items each CALS fit took ~5-6 of
# the task's ~22 minutes (py-spy, `python -m benchmarks serve`'s preparation; bench/cals-cost.md).
# The most engaged items are kept: they carry most of the confidences the users' CALS vectors
# are fitted on. MovieLens (9,742 items) is under it.
MAX_CALS_ITEMS = 20_000


def als(stream: Sequence[tuple[int, Event]], settings: RecommendationSettings, last_seq: int,
         seed: int) -> CollabModel | None:
    return collab.train(((e.user_id, e.item_id, e.weight) for _, e in stream),
                        factors=settings.collab_factors, iterations=settings.collab_iterations,
                        regularization=settings.collab_regularization, last_seq=last_seq,
                        seed=seed)


def fit_map(table: ItemTable, model: CollabModel, stream: Sequence[tuple[int, Event]],
             seed: int) -> tuple[content_map.ContentMap, np.ndarray, np.ndarray] | None:
    """The map, its out-of-fold predictions, and the table rows they belong to."""
    counts = Counter(e.item_id for _, e in stream if e.weight > 0)
    rows = table.rows(model.item_ids)
    keep = np.flatnonzero((rows >= 0) & np.array([counts[i] >= ESTABLISHED
                                                  for i in model.item_ids], dtype=bool))
    if not len(keep):
        return None
    r = rows[keep]
    layout = [(m.value, int(w)) for m, w in zip(table.modalities, table.widths, strict=True)]
    engagement = np.log1p([counts[model.item_ids[k]] for k in keep])
    out = content_map.fit(layout, table.units[r], table.present[r], table.means(),
                          model.item_factors[keep], engagement, seed=seed)
    return (out[0], out[1], r) if out else None


def fit_cals(table: ItemTable, model: CollabModel, stream: Sequence[tuple[int, Event]],
             settings: RecommendationSettings, min_audience: int = 1) -> cals.Cals | None:
    """CALS (`medley.recs.cals`) on the confidences this ALS model was trained on, starting
    from its user factors, over the items at least `min_audience` users engaged with (at most
    MAX_CALS_ITEMS, the most engaged); None when there is too little to learn from."""
    found = collab.confidences((e.user_id, e.item_id, e.weight) for _, e in stream)
    if found is None:
        return None
    users, items, conf = found
    assert users == model.user_ids and items == model.item_ids
    touched, liked = touched_liked(stream, model)
    keep = most_engaged(conf, MAX_CALS_ITEMS, min_audience)
    if keep is not None:
        conf, touched, liked = conf[:, keep], touched[:, keep], liked[:, keep]
        items = [items[k] for k in keep]
    rows = table.rows(items)
    units = np.zeros((len(items), table.dim), dtype=np.float32)
    present = np.zeros((len(items), len(table.modalities)), dtype=bool)
    known = rows >= 0  # items gone from the catalog: no content, still part of the objective
    units[known], present[known] = table.units[rows[known]], table.present[rows[known]]
    layout = [(m.value, int(w)) for m, w in zip(table.modalities, table.widths, strict=True)]
    return cals.fit(layout, units, present, table.means(), conf, model.user_factors,
                    settings.collab_regularization, touched=touched, liked=liked)


def cals_item_counts(stream: Sequence[tuple[int, Event]], audiences: Sequence[int]
                     ) -> dict[int, int]:
    """How many items `fit_cals` fits on at each of these minimum audiences, from the same
    confidences it fits on: two minimum audiences with the same count fit the same items (the
    cap keeps the largest audiences)."""
    found = collab.confidences((e.user_id, e.item_id, e.weight) for _, e in stream)
    if found is None:
        return {a: 0 for a in audiences}
    audience = found[2].getnnz(axis=0)
    return {a: min(MAX_CALS_ITEMS, int((audience >= a).sum())) for a in audiences}


def most_engaged(conf: sp.csr_matrix, most: int, min_audience: int = 1) -> np.ndarray | None:
    """The columns (items) with at least `min_audience` users (1: every column), at most the
    `most` largest audiences of them, in column order; None when that is every column."""
    audience = conf.getnnz(axis=0)
    enough = np.flatnonzero(audience >= min_audience) if min_audience > 1 \
        else np.arange(conf.shape[1])
    if len(enough) > most:
        enough = np.sort(enough[np.argsort(-audience[enough], kind="stable")[:most]])
    return None if len(enough) == conf.shape[1] else enough


def touched_liked(stream: Sequence[tuple[int, Event]], model: CollabModel
                   ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(users x items) of the model: which items each user touched (any event but an
    impression), and which of those they liked (an event at least LIKED_WEIGHT strong)."""
    import scipy.sparse as sp

    touched: set[tuple[int, int]] = set()
    liked: set[tuple[int, int]] = set()
    for _, e in stream:
        if e.type is EventType.IMPRESSION:
            continue
        u, i = model.user_row.get(e.user_id), model.item_row.get(e.item_id)
        if u is None or i is None:
            continue
        touched.add((u, i))
        if e.weight >= LIKED_WEIGHT:
            liked.add((u, i))
    shape = (len(model.user_ids), len(model.item_ids))

    def matrix(pairs: set[tuple[int, int]]) -> sp.csr_matrix:
        ordered = sorted(pairs)
        rows = np.array([u for u, _ in ordered], dtype=np.int64)
        cols = np.array([i for _, i in ordered], dtype=np.int64)
        return sp.csr_matrix((np.ones(len(ordered)), (rows, cols)), shape=shape)

    return matrix(touched), matrix(liked)
