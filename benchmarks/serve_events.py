"""Synthetic behaviour for `python -m benchmarks serve`: users with a preferred topic or two,
Zipf-like item popularity, a realistic mix of event types over the past 30 days, stored in time
order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from benchmarks.serve_data import DataSpec
    from medley.db import Database

DAY = 86400.0
HISTORY_DAYS = 30
IN_TOPIC = 0.8  # share of a user's events on their preferred topics
ZIPF = 1.0  # popularity exponent over a random item ranking
EVENT_TYPES: tuple[tuple[str, float], ...] = (
    ("impression", 0.30), ("view", 0.38), ("complete", 0.12), ("like", 0.08), ("skip", 0.07),
    ("dislike", 0.02), ("share", 0.03),
)
DEVICES = (("mobile", 0.5), ("tv", 0.3), ("web", 0.2))
SURFACES = (("home", 0.5), ("detail", 0.25), ("search", 0.15), ("new", 0.1))
LOCALES = (("en-US", 0.5), ("en-GB", 0.15), ("de-DE", 0.15), ("fr-FR", 0.1), ("es-ES", 0.1))
EVENT_BATCH = 50_000
QUERIES = (
    "space documentary", "funny cooking show", "football highlights", "detective series",
    "a thriller about the mafia", "dinosaurs for kids", "jazz concert", "surfing big waves",
    "ancient rome history", "vampire romance", "robots and artificial intelligence",
    "street food tour in asia", "climate change documentary", "chess grandmaster",
    "wildlife in the mountains", "pirates adventure for the family", "hip-hop music videos",
    "ballet performance", "startup founders interview", "volcano eruption",
    "gardening tips for beginners", "photography masterclass", "trains across europe",
    "tennis final", "basketball season recap", "fashion week backstage",
    "magic tricks revealed", "island travel guide", "medical drama", "political thriller",
)


def _pick(rng: np.random.Generator, table: tuple[tuple[str, float], ...], n: int) -> np.ndarray:
    names, p = zip(*table, strict=True)
    return np.asarray(names, dtype=object)[rng.choice(len(names), size=n, p=np.asarray(p) / sum(p))]


def user_id(k: int) -> str:
    return f"user-{k:06d}"


def generate(spec: DataSpec, topic: np.ndarray, created: np.ndarray, rng: np.random.Generator,
             now: float) -> dict[str, np.ndarray]:
    """Event columns (user, item, type, value, ts, device, surface, locale), ts ascending."""
    n_items, n_users, m = len(topic), spec.users, spec.events
    activity = rng.lognormal(0.0, 1.0, n_users)
    first = rng.integers(spec.topics, size=n_users)
    second = np.where(rng.random(n_users) < 0.5, rng.integers(spec.topics, size=n_users), first)
    popularity = (rng.permutation(n_items) + 1.0) ** -ZIPF
    users = rng.choice(n_users, size=m, p=activity / activity.sum())
    items = np.empty(m, dtype=np.int64)
    local = rng.random(m) < IN_TOPIC
    outside = np.flatnonzero(~local)
    items[outside] = rng.choice(n_items, size=len(outside), p=popularity / popularity.sum())
    wanted = np.where(rng.random(m) < 0.65, first[users], second[users])
    by_topic = np.argsort(topic, kind="stable")
    bounds = np.searchsorted(topic[by_topic], np.arange(spec.topics + 1))
    inside = np.flatnonzero(local)
    inside = inside[np.argsort(wanted[inside], kind="stable")]
    cuts = np.searchsorted(wanted[inside], np.arange(spec.topics + 1))
    for t in range(spec.topics):
        events = inside[cuts[t] : cuts[t + 1]]
        members = by_topic[bounds[t] : bounds[t + 1]]
        if not len(events):
            continue
        if not len(members):  # an empty topic: fall back to global popularity
            members = np.arange(n_items)
        w = popularity[members]
        items[events] = members[rng.choice(len(members), size=len(events), p=w / w.sum())]
    kinds = _pick(rng, EVENT_TYPES, m)
    lo = np.maximum(now - HISTORY_DAYS * DAY, created[items] + 60.0)
    ts = np.minimum(lo + rng.random(m) * np.maximum(now - 1.0 - lo, 0.0), now - 1.0)
    value = np.where(kinds == "view", rng.integers(1, 101, size=m),
                     np.where(kinds == "complete", 100.0, np.nan))
    order = np.argsort(ts, kind="stable")
    cols = {"user": users, "item": items, "type": kinds, "value": value, "ts": ts,
            "device": _pick(rng, DEVICES, m), "surface": _pick(rng, SURFACES, m),
            "locale": _pick(rng, LOCALES, m), "with_rec": rng.random(m) < 0.3}
    return {k: v[order] for k, v in cols.items()}


def write_events(db: Database, spec: DataSpec, ids: list[str], topic: np.ndarray,
                 created: np.ndarray, rng: np.random.Generator, now: float) -> dict[str, Any]:
    """Generate and store the events; returns load-generator inputs drawn from them."""
    from sqlalchemy import insert

    from medley.db.models import EventRecord

    cols = generate(spec, topic, created, rng, now)
    for start in range(0, spec.events, EVENT_BATCH):
        stop = min(start + EVENT_BATCH, spec.events)
        rows = []
        for k in range(start, stop):
            v = cols["value"][k]
            ctx = {"device": cols["device"][k], "surface": cols["surface"][k],
                   "locale": cols["locale"][k]}
            rows.append({
                "event_id": uuid.UUID(bytes=rng.bytes(16), version=4).hex,
                "user_id": user_id(int(cols["user"][k])), "item_id": ids[cols["item"][k]],
                "type": cols["type"][k], "value": None if np.isnan(v) else float(v),
                "ts": float(cols["ts"][k]), "context": ctx,
                "recommendation_id": rng.bytes(8).hex() if cols["with_rec"][k] else None,
                "received_at": datetime.fromtimestamp(cols["ts"][k], UTC),
            })
        with db.engine.begin() as conn:
            conn.execute(insert(EventRecord), rows)
    active = np.unique(cols["user"][cols["type"] != "impression"])
    known = rng.choice(active, size=min(3000, len(active)), replace=False)
    counts = np.bincount(cols["item"], minlength=len(ids))
    hot = np.argsort(-counts)[: max(1, min(2000, len(ids) // 2))]
    return {
        "users": [user_id(int(u)) for u in known],
        "unknown_users": [f"visitor-{uuid.UUID(bytes=rng.bytes(16)).hex[:12]}" for _ in range(500)],
        "event_items": [ids[i] for i in hot],
        "n_users_active": len(active),
    }
