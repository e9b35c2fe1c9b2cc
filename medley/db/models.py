"""Tables for item records. Vectors live here too: they are the source the index is built from,
so the index can be rebuilt and re-fused without running a model again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(256), index=True)
    title: Mapped[str] = mapped_column(String(512))
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    language: Mapped[str | None] = mapped_column(String(16))
    age_rating: Mapped[str | None] = mapped_column(String(16))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), index=True)
    # False while the index lags the stored vectors; the index owner catches up on start.
    indexed: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, index=True
    )

    media: Mapped[list[Media]] = relationship(
        back_populates="item", cascade="all, delete-orphan", lazy="selectin"
    )
    modalities: Mapped[list[ModalityRecord]] = relationship(
        back_populates="item", cascade="all, delete-orphan", lazy="selectin"
    )
    transcript: Mapped[Transcript | None] = relationship(
        back_populates="item", cascade="all, delete-orphan", lazy="selectin"
    )


class Media(Base):
    __tablename__ = "media"
    __table_args__ = (UniqueConstraint("item_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(String(1024))
    mime: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str | None] = mapped_column(String(512))

    item: Mapped[Item] = relationship(back_populates="media")


class ModalityRecord(Base):
    __tablename__ = "modalities"

    item_id: Mapped[str] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    modality: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    source_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    model_name: Mapped[str | None] = mapped_column(String(128))
    model_version: Mapped[str | None] = mapped_column(String(256))
    reused_from: Mapped[str | None] = mapped_column(String(36))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dim: Mapped[int | None] = mapped_column(Integer)
    vector: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))

    item: Mapped[Item] = relationship(back_populates="modalities")


class Transcript(Base):
    __tablename__ = "transcripts"

    item_id: Mapped[str] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    language: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    segments: Mapped[list[Any]] = mapped_column(JSON, default=list)
    duration: Mapped[float] = mapped_column(Float, default=0.0)
    source_hash: Mapped[str] = mapped_column(String(64), index=True)
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(256))

    item: Mapped[Item] = relationship(back_populates="transcript")


class EventRecord(Base):
    """One behavioural event. `seq` orders arrival, so serving processes can tail new events."""

    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    item_id: Mapped[str] = mapped_column(String(64), index=True)
    type: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float)
    ts: Mapped[float] = mapped_column(Float)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    recommendation_id: Mapped[str | None] = mapped_column(String(64), index=True)
    session_id: Mapped[str | None] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UserPreferences(Base):
    """What a user told us: liked items, a free-text wish (and its embedding), disliked tags."""

    __tablename__ = "user_preferences"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    liked_items: Mapped[list[str]] = mapped_column(JSON, default=list)
    text: Mapped[str | None] = mapped_column(Text)
    text_vector: Mapped[bytes | None] = mapped_column(LargeBinary)
    disliked_tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, index=True
    )


class CollabModelRecord(Base):
    """A trained collaborative model; serving processes load the newest one."""

    __tablename__ = "collab_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trained_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seq: Mapped[int] = mapped_column(Integer)  # the newest event it has seen
    n_events: Mapped[int] = mapped_column(Integer)
    blob: Mapped[bytes] = deferred(mapped_column(LargeBinary))


class Editorial(Base):
    """Editorial pins and boosts (one row)."""

    __tablename__ = "editorial"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pins: Mapped[list[Any]] = mapped_column(JSON, default=list)
    boosts: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class FusionProfile(Base):
    """One version of a named set of fusion weights. Rows are never changed: an edit is a new
    version, so the audit log and rollbacks can always point at exactly what was live."""

    __tablename__ = "fusion_profiles"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(80))
    version: Mapped[int] = mapped_column(Integer)
    weights: Mapped[dict[str, float]] = mapped_column(JSON)
    surfaces: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class FusionState(Base):
    """Which profile serves (one row), and which profile each of the index's two fused slots
    holds. The standby slot keeps the previous profile, so rolling back to it is instant."""

    __tablename__ = "fusion_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    active_slot: Mapped[str] = mapped_column(String(32))
    slots: Mapped[dict[str, Any]] = mapped_column(JSON)  # slot -> {"profile": id, "complete": bool}
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FusionJob(Base):
    """A re-fusion of every item into the standby slot, then the switch."""

    __tablename__ = "fusion_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("fusion_profiles.id"))
    action: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    slot: Mapped[str] = mapped_column(String(32))
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    cursor: Mapped[str | None] = mapped_column(String(36))  # last item id written: resumable
    error: Mapped[str | None] = mapped_column(Text)
    # Items whose vectors could not be written (the index refused that one point): {"count":
    # n, "examples": [{"item_id", "why"}, ...]}; the job goes on without them.
    set_aside: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Evaluation(Base):
    """An offline evaluation running as a background job (medley/editor/jobs.py): the views
    it compares, how far it got, and its result; any serving process can report it."""

    __tablename__ = "evaluations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64))  # "profile:3", "draft", "experiment:2"
    views: Mapped[dict[str, Any]] = mapped_column(JSON)  # name -> {"weights", "surfaces"}
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat: Mapped[float | None] = mapped_column(Float)  # last sign of life while running
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class FusionAudit(Base):
    """Who changed what in fusion, and when."""

    __tablename__ = "fusion_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(16))
    profile_id: Mapped[int] = mapped_column(ForeignKey("fusion_profiles.id"))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ApiKey(Base):
    """An API key: only its SHA-256 is kept, so a leaked database leaks no usable key."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(16))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UserControls(Base):
    """A user's own controls: "not interested" items and tags, and whether their history is
    paused. Kept apart from stated preferences: a reset drops taste but keeps both."""

    __tablename__ = "user_controls"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    not_interested_items: Mapped[list[str]] = mapped_column(JSON, default=list)
    not_interested_tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, index=True
    )


class Erasure(Base):
    """A receipt for an erasure or a history reset, and the notice serving processes poll to
    drop what they derived from the deleted events. It never holds the user id: only, for
    `Settings.erasure_notice_s`, a SHA-256 of it, so live processes can drop that user at once."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    receipt_id: Mapped[str] = mapped_column(String(36), unique=True)
    kind: Mapped[str] = mapped_column(String(8))  # "erase" or "reset"
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    user_hash: Mapped[str | None] = mapped_column(String(64))
    # The newest collaborative model trained on the deleted events: it must be retrained.
    model_id: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class AnalyticsBudget(Base):
    """Differential-privacy budget spent by one API key in one window (epoch-second start)."""

    __tablename__ = "analytics_budget"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[float] = mapped_column(Float, primary_key=True)
    spent: Mapped[float] = mapped_column(Float, default=0.0)


class Experiment(Base):
    """An experiment on live traffic (medley/experiments): its arms, split, ramp, guardrails
    and where it stands. Assignment needs no table: it is a hash of the user id and `salt`."""

    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(80))
    mode: Mapped[str] = mapped_column(String(16))  # ab | interleave
    status: Mapped[str] = mapped_column(String(16), index=True)
    surfaces: Mapped[list[str]] = mapped_column(JSON)
    arms: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    holdout: Mapped[float] = mapped_column(Float, default=0.0)
    ramp: Mapped[list[float]] = mapped_column(JSON)
    ramp_step: Mapped[int] = mapped_column(Integer, default=0)
    ramp_every_s: Mapped[float] = mapped_column(Float)
    guardrails: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    salt: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    winner: Mapped[str | None] = mapped_column(String(40))
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[float | None] = mapped_column(Float)
    stepped_at: Mapped[float | None] = mapped_column(Float)  # when the ramp last advanced
    ended_at: Mapped[float | None] = mapped_column(Float)


class ExperimentAudit(Base):
    """Who changed an experiment, and what a guardrail did on its own."""

    __tablename__ = "experiment_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"), index=True)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(24))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Exposure(Base):
    """One answer served inside an experiment: what it showed, in order (`items`, packed by
    medley/experiments/packing.py), and for interleaving each slot's team."""

    __tablename__ = "exposures"

    recommendation_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(Integer, index=True)
    arm: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    surface: Mapped[str] = mapped_column(String(24))
    ts: Mapped[float] = mapped_column(Float)
    items: Mapped[bytes] = mapped_column(LargeBinary)
    teams: Mapped[str | None] = mapped_column(String(256))  # "ABBA...": one letter per slot
    ms: Mapped[float] = mapped_column(Float)  # time to compute the answer
