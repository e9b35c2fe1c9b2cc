"""Erasing a user, or resetting their history: the database side, in one transaction.

Both delete the user's events (and with them every recommendation id they reported) and their
trace in every stored collaborative model; erasure also deletes their stated preferences and
controls. Each writes a notice (`erasures`, also the receipt; read through `medley.erasures`):
serving processes poll it, drop the user's state and rebuild the aggregates the deleted events
fed (`RecSync.apply_erasures`); training reads it to retrain a model that learnt from them
(`retrain_due`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from medley import controls
from medley.db.models import CollabModelRecord, Erasure, EventRecord, UserPreferences, utcnow
from medley.erasures import serialize, user_hash
from medley.experiments import store as experiments_store
from medley.recs.collab import CollabModel
from medley.recs.events import WEIGHTS

POSITIVE = [t.value for t, w in WEIGHTS.items() if w > 0]  # the events ALS learns from
CHUNK = 500  # ids per IN (...) list


class Kind(StrEnum):
    ERASE = "erase"  # everything about the user
    RESET = "reset"  # their history and what was learnt from it; stated wishes stay


@dataclass(frozen=True)
class Scrubbed:
    receipt_id: str
    at: datetime
    counts: dict[str, int | bool]
    retrain: bool  # a stored model learnt from the deleted events


def scrub(s: Session, user_id: str, kind: Kind, notice_s: float) -> Scrubbed:
    serialize(s)
    rows = s.execute(select(EventRecord.seq, EventRecord.item_id, EventRecord.recommendation_id)
                     .where(EventRecord.user_id == user_id)).all()
    if rows:
        s.execute(delete(EventRecord).where(EventRecord.user_id == user_id))
    items = {r.item_id for r in rows}
    exposures = experiments_store.erase_user(s, user_id)
    first_seq = min((r.seq for r in rows), default=None)
    factors, dropped, model_id = _scrub_models(s, user_id, items, first_seq)
    counts: dict[str, int | bool] = {
        "events": len(rows),
        "recommendation_ids": len({r.recommendation_id for r in rows if r.recommendation_id}),
        "exposures": exposures,
        "collab_factors": factors,
        "collab_items": dropped,
    }
    if kind is Kind.ERASE:
        prefs = s.get(UserPreferences, user_id)
        if prefs is not None:
            s.delete(prefs)
        before = controls.delete(s, user_id)
        counts |= {"preferences": prefs is not None,
                   "not_interested": len(before.items) + len(before.tags),
                   "history_paused": before.paused}
    rebuild = bool(rows) or factors or dropped > 0
    row = Erasure(receipt_id=str(uuid.uuid4()), kind=kind.value, counts=counts,
                  user_hash=user_hash(user_id) if rebuild else None, model_id=model_id,
                  at=utcnow())
    s.add(row)
    s.flush()
    forget_hashes(s, notice_s)
    return Scrubbed(row.receipt_id, row.at, counts, model_id is not None)


def _scrub_models(s: Session, user_id: str, items: set[str], first_seq: int | None
                  ) -> tuple[bool, int, int | None]:
    """Take the user out of every stored model: their factor row, and the items only they
    engaged with (until the retrain refits the rest). Returns (had factors, items dropped
    from the newest model, id of the newest model if it learnt from them)."""
    latest = s.scalar(select(func.max(CollabModelRecord.id)))
    had, dropped, retrain = False, 0, None
    for record in s.scalars(select(CollabModelRecord).order_by(CollabModelRecord.id)):
        model = CollabModel.from_bytes(record.blob)
        learnt = first_seq is not None and first_seq <= model.last_seq
        if user_id not in model.user_row and not learnt:
            continue
        only = _only_theirs(s, items & set(model.item_row), model.last_seq)
        record.blob = model.without(user_id, only).to_bytes()
        had = had or user_id in model.user_row
        if record.id == latest and learnt:
            dropped, retrain = len(only), record.id
    s.flush()
    return had, dropped, retrain


def _only_theirs(s: Session, items: set[str], up_to_seq: int) -> set[str]:
    """Of these items, those no remaining event up to `up_to_seq` engaged with positively:
    their factors in that model came from the erased user alone."""
    wanted = sorted(items)
    others: set[str] = set()
    for k in range(0, len(wanted), CHUNK):
        others.update(s.scalars(select(EventRecord.item_id).distinct().where(
            EventRecord.item_id.in_(wanted[k : k + CHUNK]), EventRecord.seq <= up_to_seq,
            EventRecord.type.in_(POSITIVE))))
    return items - others


def forget_hashes(s: Session, notice_s: float) -> None:
    """Notices older than `notice_s` keep the receipt and lose the user's hash."""
    cutoff = utcnow() - timedelta(seconds=notice_s)
    s.execute(update(Erasure).where(Erasure.at < cutoff, Erasure.user_hash.is_not(None))
              .values(user_hash=None))
