"""Response shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from medley.db.models import Item


def utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class ModalityOut(BaseModel):
    status: str
    error: str | None
    model: str | None
    model_version: str | None
    reused_from: str | None
    attempts: int
    dim: int | None
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    timings: dict[str, float]


class MediaOut(BaseModel):
    mime: str
    size: int
    sha256: str
    filename: str | None


class SegmentOut(BaseModel):
    start: float
    end: float
    text: str


class TranscriptOut(BaseModel):
    language: str
    text: str
    duration: float
    segments: list[SegmentOut]
    model: str
    model_version: str


class ItemOut(BaseModel):
    id: str
    status: str
    title: str
    description: str
    tags: list[str]
    language: str | None
    age_rating: str | None
    published_at: datetime | None
    external_id: str | None
    attributes: dict[str, Any]
    created_at: datetime | None
    updated_at: datetime | None
    indexed: bool
    modalities: dict[str, ModalityOut]
    media: dict[str, MediaOut]
    transcript: TranscriptOut | None
    timings: dict[str, float]
    set_aside: str | None = Field(None, description=
        "why the answering process does not serve this item (its stored record could not be "
        "loaded); null when it is served or not yet indexed")

    @classmethod
    def of(cls, item: Item, set_aside: str | None = None) -> ItemOut:
        mods = {
            r.modality: ModalityOut(
                status=r.status, error=r.error, model=r.model_name, model_version=r.model_version,
                reused_from=r.reused_from, attempts=r.attempts, dim=r.dim,
                queued_at=utc(r.queued_at), started_at=utc(r.started_at),
                finished_at=utc(r.finished_at), timings=r.timings or {},
            )
            for r in item.modalities
        }
        created = utc(item.created_at)
        finished = [m.finished_at for m in mods.values() if m.finished_at]
        timings: dict[str, float] = {}
        if created and finished and item.status in ("ready", "partial", "failed"):
            timings["upload_to_done_s"] = (max(finished) - created).total_seconds()
        tr = item.transcript
        return cls(
            id=item.id, status=item.status, title=item.title, description=item.description,
            # A record another writer stored with the wrong shapes still reads back.
            tags=[str(t) for t in item.tags] if isinstance(item.tags, list) else [],
            language=item.language, age_rating=item.age_rating,
            published_at=utc(item.published_at), external_id=item.external_id,
            attributes=item.attributes if isinstance(item.attributes, dict) else {},
            created_at=created,
            updated_at=utc(item.updated_at), indexed=item.indexed, modalities=mods,
            media={m.kind: MediaOut(mime=m.mime, size=m.size, sha256=m.sha256,
                                    filename=m.filename) for m in item.media},
            transcript=None if tr is None else TranscriptOut(
                language=tr.language, text=tr.text, duration=tr.duration,
                segments=[SegmentOut(**g) for g in tr.segments or []],
                model=tr.model_name, model_version=tr.model_version,
            ),
            timings=timings, set_aside=set_aside,
        )


class Accepted(BaseModel):
    id: str
    status: str
    modalities: dict[str, str]
    links: dict[str, str]


class ItemPage(BaseModel):
    items: list[ItemOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None
