"""Request and response bodies of the fusion editor API."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas import utc
from medley.db.models import Evaluation, FusionAudit, FusionJob, FusionProfile
from medley.domain import Modality
from medley.editor.preview import Comparison, Row
from medley.editor.profiles import SURFACES
from medley.fusion_state import Serving
from medley.recs.items import ItemTable

Weights = dict[Modality, float]
MAX_WEIGHT = 100.0


def _weights_ok(value: Weights) -> Weights:
    if any(not 0 <= w <= MAX_WEIGHT for w in value.values()):
        raise ValueError(f"each weight is between 0 and {MAX_WEIGHT:g}")
    return value


class DraftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weights: Weights = Field(examples=[{"image": 1, "video": 1, "speech": 2, "text": 1,
                                        "clip_text": 0.5}])
    surfaces: dict[str, Weights] = Field(default_factory=dict,
                                         examples=[{"search": {"text": 1, "speech": 1}}])

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: Weights) -> Weights:
        return _weights_ok(value)

    @field_validator("surfaces")
    @classmethod
    def _surfaces(cls, value: dict[str, Weights]) -> dict[str, Weights]:
        unknown = sorted(set(value) - set(SURFACES))
        if unknown:
            raise ValueError(f"unknown surface {unknown[0]!r}; known: {', '.join(SURFACES)}")
        for w in value.values():
            _weights_ok(w)
        return value


class ProfileIn(DraftIn):
    name: str = Field(min_length=1, max_length=80, pattern=r"^[\w .\-]+$",
                      examples=["dialogue-first"])
    note: str | None = Field(None, max_length=500)


class Targets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[str] = Field(default_factory=list, max_length=10)
    users: list[str] = Field(default_factory=list, max_length=10)
    queries: list[str] = Field(default_factory=list, max_length=10)
    limit: int = Field(10, ge=1, le=20)

    @field_validator("items", "users", "queries")
    @classmethod
    def _short(cls, value: list[str]) -> list[str]:
        if any(not v.strip() or len(v) > 200 for v in value):
            raise ValueError("each entry is 1 to 200 characters")
        return value


class DraftPreviewIn(DraftIn, Targets):
    pass


class ProfileOut(BaseModel):
    id: int
    name: str
    version: int
    weights: dict[str, float]
    surfaces: dict[str, dict[str, float]]
    note: str | None
    created_at: datetime | None
    created_by: str
    active: bool
    published: bool

    @classmethod
    def of(cls, p: FusionProfile, active_id: int) -> ProfileOut:
        return cls(id=p.id, name=p.name, version=p.version, weights=p.weights,
                   surfaces=p.surfaces or {}, note=p.note, created_at=utc(p.created_at),
                   created_by=p.created_by, active=p.id == active_id,
                   published=p.published_at is not None)


class ActiveOut(BaseModel):
    profile_id: int
    name: str
    version: int
    weights: dict[str, float]
    slot: str
    since: datetime

    @classmethod
    def of(cls, live: Serving) -> ActiveOut:
        p = live.profile
        return cls(profile_id=p.id, name=p.name, version=p.version, weights=p.weights,
                   slot=live.slot, since=datetime.fromtimestamp(live.changed_at, UTC))


class JobOut(BaseModel):
    id: str
    profile_id: int
    action: str
    status: str
    total: int
    done: int
    progress: float
    error: str | None
    set_aside: dict[str, Any] | None = Field(
        None, description="items the index refused to take (written without them): count, "
                          "and the first few with why")
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, j: FusionJob) -> JobOut:
        progress = 1.0 if j.status == "succeeded" else (j.done / j.total if j.total else 0.0)
        return cls(id=j.id, profile_id=j.profile_id, action=j.action, status=j.status,
                   total=j.total, done=j.done, progress=round(min(progress, 1.0), 4),
                   error=j.error, set_aside=j.set_aside, created_at=utc(j.created_at),
                   started_at=utc(j.started_at), finished_at=utc(j.finished_at))


class OverviewOut(BaseModel):
    active: ActiveOut
    profiles: list[ProfileOut]
    job: JobOut | None


class RowOut(BaseModel):
    item_id: str
    rank: int
    title: str | None
    score: float
    thumbnail: str | None
    snippet: str | None
    contributions: dict[str, float]
    shift: int | None


class ComparisonOut(BaseModel):
    kind: str
    key: str
    title: str | None
    surface: str
    overlap_at_10: float
    before: list[RowOut]
    after: list[RowOut]


class SideOut(BaseModel):
    profile_id: int | None
    name: str | None
    version: int | None
    weights: dict[str, float]


class PreviewOut(BaseModel):
    active: SideOut
    candidate: SideOut
    results: list[ComparisonOut]


def side(p: FusionProfile | None, weights: Mapping[Modality, float]) -> SideOut:
    return SideOut(profile_id=p.id if p else None, name=p.name if p else None,
                   version=p.version if p else None,
                   weights={Modality(m).value: w for m, w in weights.items()})


def comparison_out(c: Comparison, table: ItemTable, snippets: dict[str, str],
                   thumbs: set[str]) -> ComparisonOut:
    def row(r: Row) -> RowOut:
        info = table.get(r.item_id)
        return RowOut(item_id=r.item_id, rank=r.rank, title=info.title if info else None,
                      score=round(r.score, 6),
                      thumbnail=f"/v1/items/{r.item_id}/thumbnail" if r.item_id in thumbs
                      else None,
                      snippet=snippets.get(r.item_id), contributions=r.parts, shift=r.shift)

    info = table.get(c.key) if c.kind == "item" else None
    return ComparisonOut(kind=c.kind, key=c.key, title=info.title if info else None,
                         surface=c.surface, overlap_at_10=c.overlap,
                         before=[row(r) for r in c.before], after=[row(r) for r in c.after])


class Metrics(BaseModel):
    ndcg_at_10: float | None
    recall_at_10: float | None
    new_items_recall_at_10: float | None
    coverage_at_10: float | None


class EvaluateOut(BaseModel):
    events: int
    users: int
    active: Metrics
    candidate: Metrics
    note: str | None


class EvaluationOut(BaseModel):
    """An offline evaluation job. `result` (when `succeeded`): `events`, `users`, `note`, and
    per view its metrics (`ndcg_at_10`, `recall_at_10`, `new_items_recall_at_10`,
    `coverage_at_10`): `active` and `candidate` for a profile or draft, `arm:<name>` for an
    experiment's arms."""

    id: str
    subject: str
    status: str  # queued | running | succeeded | failed
    progress: float
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: Evaluation) -> EvaluationOut:
        return cls(id=row.id, subject=row.subject, status=row.status, progress=row.progress,
                   result=row.result, error=row.error, created_at=utc(row.created_at),
                   finished_at=utc(row.finished_at))


class HistoryEntry(BaseModel):
    id: int
    at: datetime | None
    actor: str
    action: str
    profile_id: int
    name: str
    version: int
    detail: dict[str, Any]

    @classmethod
    def of(cls, a: FusionAudit, p: FusionProfile) -> HistoryEntry:
        return cls(id=a.id, at=utc(a.at), actor=a.actor, action=a.action, profile_id=p.id,
                   name=p.name, version=p.version, detail=a.detail or {})


class HistoryOut(BaseModel):
    entries: list[HistoryEntry]
