"""Everything the recommender learns from the event history, in one task: ALS factors, the
content -> factors map (`content_map`) and the learned ranker (`ranker`), returned as one
`CollabModel` so serving loads them as one version.

How the ranker learns: each user's events are split by time (first 80% history, last 20%
later). ALS, behaviour and the content map are fitted on the history alone; the user's
candidates are drawn as serving draws them (ALS, centred content, popularity); each candidate's
label is whether the user liked it later (liked, completed or shared: 1; else 0).
A share of rows is shown to the ranker as if their items were brand new (no behaviour left, only
content and the predicted appeal): DropoutNet's trick (Volkovs et al., NeurIPS 2017), which
teaches the model where such items belong among established ones.

How new items are ordered among themselves is checked apart (`held_out_groups`): some
established items are removed from the events altogether, as the evaluation protocol holds out new
items, and the cold scorer's weights are those that rank them best for the users who liked
them.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from medley.config import Settings
from medley.recs import cals, collab, content_map, features, groups, knn, ranker
from medley.recs.behavior import Behavior
from medley.recs.collab import CollabModel
from medley.recs.events import Event, EventType
from medley.recs.items import ItemTable
from medley.recs.predicted import Predicted

if TYPE_CHECKING:
    import scipy.sparse as sp

log = logging.getLogger(__name__)

LATER_SHARE = 0.2  # of each user's events: what the ranker learns to predict
# Where each user's events are cut for training groups (share before the cut): the latest
# cut, then earlier ones, each a group per user (MovieLens has 610 users: one cut left the
# trees ~400 groups). Chosen by 5-fold cross-validation over the training users of the eval's
# per-user split (NDCG@10 of the latest cut's groups): 0.8 and 0.6 scored 0.136; adding 0.4,
# 0.141; adding 0.7 and 0.5 too, 0.144; a cut at 0.2 (a history of a few events) did not help.
CUTS = (1.0 - LATER_SHARE, 0.7, 0.6, 0.5, 0.4)
MIN_USER_EVENTS = 5  # fewer: the whole history is history
MAX_USERS = 2000  # users the ranker trains on (seeded sample): enough, and bounded in time
# The earlier cuts exist to give a small platform's trees more groups; each one replays the
# events and fits ALS and the content map again. Once the cuts so far hold this many groups
# the rest are skipped: at 100k items and 1M events all five cuts took the training task 44
# minutes here (`python -m benchmarks serve`'s preparation), where the task runs every 10 minutes.
# MovieLens (610 users, at most ~3,000 groups) keeps all five.
MAX_GROUPS = 2 * MAX_USERS
# CALS's content -> factors map has (content width + modalities + 1) x factors parameters
# (~150k at the default models), which this many items pin down; each of its conjugate-gradient
# steps multiplies the items' design matrix twice, so at 100k items each CALS fit (two per
# training) took ~5-6 of the task's ~22 minutes (py-spy, `python -m benchmarks serve`'s
# preparation). The most engaged items are kept: they carry most of the confidences the users'
# CALS vectors are fitted on. MovieLens (9,742 items) is under it.
MAX_CALS_ITEMS = 20_000
DROPOUT = 0.25  # share of candidate rows shown as brand-new items
ESTABLISHED = 3  # interactions an item needs to teach the content map
LIKED_WEIGHT = 2.0  # a later event at least this strong (like, complete, share) is a positive
FOR_YOU = "recommendations"
MAX_USER_SKIP = 50  # popular items a user may already have consumed
USER_BATCH = 512  # users scored together in one pass over the catalog
# The cold check: this share of the items that at least this many users engaged with (at
# most this many items) is held out of the events, as the evaluation protocol holds out new items.
# Every user's held-out items are scored, so items x users bounds its cost (~2 min at 100k
# items and 1M events with 1,000 x 2,000; MovieLens stays under both caps).
HOLD_SHARE, HOLD_MIN_AUDIENCE, HOLD_MAX_ITEMS, HOLD_MAX_USERS = 0.15, 5, 500, 1000


def learn(stream: Sequence[tuple[int, Event]], table: ItemTable, settings: Settings, *,
          last_seq: int, seed: int = 0) -> tuple[CollabModel | None, dict[str, Any]]:
    """The model to serve, trained on every event in `stream`, and a report of what was kept."""
    model = _als(stream, settings, last_seq, seed)
    if model is None:
        return None, {"ranker": {"kept": False, "why": "no positive events"}}
    # The map and the ranker are extras on top of ALS: if either cannot be learned, the task
    # says so and stores ALS alone (the hand blend serves), never no model at all.
    report: dict[str, Any] = {"content_map_r2": None}
    try:
        fitted = _fit_map(table, model, stream, seed)
        model.content_map = fitted[0] if fitted else None
        report["content_map_r2"] = round(fitted[0].r2, 4) if fitted else None
    except Exception:
        log.exception("the content map could not be learned; serving without it")
    try:
        started = time.perf_counter()
        model.cals = _fit_cals(table, model, stream, settings)
        report["cals"] = model.cals is not None
        report["cals_s"] = round(time.perf_counter() - started, 2)
    except Exception:
        log.exception("CALS could not be learned; serving without it")
    try:
        model.ranker, report["ranker"] = train_ranker(stream, table, settings, seed)
    except Exception as exc:
        log.exception("the ranker could not be learned; the hand blend serves")
        report["ranker"] = {"kept": False, "why": f"training failed: {exc!r}"}
    return model, report


def describe(model: CollabModel | None) -> dict[str, Any]:
    """What a stored model carries beside ALS, for reports: the content map's fit and the
    ranker's verdict on its held-out users (absent: the hand blend serves)."""
    cmap = model.content_map if model is not None else None
    rk = model.ranker if model is not None else None
    return {"content_map_r2": round(cmap.r2, 4) if cmap is not None else None,
            "cals": model is not None and model.cals is not None,
            "ranker": dict(rk.meta) if rk is not None else None}


def _als(stream: Sequence[tuple[int, Event]], settings: Settings, last_seq: int,
         seed: int) -> CollabModel | None:
    return collab.train(((e.user_id, e.item_id, e.weight) for _, e in stream),
                        factors=settings.collab_factors, iterations=settings.collab_iterations,
                        regularization=settings.collab_regularization, last_seq=last_seq,
                        seed=seed)


def _fit_map(table: ItemTable, model: CollabModel, stream: Sequence[tuple[int, Event]],
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


def _fit_cals(table: ItemTable, model: CollabModel, stream: Sequence[tuple[int, Event]],
              settings: Settings) -> cals.Cals | None:
    """CALS (`medley.recs.cals`) on the confidences this ALS model was trained on, starting
    from its user factors, over at most MAX_CALS_ITEMS items (the most engaged); None when
    there is too little to learn from."""
    found = collab.confidences((e.user_id, e.item_id, e.weight) for _, e in stream)
    if found is None:
        return None
    users, items, conf = found
    assert users == model.user_ids and items == model.item_ids
    touched, liked = _touched_liked(stream, model)
    keep = most_engaged(conf, MAX_CALS_ITEMS)
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


def most_engaged(conf: sp.csr_matrix, most: int) -> np.ndarray | None:
    """The columns (items) of the `most` largest audiences, in column order; None when there
    are no more columns than that."""
    if conf.shape[1] <= most:
        return None
    audience = conf.getnnz(axis=0)
    return np.sort(np.argsort(-audience, kind="stable")[:most])


def _touched_liked(stream: Sequence[tuple[int, Event]], model: CollabModel
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


def split_by_user(stream: Sequence[tuple[int, Event]], cut: float = 1.0 - LATER_SHARE,
                  later_share: float = LATER_SHARE
                  ) -> tuple[list[tuple[int, Event]], dict[str, list[Event]]]:
    """(history events, renumbered from 1; each user's later events): per user with at least
    MIN_USER_EVENTS events, the first `cut` of their events are history, the next
    `later_share` later, and whatever follows neither."""
    by_user: dict[str, list[int]] = {}
    for k, (_, e) in enumerate(stream):
        if e.type is not EventType.IMPRESSION:
            by_user.setdefault(e.user_id, []).append(k)
    after: set[int] = set()
    later: dict[str, list[Event]] = {}
    for user, idx in by_user.items():
        if len(idx) < MIN_USER_EVENTS:
            continue
        start = round(cut * len(idx))
        stop = round(min(1.0, cut + later_share) * len(idx))
        after.update(idx[start:])
        if stop > start:
            later[user] = [stream[k][1] for k in idx[start:stop]]
    history = [e for k, (_, e) in enumerate(stream) if k not in after]
    return list(enumerate(history, start=1)), later


def train_ranker(stream: Sequence[tuple[int, Event]], table: ItemTable, settings: Settings,
                 seed: int = 0) -> tuple[ranker.Ranker | None, dict[str, Any]]:
    """The ranker, on groups from each cut of CUTS (each user's events split at that share):
    the first cut's are what serving sees (the latest history), the earlier cuts' add
    training groups (users x cuts) and are never among the held-out users' groups."""
    rng = np.random.default_rng(seed)
    train: list[ranker.Group] = []
    for k, cut in enumerate(CUTS):
        if len(train) >= MAX_GROUPS:
            break  # enough to learn from: the earlier cuts would only cost time
        found = _cut_groups(stream, table, settings, cut, rng, seed)
        if found is None and k == 0:
            return None, {"kept": False, "why": "no user has later events to learn from"}
        for g in found or []:
            g.extra = k > 0
            train.append(g)
    rk, report = ranker.train(train, features.NAMES, seed,
                              held_out_groups(stream, table, settings, seed))
    if rk is not None:
        rk.knn = _knn(stream)
    return rk, report


def _cut_groups(stream: Sequence[tuple[int, Event]], table: ItemTable, settings: Settings,
                cut: float, rng: np.random.Generator, seed: int) -> list[ranker.Group] | None:
    """Training groups for one cut: ALS, behaviour and the content map on each user's events
    before it, labels from the LATER_SHARE after it. None: no user has later events."""
    history, later = split_by_user(stream, cut)
    if not history or not later:
        return None
    behavior = Behavior(settings.popularity_half_life_days * 86400,
                        settings.trending_half_life_hours * 3600)
    behavior.apply(history)
    now = behavior.latest_ts
    past = _als(history, settings, len(history), seed)
    if past is None:
        return None
    fitted = _fit_map(table, past, history, seed)
    predicted = Predicted(past)
    if fitted is not None:
        past.content_map = fitted[0]
        # Items the map learned from get their out-of-fold predictions: at serving time an
        # item's prediction comes from a map that never saw it, and the ranker must not learn
        # to trust in-sample fits.
        predicted.set(table, fitted[2], fitted[1][:, :-1], fitted[1][:, -1])
    # The "knn" feature's weights, learned on the history as ALS is; the ranker kept carries
    # those of every event (`train_ranker`).
    item_knn = _knn(history)
    alive = table.alive[: len(table.ids)] & table.has_vector(slice(0, len(table.ids)), FOR_YOU)
    popular = behavior.popularity_top(settings.candidates_per_source // 2 + MAX_USER_SKIP)
    users = sorted(u for u in later if behavior.user(u) is not None)
    if len(users) > MAX_USERS:
        users = sorted(rng.choice(users, MAX_USERS, replace=False))
    out: list[ranker.Group] = []
    for start in range(0, len(users), USER_BATCH):
        batch = [groups.Past(u, behavior, table, past, now)
                 for u in users[start : start + USER_BATCH]]
        found = groups.candidates(batch, table, past, alive, settings.candidates_per_source)
        for user, ids in zip(batch, found, strict=True):
            g = groups.group(user, _liked(later[user.id]), [*ids, *popular], table, behavior,
                             past, predicted, now, item_knn)
            if g is not None:
                drop = rng.random(len(g.y)) < DROPOUT
                out.append(ranker.Group(features.mask_behaviour(g.x, drop), g.y, user=user.id))
    return out


def _knn(stream: Sequence[tuple[int, Event]]) -> knn.ItemKnn | None:
    return knn.fit((e.user_id, e.item_id) for _, e in stream if e.weight > 0)


def _liked(events: Sequence[Event]) -> set[str]:
    # A view alone is not a positive: on the validation split graded labels (view 1, like 2)
    # ranked worse than liked-or-not, and "liked" is what the answers are for.
    return {e.item_id for e in events if e.weight >= LIKED_WEIGHT}


def held_out_groups(stream: Sequence[tuple[int, Event]], table: ItemTable, settings: Settings,
                    seed: int = 0) -> list[ranker.Group]:
    """How new items should be ordered among themselves, checked the way they arrive: a share
    of established items is taken out of the events entirely (ALS, behaviour and the content
    map never see them), and each user who liked some of them gets them all ranked, as if
    just published. What the cold scorer's weight is chosen on."""
    audience: dict[str, set[str]] = {}
    for _, e in stream:
        if e.weight > 0:
            audience.setdefault(e.item_id, set()).add(e.user_id)
    eligible = sorted(i for i, who in audience.items()
                      if len(who) >= HOLD_MIN_AUDIENCE and table.get(i) is not None)
    rng = np.random.default_rng(seed + 1)
    n = min(HOLD_MAX_ITEMS, round(HOLD_SHARE * len(eligible)))
    if n < 2:
        return []
    held = set(rng.choice(eligible, n, replace=False).tolist())
    rest = list(enumerate((e for _, e in stream if e.item_id not in held), start=1))
    behavior = Behavior(settings.popularity_half_life_days * 86400,
                        settings.trending_half_life_hours * 3600)
    behavior.apply(rest)
    model = _als(rest, settings, len(rest), seed)
    fitted = _fit_map(table, model, rest, seed) if model is not None else None
    if model is None or fitted is None:
        return []
    model.content_map = fitted[0]
    try:
        model.cals = _fit_cals(table, model, rest, settings)
    except Exception:  # the cold scorer then chooses among what remains
        log.exception("CALS could not be learned on the held-out check")
    liked: dict[str, set[str]] = {}
    for _, e in stream:
        if e.item_id in held and e.weight >= LIKED_WEIGHT:
            liked.setdefault(e.user_id, set()).add(e.item_id)
    users = sorted(u for u in liked if behavior.user(u) is not None)
    if len(users) > HOLD_MAX_USERS:
        users = sorted(rng.choice(users, HOLD_MAX_USERS, replace=False))
    items, predicted, now = sorted(held), Predicted(model), behavior.latest_ts
    out = []
    for u in users:
        g = groups.group(groups.Past(u, behavior, table, model, now), liked[u], items, table,
                         behavior, model, predicted, now)
        if g is not None:
            out.append(g)
    return out
