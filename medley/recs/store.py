"""Database operations for behaviour: events, preferences, editorial settings, trained models."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from medley.db.models import (
    CollabModelRecord,
    Editorial,
    EventRecord,
    Item,
    UserPreferences,
)
from medley.recs.events import Event, EventType

TAIL_OVERLAP = 1000  # PostgreSQL may commit sequence numbers out of order: re-read this many

log = logging.getLogger(__name__)


def existing_items(s: Session, ids: set[str]) -> set[str]:
    if not ids:
        return set()
    return set(s.scalars(select(Item.id).where(Item.id.in_(ids))))


def insert_events(s: Session, events: Sequence[Event]) -> set[str]:
    """Store events; an event_id already stored is left as it was. Returns the ids inserted."""
    if not events:
        return set()
    rows = [
        {"event_id": e.event_id, "user_id": e.user_id, "item_id": e.item_id, "type": e.type.value,
         "value": e.value, "ts": e.ts, "context": e.context,
         "recommendation_id": e.recommendation_id, "session_id": e.session_id}
        for e in events
    ]
    dialect = s.get_bind().dialect.name
    stmt = _INSERT.get(dialect)
    if stmt is None:
        ins: Any = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(EventRecord)
        stmt = _INSERT[dialect] = ins.on_conflict_do_nothing(
            index_elements=["event_id"]).returning(EventRecord.event_id)
    # One statement, many parameter sets: SQLAlchemy batches them into multi-row INSERTs
    # ("insertmanyvalues") without compiling a new statement per call, which at a few dozen
    # rows cost more (~13 ms) than the write itself.
    return set(s.scalars(stmt, rows))


_INSERT: dict[str, Any] = {}  # dialect name -> the compiled-once insert statement


def to_event(r: Any) -> Event:
    return Event(r.event_id, r.user_id, r.item_id, EventType(r.type), r.value, r.ts,
                 r.context or {}, r.recommendation_id, r.session_id)


_COLUMNS = (EventRecord.seq, EventRecord.event_id, EventRecord.user_id, EventRecord.item_id,
            EventRecord.type, EventRecord.value, EventRecord.ts, EventRecord.context,
            EventRecord.recommendation_id, EventRecord.session_id)


# Stored events no reader could turn into an Event (seq -> why), for /healthz; a row another
# writer stored with a type this version does not know, say.
skipped_events: dict[int, str] = {}


def events_after(s: Session, seq: int, batch: int = 50_000) -> Iterator[tuple[int, Event]]:
    """Events with seq > `seq`, in order, streamed in batches."""
    while True:
        rows = s.execute(
            select(*_COLUMNS).where(EventRecord.seq > seq).order_by(EventRecord.seq).limit(batch)
        ).all()
        for r in rows:
            try:
                ev = to_event(r)
            except Exception as exc:  # one unreadable row never stops the tail behind it
                if r.seq not in skipped_events:  # once per row, not once per re-read
                    log.warning("event seq %s skipped: it cannot be read (%r)", r.seq, exc)
                skipped_events[r.seq] = repr(exc)[:200]
                continue
            yield r.seq, ev
        if len(rows) < batch:
            return
        seq = rows[-1].seq


def seqs_after(s: Session, seq: int) -> list[int]:
    return list(s.scalars(select(EventRecord.seq).where(EventRecord.seq > seq)
                          .order_by(EventRecord.seq)))


def max_seq(s: Session) -> int:
    return int(s.scalar(select(func.max(EventRecord.seq))) or 0)


# --- preferences ---------------------------------------------------------------------------
def get_preferences(s: Session, user_id: str) -> UserPreferences | None:
    return s.get(UserPreferences, user_id)


def put_preferences(
    s: Session, user_id: str, *, liked_items: list[str], text: str | None,
    text_vector: np.ndarray | None, disliked_tags: list[str],
) -> UserPreferences:
    row = s.get(UserPreferences, user_id) or UserPreferences(user_id=user_id)
    row.liked_items = liked_items
    row.text = text
    row.text_vector = None if text_vector is None else text_vector.astype(np.float32).tobytes()
    row.disliked_tags = disliked_tags
    s.add(row)
    s.flush()
    return row


# --- editorial ------------------------------------------------------------------------------
def get_editorial(s: Session) -> Editorial:
    return s.get(Editorial, 1) or Editorial(id=1, pins=[], boosts=[])


def put_editorial(
    s: Session, pins: list[dict[str, Any]], boosts: list[dict[str, Any]]
) -> Editorial:
    row = s.get(Editorial, 1) or Editorial(id=1)
    row.pins = pins
    row.boosts = boosts
    s.add(row)
    s.flush()
    return row


# --- collaborative models -------------------------------------------------------------------
def save_model(s: Session, blob: bytes, last_seq: int, n_events: int) -> int:
    row = CollabModelRecord(blob=blob, last_seq=last_seq, n_events=n_events)
    s.add(row)
    s.flush()
    # Older models are never read again; keep the newest few for inspection.
    old = s.scalars(select(CollabModelRecord.id).order_by(CollabModelRecord.id.desc()).offset(3))
    for model_id in list(old):
        s.delete(s.get(CollabModelRecord, model_id))
    return int(row.id)


def latest_model_id(s: Session) -> int | None:
    return s.scalar(select(func.max(CollabModelRecord.id)))


def load_model_blob(s: Session, model_id: int) -> tuple[bytes, int] | None:
    row = s.get(CollabModelRecord, model_id)
    return None if row is None else (row.blob, row.last_seq)
