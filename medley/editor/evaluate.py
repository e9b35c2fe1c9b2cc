"""Offline metrics of fusion views on the platform's own event log (a profile's "evaluate").

The protocol is `medley.recs.evaluation`'s (the MovieLens benchmark's main table, `python -m
benchmarks eval`) with the event log in place of MovieLens ratings: each user's first positive
event per item (a type with a positive weight in `medley.recs.events.WEIGHTS`: view, complete,
like, share) is one "rating" (liked when the user's summed weight on the item is positive, else
only seen), 15% of the items with >= 5 raters are held out as new items, and each user's
history is cut 80/20 by time. Behaviour and ALS are fitted once on the training events; every
view then ranks with the same state, its own fused vectors, and an exact search over the table.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from medley.config import RecommendationSettings
from medley.recs import evaluation as ev
from medley.recs.events import Event
from medley.recs.items import FusionView, ItemTable

MIN_USERS = 5  # below this, one user's luck decides which view "wins"
METRICS = {"ndcg_at_10": "ndcg@10", "recall_at_10": "recall@10",
           "new_items_recall_at_10": "new_items_recall@10", "coverage_at_10": "coverage@10"}
RESERVED = frozenset({"events", "users", "note"})


def evaluate_views(events: Sequence[tuple[int, Event]], table: ItemTable,
                   views: Mapping[str, FusionView], settings: RecommendationSettings, *,
                   now: float, max_users: int = 500, seed: int = 0,
                   progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """NDCG@10, recall@10, new-items recall@10 and coverage@10 of Medley's for-you answers
    under each named view, on a per-user time split of `events` (see the module docstring).

    Events later than `now` (clock skew) and on items the table no longer holds are left out:
    the latter could never be recommended, so they would only lower every view alike. At most
    `max_users` users with both a past and a future are ranked, a sample drawn with `seed`.
    The ranking clock is the split's (the last training event), as in the MovieLens benchmark.
    `progress` hears the share done after the split and after each view."""
    if clash := RESERVED & set(views):
        raise ValueError(f"view names {sorted(clash)} are reserved keys of the result")
    table = _snapshot(table)
    alive = [i for r, i in enumerate(table.ids) if table.alive[r]]
    known = set(alive)
    usable = sorted(((q, e) for q, e in events if e.ts <= now and e.item_id in known),
                    key=lambda p: p[0])
    split = ev.split(_ratings(usable), alive, seed=seed)
    relevant = split.relevant()
    out: dict[str, Any] = {"events": len(events), "users": 0}
    if len(relevant) < MIN_USERS:
        out.update({name: dict.fromkeys(METRICS) for name in views})
        out["note"] = (f"{len(relevant)} user(s) had both a past and a future in the event log "
                       "(an item they liked in the last 20% of their history, not already in "
                       f"the first 80%); at least {MIN_USERS} are needed to compare views.")
        return out
    stream = _training(usable, split)  # before sampling: no user's future may train
    notes: list[str] = []
    if len(relevant) > max_users:
        keep = set(np.random.default_rng(seed).choice(sorted(relevant), max_users,
                                                      replace=False))
        split = replace(split, test=[r for r in split.test if r.user in keep])
        notes.append(f"Ranked a seeded sample of {max_users} of the {len(relevant)} users "
                     "with both a past and a future.")
    # A replay can only punish slots spent exploring new items (as in the MovieLens benchmark).
    settings = settings.model_copy(update={"exploration_share": 0.0})
    # A slice nobody liked a held-out item in would average recall over no one (0.0).
    new_items = bool(split.held_out) and bool(split.relevant_new())
    if not new_items:
        notes.append("No new-items slice: no item had 5 raters to hold out, or no user "
                     "with a past liked a held-out one.")
    out["users"] = min(len(relevant), max_users)
    tick = progress or (lambda share: None)
    tick(0.05)
    base: ev.World | None = None
    # One-row products over ~1k items: a second BLAS thread only spins (5x slower here). The
    # API process already runs with one, so this changes nothing for its other requests.
    with threadpool_limits(1, "blas"):
        for k, (name, view) in enumerate(views.items(), 1):
            # Behaviour and ALS are fitted once and lent on; each view gets its own exact
            # search and neighbour priors, since both read the fused vectors.
            world = ev.fit(split, table.viewed(view), settings, base=base,
                           collab=base.collab if base else None, stream=stream)
            base = base or world
            got = ev.measure(world, ("medley",), seed, new_items=new_items,
                             new_users=max_users)["medley"]
            out[name] = {k: None if got[v] is None else float(got[v]) for k, v in METRICS.items()}
            tick(0.05 + 0.95 * k / len(views))
    out["note"] = " ".join(notes) or None
    return out


FLOAT32_COPY_BYTES = 256 * 1024 * 1024  # ~28k items at the default models' 2,304 dimensions


def _snapshot(table: ItemTable) -> ItemTable:
    """A private copy of the live table. Serving keeps upserting while a request evaluates,
    and a row added mid-run would be missing from the search matrix (a shape error). Its
    units are float32: ranking converts the rows it reads on every call, and from float16
    that conversion was a third of the run; float16 -> float32 is exact, so the scores are
    the same. Past FLOAT32_COPY_BYTES the copy stays float16: memory of the serving process
    matters more than the speed of an editor's evaluation."""
    snap = copy.copy(table)
    with table.lock:
        n = len(table.ids)
        snap.ids, snap.row, snap.info = list(table.ids), dict(table.row), list(table.info)
        snap.tag_rows = {tag: set(rows) for tag, rows in table.tag_rows.items()}
        wide = n * table.dim * 4 <= FLOAT32_COPY_BYTES
        snap.units = table.units[:n].astype(np.float32 if wide else np.float16)
        for name in ("present", "bits", "alive", "age", "published", "created"):
            setattr(snap, name, getattr(table, name)[:n].copy())
    snap.lock = threading.Lock()
    return snap


def _ratings(events: Sequence[tuple[int, Event]]) -> list[ev.Rating]:
    """One rating per (user, item) at its first positive event; "liked" (relevant when in the
    future) if the user's weights on it sum positive, so a view later disliked is only seen."""
    first: dict[tuple[str, str], float] = {}
    net: dict[tuple[str, str], float] = {}
    for _, e in events:
        key = (e.user_id, e.item_id)
        net[key] = net.get(key, 0.0) + e.weight
        if e.weight > 0 and e.ts < first.get(key, np.inf):
            first[key] = e.ts
    return [ev.Rating(u, i, ev.LIKE_RATING if net[(u, i)] > 0 else 0.0, ts)
            for (u, i), ts in first.items()]


def _training(events: Sequence[tuple[int, Event]], split: ev.Split) -> list[tuple[int, Event]]:
    """The events each user had sent by their cut (negatives and impressions too), minus
    those on held-out items and on the items of their future, renumbered from 1 in log order
    (`fit` and the ALS cut assume the stream's seq numbers are its positions)."""
    cut: dict[str, float] = {}
    for r in split.train:
        cut[r.user] = max(cut.get(r.user, -np.inf), r.ts)
    future = {(r.user, r.item) for r in split.test}
    # A user without a training rating has no future either: all their events are past.
    kept = [e for _, e in events if e.ts <= cut.get(e.user_id, np.inf)
            and e.item_id not in split.held_out and (e.user_id, e.item_id) not in future]
    return list(enumerate(kept, start=1))
