"""The cold check: how brand-new items are ordered among themselves, and which items CALS
learns its content -> factors map from, both chosen on items held out of training.

A share of established items is taken out of the events entirely (ALS, behaviour, the content
map and CALS never see them), as the evaluation protocol holds out new items. Each user who
liked some of them gets them all ranked, as if just published. The cold scorer's weights
(`ranker.fit_cold`) and CALS's minimum audience (CALS_MIN_AUDIENCE) are the pair that ranks
them best; nothing here is chosen on test data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medley.config import RecommendationSettings
from medley.recs import fitting, groups, ranker
from medley.recs.behavior import Behavior
from medley.recs.collab import CollabModel
from medley.recs.events import Event
from medley.recs.items import ItemTable
from medley.recs.predicted import Predicted

log = logging.getLogger(__name__)

# This share of the items that at least this many users engaged with (at most this many items)
# is held out. Every checked user's held-out items are scored, so items x users bounds its cost
# (~2 min at 100k items and 1M events with 500 x 1,000; MovieLens stays under both caps).
HOLD_SHARE, HOLD_MIN_AUDIENCE, HOLD_MAX_ITEMS, HOLD_MAX_USERS = 0.15, 5, 500, 1000
# CALS is fitted on the items at least this many users engaged with, each tried on the check.
# An item one or two users touched pins its own factors down poorly, and in CALS every item's
# factors come from the one content map: fitting on noisy items pulls the map towards them.
# Each try is a CALS fit on the check's events (smaller audiences cost more: more items); a
# try that would fit the same items as an earlier one is skipped (at 100k items and 1M events
# every audience here leaves more than MAX_CALS_ITEMS, so one fit serves all three).
CALS_MIN_AUDIENCE = (1, 3, 10)


@dataclass
class _Check:
    """What the cold check ranks: the held-out items, for users of the rest of the events."""

    rest: list[tuple[int, Event]]
    model: CollabModel  # ALS and the content map on `rest`; CALS swapped per try
    behavior: Behavior
    users: list[groups.Past]
    liked: dict[str, set[str]]
    items: list[str]


def choose(stream: Sequence[tuple[int, Event]], table: ItemTable,
           settings: RecommendationSettings, names: Sequence[str], seed: int = 0
           ) -> dict[str, Any]:
    """`ranker.fit_cold`'s choice ({"weights", "ndcg@10" of every weighting tried}) on the
    best CALS try, with "cals_min_audience" (the try kept; None: no CALS could be fitted) and
    "cals_tried" (each try's best NDCG@10); {} when there is too little to check on."""
    check = _prepare(stream, table, settings, seed)
    if check is None:
        return {}
    best: dict[str, Any] = {}
    tried: dict[str, float] = {}
    first: list[ranker.Group] | None = None
    fitted_on: dict[int, int] = {}  # items fitted on -> the try that fitted them
    counts = fitting.cals_item_counts(check.rest, CALS_MIN_AUDIENCE)
    for audience in CALS_MIN_AUDIENCE:
        count = counts[audience]
        if count in fitted_on:  # the same items as an earlier try: the same fit (100k: all)
            tried[str(audience)] = tried[str(fitted_on[count])]
            continue
        fitted_on[count] = audience
        try:
            check.model.cals = fitting.fit_cals(table, check.model, check.rest, settings,
                                                audience)
        except Exception:  # this try is out; the others (or the scorer without CALS) remain
            log.exception("CALS could not be learned on the cold check (audience %d)", audience)
            check.model.cals = None
        first = _groups(check, table, first)
        if not first:
            return {}
        got = ranker.fit_cold(first, names)
        score = max(got["ndcg@10"].values())
        tried[str(audience)] = round(score, 4)
        if not best or score > max(best["ndcg@10"].values()):
            best = {**got, "cals_min_audience": audience if check.model.cals else None}
        if check.model.cals is None:
            break  # too little to fit CALS on: fewer items would not change that
    return {**best, "cals_tried": tried}


def _prepare(stream: Sequence[tuple[int, Event]], table: ItemTable,
             settings: RecommendationSettings, seed: int) -> _Check | None:
    audience: dict[str, set[str]] = {}
    for _, e in stream:
        if e.weight > 0:
            audience.setdefault(e.item_id, set()).add(e.user_id)
    eligible = sorted(i for i, who in audience.items()
                      if len(who) >= HOLD_MIN_AUDIENCE and table.get(i) is not None)
    rng = np.random.default_rng(seed + 1)
    n = min(HOLD_MAX_ITEMS, round(HOLD_SHARE * len(eligible)))
    if n < 2:
        return None
    held = set(rng.choice(eligible, n, replace=False).tolist())
    rest = list(enumerate((e for _, e in stream if e.item_id not in held), start=1))
    behavior = Behavior(settings.popularity_half_life_days * 86400,
                        settings.trending_half_life_hours * 3600)
    behavior.apply(rest)
    model = fitting.als(rest, settings, len(rest), seed)
    fitted = fitting.fit_map(table, model, rest, seed) if model is not None else None
    if model is None or fitted is None:
        return None
    model.content_map = fitted[0]
    liked: dict[str, set[str]] = {}
    for _, e in stream:
        if e.item_id in held and e.weight >= fitting.LIKED_WEIGHT:
            liked.setdefault(e.user_id, set()).add(e.item_id)
    ids = sorted(u for u in liked if behavior.user(u) is not None)
    if len(ids) > HOLD_MAX_USERS:
        ids = sorted(rng.choice(ids, HOLD_MAX_USERS, replace=False))
    now = behavior.latest_ts
    users = [groups.Past(u, behavior, table, model, now) for u in ids]
    return _Check(rest, model, behavior, users, liked, sorted(held))


def _groups(check: _Check, table: ItemTable, before: list[ranker.Group] | None
            ) -> list[ranker.Group]:
    """Each checked user's held-out items as a group under the model's current CALS. The tree
    features do not depend on CALS: with `before` (the first try's groups) only the cold
    scorer's inputs are computed again."""
    model, predicted = check.model, Predicted(check.model)  # a fresh cache per CALS fit
    if before is not None:
        by_user = {g.user: g for g in before}
        return [ranker.Group(g.x, g.y, groups.cold_of(u, check.items, table, model, predicted),
                             user=u.id)
                for u in check.users if (g := by_user.get(u.id)) is not None]
    out = []
    for u in check.users:
        g = groups.group(u, check.liked[u.id], check.items, table, check.behavior, model,
                         predicted, check.behavior.latest_ts)
        if g is not None:
            g.user = u.id
            out.append(g)
    return out
