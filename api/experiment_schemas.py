"""Request and response bodies of the experiments API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.params import ROW_ID_MAX
from api.schemas import utc
from medley.db.models import Experiment, ExperimentAudit
from medley.experiments.spec import (
    LATENCY,
    METRICS,
    SURFACES,
    Arm,
    Guardrail,
    Mode,
    Spec,
    arms_of,
    guardrails_of,
)

Surface = Literal["recommendations", "new-items", "similar"]
Metric = Literal["ctr", "like_rate", "skip_rate", "completion_rate", "dwell",
                 "items_per_session", "return_1d", "return_7d", "new_share", "p95_ms"]
assert set(Metric.__args__) == {*METRICS, LATENCY}  # type: ignore[attr-defined]
assert set(Surface.__args__) == set(SURFACES)  # type: ignore[attr-defined]


class ArmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    weight: float = Field(1.0, gt=0, le=1000, description="share of enrolled users, relative")
    profile_id: int | None = Field(None, ge=1, le=ROW_ID_MAX,
                                   description="a fusion profile version; none: the live one")
    ranker: Literal["learned", "blend"] | None = Field(None, description=
        "learned: the trained ranker where the model carries one; blend: the hand-set blend")
    mmr_lambda: float | None = Field(None, ge=0, le=1)
    exploration_share: float | None = Field(None, ge=0, le=1)

    def arm(self) -> Arm:
        return Arm(**self.model_dump())


class GuardrailIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: Metric
    max_drop: float | None = Field(None, gt=0, lt=1, description=
        "stop the arm when the metric is worse than control by more than this share, "
        "with the whole always-valid interval past it")
    max_value: float | None = Field(None, gt=0, description="p95_ms: the bound in ms")

    @model_validator(mode="after")
    def _one_bound(self) -> GuardrailIn:
        if (self.max_drop is None) == (self.max_value is None):
            raise ValueError("give exactly one of max_drop (a metric) or max_value (p95_ms)")
        return self


class ExperimentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=80)
    mode: Mode = Mode.AB
    surfaces: list[Surface] = Field(default=["recommendations"], min_length=1, max_length=3)
    arms: list[ArmIn] = Field(min_length=2, max_length=6,
                              description="the first arm is control")
    holdout: float = Field(0.0, ge=0, lt=1, description="share of users kept out of every "
                           "arm (served control, reported apart)")
    ramp: list[float] = Field(default_factory=lambda: [1.0], min_length=1, max_length=10,
                              description="share of users enrolled, step by step")
    ramp_every_s: float = Field(3600.0, ge=1, le=90 * 86400)
    guardrails: list[GuardrailIn] = Field(default_factory=list, max_length=20)
    note: str | None = Field(None, max_length=2000)

    def spec(self) -> Spec:
        return Spec(self.name, tuple(a.arm() for a in self.arms), tuple(dict.fromkeys(
            self.surfaces)), self.mode, self.holdout, tuple(self.ramp), self.ramp_every_s,
            tuple(Guardrail(**g.model_dump()) for g in self.guardrails), self.note)


class ShipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    arm: str = Field(min_length=1, max_length=40)


def _when(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


class AuditOut(BaseModel):
    at: datetime
    actor: str
    action: str
    detail: dict[str, Any]

    @classmethod
    def of(cls, row: ExperimentAudit) -> AuditOut:
        return cls(at=utc(row.at) or row.at, actor=row.actor, action=row.action,
                   detail=row.detail or {})


class ExperimentOut(BaseModel):
    id: int
    name: str
    mode: str
    status: str
    surfaces: list[str]
    arms: list[dict[str, Any]]
    holdout: float
    ramp: list[float]
    ramp_share: float
    ramp_every_s: float
    guardrails: list[dict[str, Any]]
    winner: str | None
    note: str | None
    created_by: str
    started_at: datetime | None
    ended_at: datetime | None
    history: list[AuditOut] = Field(default_factory=list)

    @classmethod
    def of(cls, row: Experiment, history: list[ExperimentAudit] | None = None
           ) -> ExperimentOut:
        return cls(
            id=row.id, name=row.name, mode=row.mode, status=row.status, surfaces=row.surfaces,
            arms=[a.__dict__ for a in arms_of(row.arms)], holdout=row.holdout, ramp=row.ramp,
            ramp_share=row.ramp[row.ramp_step], ramp_every_s=row.ramp_every_s,
            guardrails=[g.__dict__ for g in guardrails_of(row.guardrails)], winner=row.winner,
            note=row.note, created_by=row.created_by, started_at=_when(row.started_at),
            ended_at=_when(row.ended_at), history=[AuditOut.of(h) for h in history or []])
