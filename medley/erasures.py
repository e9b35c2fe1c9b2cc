"""Erasure notices: what an erasure or a reset of a user (`medley.privacy.erase`) leaves for the
processes that hold state about users. Serving processes poll them and drop the user's state
(`medley.recs.sync`); training reads them to retrain a model that learnt from the deleted
events, and to discard one it saved meanwhile (`medley.recs.training`). They sit below both,
so neither imports the erasure itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from medley.db.models import Erasure

LOCK_KEY = 0x6D65646C  # PostgreSQL advisory lock: erasures and model saves take turns


def user_hash(user_id: str) -> str:
    return hashlib.sha256(b"medley-erasure\0" + user_id.encode()).hexdigest()


@dataclass(frozen=True)
class Notice:
    id: int
    user_hash: str | None  # None once `erasure_notice_s` passed
    rebuild: bool  # the erasure deleted something serving state was built from


def serialize(s: Session) -> None:
    """Hold the erasure lock until this transaction ends, so a model saved by training is
    either seen (and scrubbed) by an erasure, or sees its notice (and is discarded). SQLite
    serializes writers already."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})


# --- what serving processes and training read ------------------------------------------------
def notices_after(s: Session, after_id: int) -> list[Notice]:
    rows = s.execute(select(Erasure.id, Erasure.user_hash, Erasure.counts)
                     .where(Erasure.id > after_id).order_by(Erasure.id)).all()
    return [Notice(r.id, r.user_hash, bool(r.counts.get("events") or r.counts.get("collab_factors")
                                           or r.counts.get("collab_items"))) for r in rows]


def latest_notice(s: Session) -> int:
    return int(s.scalar(select(func.max(Erasure.id))) or 0)


def retrain_due(s: Session, model_id: int) -> bool:
    """Whether an erasure deleted events this model (or a newer one) learnt from."""
    return s.scalar(select(Erasure.id).where(Erasure.model_id >= model_id).limit(1)) is not None
