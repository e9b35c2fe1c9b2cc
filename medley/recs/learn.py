"""Everything the recommender learns from the event history, in one task: ALS factors, the
content -> factors map (`content_map`) and the learned ranker (`ranker`), returned as one
`CollabModel` so serving loads them as one version.

How the ranker learns: each user's events are split by time (first 80% history, last 20%
later), and so are all events at global moments (`TIME_CUTS`), where popularity, trending and
age are what serving would have seen then. ALS, behaviour and the content map are fitted on
the history alone; the user's candidates are drawn as serving draws them (ALS, centred
content, the item-to-item weights, popularity); each candidate's label is whether the user
liked it later (liked, completed or shared: 1; else 0).
A share of rows is shown to the ranker as if their items were brand new (no behaviour left, only
content and the predicted appeal): DropoutNet's trick (Volkovs et al., NeurIPS 2017), which
teaches the model where such items belong among established ones.

How new items are ordered among themselves is checked apart (`coldcheck`), on established
items removed from the events altogether, as the evaluation protocol holds out new items: it
chooses the cold scorer's weights and the items CALS is fitted on. The fits themselves (ALS,
the content map, CALS) are `fitting`'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from medley.config import RecommendationSettings
from medley.recs import coldcheck, features, fitting, groups, knn, ranker
from medley.recs.answers import FOR_YOU
from medley.recs.behavior import Behavior
from medley.recs.collab import CollabModel
from medley.recs.events import Event, EventType
from medley.recs.items import ItemTable
from medley.recs.predicted import Predicted

log = logging.getLogger(__name__)

LATER_SHARE = 0.2  # of each user's events: what the ranker learns to predict
# Where each user's events are cut for training groups (share before the cut): the latest
# cut, then earlier ones, each a group per user (MovieLens has 610 users: one cut left the
# trees ~400 groups). Chosen by 5-fold cross-validation over the training users of the eval's
# per-user split (NDCG@10 of the latest cut's groups): 0.8 and 0.6 scored 0.136; adding 0.4,
# 0.141; adding 0.7 and 0.5 too, 0.144; a cut at 0.2 (a history of a few events) did not help.
CUTS = (1.0 - LATER_SHARE, 0.7, 0.6, 0.5, 0.4)
# Per-user cuts put every user's "later" at a different moment but compute popularity, trending
# and item age at the end of the history: a user whose later events are years old is scored by
# today's popularity. Serving is one moment for everyone, so groups are also drawn at global
# cuts (the first share of all events by time is history; what each user did in the next
# LATER_SHARE of events is what they did later), where every feature is as of that moment.
# They are fitted on, never validated on, like the earlier per-user cuts.
TIME_CUTS = (1.0 - LATER_SHARE, 0.7, 0.6, 0.5, 0.4)
MIN_USER_EVENTS = 5  # fewer: the whole history is history
MAX_USERS = 2000  # users the ranker trains on (seeded sample): enough, and bounded in time
# The earlier cuts exist to give a small platform's trees more groups; each one replays the
# events and fits ALS and the content map again. Once the cuts so far hold this many groups
# the rest are skipped: at 100k items and 1M events all five cuts took the training task 44
# minutes here (`python -m benchmarks serve`'s preparation), where the task runs every 10 minutes.
# MovieLens (610 users, at most ~3,000 groups) keeps all five.
MAX_GROUPS = 2 * MAX_USERS
DROPOUT = 0.25  # share of candidate rows shown as brand-new items
MAX_USER_SKIP = 50  # popular items a user may already have consumed
USER_BATCH = 512  # users scored together in one pass over the catalog


def learn(stream: Sequence[tuple[int, Event]], table: ItemTable,
          settings: RecommendationSettings, *, last_seq: int, seed: int = 0
          ) -> tuple[CollabModel | None, dict[str, Any]]:
    """The model to serve, trained on every event in `stream`, and a report of what was kept."""
    model = fitting.als(stream, settings, last_seq, seed)
    if model is None:
        return None, {"ranker": {"kept": False, "why": "no positive events"}}
    # The map and the ranker are extras on top of ALS: if either cannot be learned, the task
    # says so and stores ALS alone (the hand blend serves), never no model at all.
    report: dict[str, Any] = {"content_map_r2": None}
    try:
        fitted = fitting.fit_map(table, model, stream, seed)
        model.content_map = fitted[0] if fitted else None
        report["content_map_r2"] = round(fitted[0].r2, 4) if fitted else None
    except Exception:
        log.exception("the content map could not be learned; serving without it")
    try:
        model.ranker, report["ranker"] = train_ranker(stream, table, settings, seed)
    except Exception as exc:
        log.exception("the ranker could not be learned; the hand blend serves")
        report["ranker"] = {"kept": False, "why": f"training failed: {exc!r}"}
    audience = 1
    if model.ranker is not None:  # the cold scorer is the ranker's: checked only for one kept
        try:
            cold = coldcheck.choose(stream, table, settings, features.NAMES, seed)
            model.ranker.meta["cold"] = report["ranker"]["cold"] = cold
            audience = cold.get("cals_min_audience") or 1
        except Exception:
            log.exception("the cold check failed; new items are ordered by the trees")
    try:
        started = time.perf_counter()
        model.cals = fitting.fit_cals(table, model, stream, settings, audience)
        report["cals"] = model.cals is not None
        report["cals_s"] = round(time.perf_counter() - started, 2)
    except Exception:
        log.exception("CALS could not be learned; serving without it")
    return model, report


def describe(model: CollabModel | None) -> dict[str, Any]:
    """What a stored model carries beside ALS, for reports: the content map's fit and the
    ranker's verdict on its held-out users (absent: the hand blend serves)."""
    cmap = model.content_map if model is not None else None
    rk = model.ranker if model is not None else None
    return {"content_map_r2": round(cmap.r2, 4) if cmap is not None else None,
            "cals": model is not None and model.cals is not None,
            "ranker": dict(rk.meta) if rk is not None else None}


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


def split_at_time(stream: Sequence[tuple[int, Event]], cut: float,
                  later_share: float = LATER_SHARE
                  ) -> tuple[list[tuple[int, Event]], dict[str, list[Event]]]:
    """(history events, renumbered from 1; each user's later events): the first `cut` of all
    events by time are history, and each user's events among the next `later_share` are what
    they did later (users with no history are dropped by the caller, as serving has nothing
    to rank for them)."""
    order = sorted(range(len(stream)), key=lambda k: stream[k][1].ts)
    start = round(cut * len(order))
    stop = round(min(1.0, cut + later_share) * len(order))
    before = set(order[:start])
    later: dict[str, list[Event]] = {}
    for k in order[start:stop]:
        e = stream[k][1]
        if e.type is not EventType.IMPRESSION:
            later.setdefault(e.user_id, []).append(e)
    history = [e for k, (_, e) in enumerate(stream) if k in before]
    return list(enumerate(history, start=1)), later


def train_ranker(stream: Sequence[tuple[int, Event]], table: ItemTable,
                 settings: RecommendationSettings, seed: int = 0
                 ) -> tuple[ranker.Ranker | None, dict[str, Any]]:
    """The ranker, on groups from each cut of CUTS (each user's events split at that share):
    the first cut's are what serving sees (the latest history), the earlier cuts' add
    training groups (users x cuts) and are never among the held-out users' groups."""
    rng = np.random.default_rng(seed)
    train: list[ranker.Group] = []
    # Alternating, so that a large platform (two cuts suffice) learns from both kinds.
    splits = [s for pair in zip(CUTS, TIME_CUTS, strict=True)
              for s in (("user", pair[0]), ("time", pair[1]))]
    for k, (kind, cut) in enumerate(splits):
        if len(train) >= MAX_GROUPS:
            break  # enough to learn from: the earlier cuts would only cost time
        found = _cut_groups(stream, table, settings, kind, cut, rng, seed)
        if found is None and k == 0:
            return None, {"kept": False, "why": "no user has later events to learn from"}
        for g in found or []:
            g.extra = k > 0
            train.append(g)
    rk, report = ranker.train(train, features.NAMES, seed)
    if rk is not None:
        rk.knn = _knn(stream)
    return rk, report


def _cut_groups(stream: Sequence[tuple[int, Event]], table: ItemTable,
                settings: RecommendationSettings, kind: str, cut: float,
                rng: np.random.Generator, seed: int) -> list[ranker.Group] | None:
    """Training groups for one cut ("user": each user's events, "time": all events by time):
    ALS, behaviour and the content map on the events before it, labels from the LATER_SHARE
    after it. None: no user has later events."""
    history, later = (split_by_user if kind == "user" else split_at_time)(stream, cut)
    if not history or not later:
        return None
    behavior = Behavior(settings.popularity_half_life_days * 86400,
                        settings.trending_half_life_hours * 3600)
    behavior.apply(history)
    now = behavior.latest_ts
    past = fitting.als(history, settings, len(history), seed)
    if past is None:
        return None
    fitted = fitting.fit_map(table, past, history, seed)
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
    alive &= table.published[: len(table.ids)] <= now  # what the catalog held at the cut
    popular = behavior.popularity_top(settings.candidates_per_source // 2 + MAX_USER_SKIP)
    users = sorted(u for u in later if behavior.user(u) is not None)
    if len(users) > MAX_USERS:
        users = sorted(rng.choice(users, MAX_USERS, replace=False))
    out: list[ranker.Group] = []
    for start in range(0, len(users), USER_BATCH):
        batch = [groups.Past(u, behavior, table, past, now)
                 for u in users[start : start + USER_BATCH]]
        found = groups.candidates(batch, table, past, alive, settings.candidates_per_source,
                                  item_knn)
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
    return {e.item_id for e in events if e.weight >= fitting.LIKED_WEIGHT}

