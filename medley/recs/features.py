"""What the learned ranker sees of one (user, candidate) pair: the same numbers at training time
(on a past cut of the events) and per request (on live state), computed by one function.

Every feature is a vectorised numpy operation over the candidate pool; nothing here touches
the index or the database, so scoring a few hundred candidates costs well under a millisecond
beyond the products with the user's vectors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medley.recs.behavior import Behavior
from medley.recs.collab import CONFIDENCE_SCALE, CollabModel
from medley.recs.items import ItemTable
from medley.recs.knn import ItemKnn
from medley.recs.predicted import Predicted

DAY = 86400.0
# The features, in order. Content enters once, as the cosine under the published fusion
# weights: per-modality cosines would let the trees learn their own weights and quietly undo
# what editors set (and preview, and measure).
NAMES = ("collab", "collab_mapped", "engagement_mapped", "content", "liked_max", "pop_long",
         "pop_short", "interactions", "age_days", "user_events", "knn",
         "newer_than_mean", "newer_than_newest", "knn_recent", "collab_user")
# "knn_recent": the same item-to-item weights from the user's newest LIKED_MAX_RECENT liked
# items only. What someone watches next follows what they watched last more than their whole
# history: on MovieLens 100K's per-user time split it lifted the ranker's NDCG@10 on its own
# held-out users from 0.158 to 0.178 (with "collab_user"; bench/eval-ml100k.md). "collab_user":
# the ALS score under the user's own trained factors (their whole history as the model saw
# it), beside "collab" folded in from their recent positives; NaN for users the model never saw.
# What a cold item lacks. "knn": the item-to-item weights from the user's recent items
# (`medley.recs.knn`, carried by the ranker), NaN outside its vocabulary.
BEHAVIOUR = ("collab", "pop_long", "pop_short", "interactions", "knn", "knn_recent",
             "collab_user")
# masked to NaN, the rest to 0
_UNKNOWN_WHEN_NEW = frozenset({"collab", "knn", "knn_recent", "collab_user"})
# What only the cold scorer sees (`ranker.cold_scores`), for items nobody engaged with yet: the
# CALS score (the item's content-predicted factors times the user's CALS vector), the item's
# predicted audience under CALS, and the user's own taste classifier over the item's content
# (`cals.classifiers`, weights stored per training user). Not tree features: the trees place
# new items among established ones on the features above; these order new items among
# themselves.
COLD = ("cals", "cals_pop", "uclf")
# "liked_max" compares a candidate with this many of the user's newest liked items, not all
# RECENT_POSITIVES (50): a pool of ~350 candidates against 50 liked items was the largest
# product of a for-you request (~2 ms of its ranker's ~6). Five instead of ten halve what is
# left of it (part of the ranker's cost, `python -m benchmarks.ranker_cost`: 1.24-1.37 ms
# before, 0.95-1.17 after, with the taste's vectors reused), and the eval scored them alike
# (MovieLens-small per-user split 0.1293 against 0.1262 NDCG@10; 100K 0.1907 against 0.1864).
LIKED_MAX_RECENT = 5


@dataclass
class UserSignals:
    taste: np.ndarray | None  # centred fused taste vector (unit), None without positives
    vector: np.ndarray | None  # collaborative user vector (folded in from recent positives)
    liked_rows: np.ndarray  # table rows of the recent positives
    events: int  # the user's non-impression events so far
    cals: np.ndarray | None = None  # the user's CALS vector (stored, else folded in)
    uclf: np.ndarray | None = None  # the user's stored taste classifier weights, if any
    # the centred vectors of `liked_rows` on the surface `compute` is asked for (`Taste`
    # computes them once); None: `compute` centres the rows it needs itself
    liked_vectors: np.ndarray | None = None
    trained: np.ndarray | None = None  # the user's own ALS factors (training users only)


# The (user, item) columns that depend only on the user's own events, the model and the items'
# vectors: a user's nearline entry keeps them for its candidates (`medley.recs.user_lists`), so a
# request computes them only for the candidates it found itself. The product with the items'
# stored vectors is most of a request's feature cost.
PERSONAL = ("content", "liked_max", "collab", "collab_user")  # the model's last (see below)


def personal(table: ItemTable, model: CollabModel | None, user: UserSignals, rows: np.ndarray,
             surface: str | None = None, ids: Sequence[str] | None = None) -> np.ndarray:
    """The PERSONAL columns (len(rows), len(PERSONAL)) for these table rows (`ids`: their item
    ids, when the caller has them), NaN where unknown."""
    out = np.full((len(rows), len(PERSONAL)), np.nan, dtype=np.float32)
    # Taste and the newest liked items against the candidates' centred vectors, in one
    # product: its cost grows with the liked items compared (LIKED_MAX_RECENT).
    liked = user.liked_rows[:LIKED_MAX_RECENT]
    queries = [user.taste] if user.taste is not None else []
    if len(liked):
        mine = user.liked_vectors
        queries += list(mine[: len(liked)] if mine is not None and len(mine) >= len(liked)
                        else table.vectors_of(liked, surface, centred=True))
    if queries and len(rows):
        dots = table.dots(rows, np.stack(queries), surface, centred=True)
        if user.taste is not None:
            out[:, 0] = dots[:, 0]
        if len(liked):
            out[:, 1] = dots[:, int(user.taste is not None):].max(axis=1)
    out[:, 2:] = personal_model(table, model, user, rows, ids)
    return out


def personal_model(table: ItemTable, model: CollabModel | None, user: UserSignals,
                   rows: np.ndarray, ids: Sequence[str] | None = None) -> np.ndarray:
    """The model's PERSONAL columns ("collab", "collab_user"), (len(rows), 2)."""
    out = np.full((len(rows), 2), np.nan, dtype=np.float32)
    if model is not None and len(rows):
        if ids is None:
            ids = [table.ids[r] for r in rows.tolist()]
        if user.vector is not None and user.trained is not None:  # both with one lookup
            out[:] = model.scores(np.stack([user.vector, user.trained], axis=1), ids)
        elif user.vector is not None:
            out[:, 0] = model.scores(user.vector, ids)
        elif user.trained is not None:
            out[:, 1] = model.scores(user.trained, ids)
    return out


def compute(table: ItemTable, behavior: Behavior, model: CollabModel | None,
            predicted: Predicted, now: float, user: UserSignals, ids: Sequence[str],
            surface: str | None = None, knn: ItemKnn | None = None,
            kept: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Feature matrix (len(ids), len(NAMES)), NaN where a signal is unknown. `knn`: the
    item-to-item weights of the "knn" feature (the served ranker's; in training, those
    learned on the history before the cut). `kept`: (sorted table rows, their `personal`
    columns) found earlier for this user, under the same model and taste."""
    n = len(ids)
    rows = table.rows(ids)
    out = np.full((n, len(NAMES)), np.nan, dtype=np.float32)
    col = {name: k for k, name in enumerate(NAMES)}
    mine = np.array([col[name] for name in PERSONAL])
    todo = np.arange(n)
    if kept is not None and len(kept[0]) and n:
        at = np.minimum(np.searchsorted(kept[0], rows), len(kept[0]) - 1)
        hit = kept[0][at] == rows
        out[np.flatnonzero(hit)[:, None], mine] = kept[1][at[hit]]
        todo = np.flatnonzero(~hit)
    if len(todo):
        out[todo[:, None], mine] = personal(table, model, user, rows[todo], surface,
                                            [ids[k] for k in todo.tolist()])
    if model is not None:
        factors, engagement = predicted.get(table, model, rows)
        if factors is not None and user.vector is not None:
            out[:, col["collab_mapped"]] = factors @ user.vector
        out[:, col["engagement_mapped"]] = engagement
    out[:, col["pop_long"]] = behavior.popularity_log(ids, now)
    out[:, col["pop_short"]] = behavior.trending_log(ids, now)
    out[:, col["interactions"]] = np.log1p(np.asarray(behavior.counts(ids), dtype=np.float64))
    out[:, col["age_days"]] = np.clip(now - table.published[rows], 0.0, None) / DAY
    out[:, col["user_events"]] = math.log1p(user.events)
    if len(user.liked_rows):  # the item's date against those of the user's recent items
        mine_dates = table.published[user.liked_rows]
        out[:, col["newer_than_mean"]] = (table.published[rows] - mine_dates.mean()) / DAY
        out[:, col["newer_than_newest"]] = (table.published[rows] - mine_dates.max()) / DAY
    if knn is not None and len(user.liked_rows):
        history = [table.ids[r] for r in user.liked_rows]
        out[:, col["knn"]], out[:, col["knn_recent"]] = knn.scores_of(
            [history, history[:LIKED_MAX_RECENT]], ids)
    return out


def cold(table: ItemTable, model: CollabModel | None, predicted: Predicted,
         user: UserSignals, ids: Sequence[str]) -> np.ndarray:
    """The cold scorer's inputs (len(ids), len(COLD)), NaN where unknown: per item, one
    f-long product with the user's CALS vector over factors predicted once per model."""
    out = np.full((len(ids), len(COLD)), np.nan, dtype=np.float32)
    if model is None or model.cals is None or not len(ids):
        return out
    factors, audience = predicted.get_cals(table, model, table.rows(ids))
    if factors is None:
        return out
    if user.cals is not None:
        out[:, 0] = factors @ user.cals
    out[:, 1] = audience
    if user.uclf is not None:
        rows = table.rows(ids)
        out[:, 2] = model.cals.classify(table.units[rows], table.present[rows], user.uclf)
    return out


def trained_of(model: CollabModel | None, user_id: str | None) -> np.ndarray | None:
    """The user's own ALS factors, as trained (users the model saw), else None."""
    if model is None or user_id is None:
        return None
    r = model.user_row.get(user_id)
    return None if r is None else model.user_factors[r]


def uclf_of(model: CollabModel | None, user_id: str | None) -> np.ndarray | None:
    """The user's stored taste classifier weights (training users only), else None."""
    if model is None or model.cals is None or model.cals.uclf is None or user_id is None:
        return None
    r = model.user_row.get(user_id)
    return None if r is None else model.cals.uclf[r]


def cals_vector(table: ItemTable, model: CollabModel | None, predicted: Predicted,
                user_id: str | None, positives: Sequence[tuple[str, float]]) -> np.ndarray | None:
    """The user's CALS vector: stored by the training task for users it saw (their whole
    history), else folded in from their recent positives against CALS item factors."""
    if model is None or model.cals is None:
        return None
    stored = model.cals_user(user_id) if user_id is not None else None
    if stored is not None:
        return stored
    totals: dict[str, float] = {}
    for item, w in positives:  # repeated events add up, as in training
        totals[item] = totals.get(item, 0.0) + w
    items = [i for i, w in totals.items() if w > 0 and table.get(i) is not None]
    if not items:
        return None
    factors, _ = predicted.get_cals(table, model, table.rows(items))
    if factors is None:
        return None
    conf = np.array([CONFIDENCE_SCALE * totals[i] for i in items])
    return model.cals.fold_in(factors, conf)


def mask_behaviour(x: np.ndarray, which: np.ndarray) -> np.ndarray:
    """These rows as if their items were brand new (training's DropoutNet step): no ALS score,
    no popularity, no interactions; content and predicted appeal stay."""
    x = x.copy()
    for name in BEHAVIOUR:
        k = NAMES.index(name)
        x[which, k] = np.nan if name in _UNKNOWN_WHEN_NEW else 0.0
    return x
