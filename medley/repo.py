"""Item-record operations on a SQLAlchemy session. No HTTP, no Celery, no models."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, undefer

from medley.db.models import Item, Media, ModalityRecord, Transcript, utcnow
from medley.domain import FINAL_STATUSES, Modality, ModalityStatus, overall_status
from medley.errors import NotFound


def get_item(s: Session, item_id: str) -> Item:
    item = s.get(Item, item_id)
    if item is None:
        raise NotFound(f"item {item_id} does not exist")
    return item


def list_items(
    s: Session, *, status: str | None, limit: int, offset: int,
    ids: Sequence[str] = (), external_ids: Sequence[str] = (),
) -> tuple[list[Item], int]:
    """A page of items, newest first; `ids` / `external_ids` narrow it to those items (a
    bulk import's progress, or what an interrupted one already sent)."""
    q = select(Item)
    count_q = select(func.count()).select_from(Item)
    for column, wanted in ((Item.status, [status] if status else []), (Item.id, ids),
                           (Item.external_id, external_ids)):
        if wanted:
            q = q.where(column.in_(list(wanted)))
            count_q = count_q.where(column.in_(list(wanted)))
    rows = s.scalars(q.order_by(Item.created_at.desc(), Item.id).limit(limit).offset(offset))
    return list(rows), int(s.scalar(count_q) or 0)


def lock_item(s: Session, item_id: str) -> None:
    """Writers of an item's state lock its row, always before any modality row: one lock order,
    no deadlocks (PostgreSQL; SQLite serialises writers by itself)."""
    s.execute(select(Item.id).where(Item.id == item_id).with_for_update())


def modality(s: Session, item_id: str, m: Modality, *, lock: bool = False) -> ModalityRecord | None:
    if lock:
        lock_item(s, item_id)
    q = select(ModalityRecord).where(
        ModalityRecord.item_id == item_id, ModalityRecord.modality == m.value
    )
    return s.scalars(q).first()


def refresh_status(s: Session, item: Item) -> None:
    # With the item row locked, status computations of one item run one at a time and the last
    # sees every modality's committed state (READ COMMITTED). On SQLite the flush below takes
    # the single write lock before the read.
    lock_item(s, item.id)
    s.flush()
    s.refresh(item, ["modalities"])
    item.status = overall_status([ModalityStatus(r.status) for r in item.modalities]).value


def reset_modality(rec: ModalityRecord, status: ModalityStatus, error: str | None = None) -> None:
    rec.status = status.value
    rec.error = error
    rec.attempts = 0
    rec.vector = None
    rec.dim = None
    rec.reused_from = None
    rec.started_at = None
    rec.finished_at = None
    rec.timings = {}
    rec.queued_at = utcnow()
    if status in FINAL_STATUSES:
        rec.finished_at = utcnow()


def start(s: Session, rec: ModalityRecord) -> None:
    rec.status = ModalityStatus.PROCESSING.value
    rec.attempts += 1
    rec.started_at = utcnow()
    refresh_status(s, rec.item)


@dataclass(frozen=True)
class Outcome:
    status: ModalityStatus
    error: str | None = None
    vector: np.ndarray | None = None
    source_hash: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    reused_from: str | None = None
    timings: dict[str, float] | None = None


def finish(s: Session, rec: ModalityRecord, out: Outcome) -> None:
    rec.status = out.status.value
    rec.error = out.error
    rec.finished_at = utcnow()
    rec.source_hash = out.source_hash or rec.source_hash
    rec.model_name = out.model_name
    rec.model_version = out.model_version
    rec.reused_from = out.reused_from
    rec.timings = dict(out.timings or {})
    if out.vector is not None:
        vec = np.asarray(out.vector, dtype=np.float32)
        rec.vector = vec.tobytes()
        rec.dim = int(vec.shape[0])
    else:
        rec.vector = None
        rec.dim = None
    rec.item.indexed = False
    refresh_status(s, rec.item)


def find_reusable(
    s: Session, m: Modality, source_hash: str, model_key: str
) -> ModalityRecord | None:
    """A finished vector for the same input and the same model, from any item."""
    q = (
        select(ModalityRecord)
        .options(undefer(ModalityRecord.vector))
        .where(
            ModalityRecord.modality == m.value,
            ModalityRecord.source_hash == source_hash,
            ModalityRecord.status == ModalityStatus.READY.value,
            ModalityRecord.vector.is_not(None),
            ModalityRecord.model_name == model_key,
        )
    )
    return s.scalars(q.limit(1)).first()


def find_transcript(s: Session, source_hash: str) -> Transcript | None:
    q = select(Transcript).where(Transcript.source_hash == source_hash)
    return s.scalars(q.limit(1)).first()


def save_transcript(s: Session, item: Item, **fields: Any) -> None:
    if item.transcript is None:
        item.transcript = Transcript(item_id=item.id, **fields)
    else:
        for k, v in fields.items():
            setattr(item.transcript, k, v)


def vectors_of_items(s: Session, ids: list[str]) -> dict[str, dict[Modality, np.ndarray]]:
    """Ready modality vectors of many items in one query: item -> modality -> vector."""
    out: dict[str, dict[Modality, np.ndarray]] = {}
    # Only the item ids in SQL: with a status condition there SQLite plans on the status index
    # and reads every ready row of the catalog for each batch (minutes at 100k items).
    q = select(ModalityRecord.item_id, ModalityRecord.modality, ModalityRecord.status,
               ModalityRecord.vector).where(ModalityRecord.item_id.in_(ids))
    for item_id, m, status, blob in s.execute(q):
        if blob is not None and status == ModalityStatus.READY.value:
            out.setdefault(item_id, {})[Modality(m)] = np.frombuffer(blob, dtype=np.float32)
    return out


def vectors(s: Session, item_id: str) -> dict[Modality, np.ndarray]:
    q = (
        select(ModalityRecord)
        .options(undefer(ModalityRecord.vector))
        .where(
            ModalityRecord.item_id == item_id,
            ModalityRecord.status == ModalityStatus.READY.value,
            ModalityRecord.vector.is_not(None),
        )
    )
    return {
        Modality(r.modality): np.frombuffer(r.vector, dtype=np.float32)
        for r in s.scalars(q)
        if r.vector is not None
    }


def pending(s: Session) -> list[tuple[str, Modality]]:
    """Extractions not finished: what a restarted embedded deployment must dispatch again."""
    q = select(ModalityRecord.item_id, ModalityRecord.modality).where(
        ModalityRecord.status.in_([ModalityStatus.QUEUED.value, ModalityStatus.PROCESSING.value])
    )
    return [(item_id, Modality(m)) for item_id, m in s.execute(q)]


def unindexed(s: Session, limit: int = 10_000) -> list[str]:
    return list(s.scalars(select(Item.id).where(Item.indexed.is_(False)).limit(limit)))


def mark_indexed(s: Session, item_id: str, as_of: datetime) -> None:
    """Set the flag only if nothing changed since the index write began. `updated_at` moves
    with it: the serving sync polls by it, and an item's neighbour lists can only be searched
    once the index holds it (`medley.recs.neighbours`)."""
    s.execute(
        update(Item)
        .where(Item.id == item_id, Item.updated_at <= as_of)
        .values(indexed=True, updated_at=utcnow())
        # Compare in SQL only: SQLite hands back naive datetimes that Python cannot compare.
        .execution_options(synchronize_session=False)
    )


def expire_stale(s: Session, limit_s: float) -> list[str]:
    """Fail extractions stuck in `processing` past the time limit; return their item ids."""
    cutoff = utcnow() - timedelta(seconds=limit_s)
    stale = list(
        s.scalars(
            select(ModalityRecord).where(
                ModalityRecord.status == ModalityStatus.PROCESSING.value,
                ModalityRecord.started_at < cutoff,
            )
        )
    )
    for rec in stale:
        finish(
            s,
            rec,
            Outcome(
                ModalityStatus.FAILED,
                error=f"extraction did not finish within the {limit_s:.0f} s time limit",
            ),
        )
    return sorted({r.item_id for r in stale})


def queued_before(
    s: Session, modalities: Iterable[Modality], before: datetime, limit: int = 1000
) -> list[tuple[str, Modality]]:
    """Extractions queued since before `before` and not started, oldest first."""
    q = select(ModalityRecord.item_id, ModalityRecord.modality).where(
        ModalityRecord.status == ModalityStatus.QUEUED.value,
        ModalityRecord.modality.in_([m.value for m in modalities]),
        ModalityRecord.queued_at < before,
    ).order_by(ModalityRecord.queued_at).limit(limit)
    return [(item_id, Modality(m)) for item_id, m in s.execute(q)]


@dataclass
class Progress:
    """Extraction work of some modalities: how much waits, since when, how much moves."""

    queued: int = 0
    oldest_queued_at: datetime | None = None
    started: int = 0  # started since the window opened
    finished: int = 0  # finished since the window opened


def progress(s: Session, modalities: Iterable[Modality], since: datetime) -> Progress:
    """Queued extractions of these modalities, and those started or finished since `since`
    (indexed columns: cheap at any catalog size)."""
    mods = [m.value for m in modalities]
    out = Progress()
    queued = select(func.count(), func.min(ModalityRecord.queued_at)).where(
        ModalityRecord.status == ModalityStatus.QUEUED.value, ModalityRecord.modality.in_(mods))
    out.queued, out.oldest_queued_at = s.execute(queued).one()
    for column, attr in ((ModalityRecord.started_at, "started"),
                         (ModalityRecord.finished_at, "finished")):
        n = s.scalar(select(func.count()).where(column > since,
                                                ModalityRecord.modality.in_(mods)))
        setattr(out, attr, int(n or 0))
    return out


def mark_requeued(s: Session, item_id: str, m: Modality) -> None:
    """Restart a re-sent extraction's wait, so it is re-sent once per wait, not every sweep."""
    s.execute(update(ModalityRecord).where(
        ModalityRecord.item_id == item_id, ModalityRecord.modality == m.value,
        ModalityRecord.status == ModalityStatus.QUEUED.value,
    ).values(queued_at=utcnow()).execution_options(synchronize_session=False))


def unindexed_settled(s: Session, before: datetime, limit: int = 1000) -> list[str]:
    """Items the index lags since before `before` though no extraction of theirs is pending and
    one has a vector: their index write was lost (or gave up while the index was away)."""
    mods = ModalityRecord.item_id == Item.id
    pending = select(ModalityRecord.item_id).where(mods, ModalityRecord.status.in_(
        [ModalityStatus.QUEUED.value, ModalityStatus.PROCESSING.value])).exists()
    ready = select(ModalityRecord.item_id).where(
        mods, ModalityRecord.status == ModalityStatus.READY.value).exists()
    q = select(Item.id).where(Item.indexed.is_(False), Item.updated_at < before, ~pending, ready)
    return list(s.scalars(q.order_by(Item.updated_at).limit(limit)))


def media_still_used(s: Session, paths: Iterable[str]) -> set[str]:
    paths = list(paths)
    if not paths:
        return set()
    return set(s.scalars(select(Media.path).where(Media.path.in_(paths))))
