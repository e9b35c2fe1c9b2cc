"""Fusion profiles as the database keeps them: immutable versions, the serving state (which
profile each fused slot of the index holds, which slot serves), re-fusion jobs and the audit log.

Every rule an editor can run into (a job already running, rolling back to something never
published) is raised here as a domain error; the API maps it to HTTP.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from index.base import FUSED_SLOTS
from medley.db import Database
from medley.db.models import FusionAudit, FusionJob, FusionProfile, FusionState, Item, utcnow
from medley.domain import Modality
from medley.errors import Conflict, NotFound

Weights = dict[Modality, float]
SURFACES = ("similar", "recommendations", "search")
DEFAULT_NAME = "default"
SYSTEM = "system"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Action(StrEnum):
    CREATE = "create"
    PUBLISH = "publish"
    ROLLBACK = "rollback"
    SWITCH = "switch"  # a job finished and serving moved to its slot
    FAIL = "fail"


OPEN = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


@dataclass(frozen=True)
class Serving:
    """What serving processes need: the active profile and the slot that holds it."""

    profile: FusionProfile
    slot: str
    changed_at: float


def weights_of(raw: Mapping[str, float]) -> Weights:
    return {Modality(m): float(w) for m, w in raw.items()}


def surfaces_of(raw: Mapping[str, Mapping[str, float]]) -> dict[str, Weights]:
    return {s: weights_of(w) for s, w in raw.items()}


def _plain(weights: Mapping[Modality, float]) -> dict[str, float]:
    return {Modality(m).value: float(w) for m, w in weights.items()}


def _audit(s: Session, actor: str, action: Action, profile_id: int, **detail: Any) -> None:
    s.add(FusionAudit(actor=actor, action=action.value, profile_id=profile_id, detail=detail))


# --- state ------------------------------------------------------------------------------------
def state(s: Session, default_weights: Mapping[Modality, float], *, lock: bool = False
          ) -> FusionState:
    """The state row, made on first use: a "default" profile from the settings' weights, live
    in the first slot. The second slot is not filled yet (items fill it as they are written)."""
    q = select(FusionState).where(FusionState.id == 1)
    row = s.scalars(q.with_for_update() if lock else q).first()
    if row is not None:
        return row
    profile = FusionProfile(name=DEFAULT_NAME, version=1, weights=_plain(default_weights),
                            surfaces={}, created_by=SYSTEM, published_at=utcnow(),
                            note="the weights in the settings")
    s.add(profile)
    s.flush()
    _audit(s, SYSTEM, Action.SWITCH, profile.id, slot=FUSED_SLOTS[0], weights=profile.weights)
    row = FusionState(id=1, active_slot=FUSED_SLOTS[0], slots={
        FUSED_SLOTS[0]: {"profile": profile.id, "complete": True},
        FUSED_SLOTS[1]: {"profile": profile.id, "complete": False},
    })
    s.add(row)
    s.flush()
    return row


def ensure(db: Database, default_weights: Mapping[Modality, float]) -> None:
    """Make the state row at start-up (two processes starting at once: one wins)."""
    try:
        with db.session() as s:
            state(s, default_weights)
    except IntegrityError:
        pass


def serving(s: Session, default_weights: Mapping[Modality, float]) -> Serving:
    st = state(s, default_weights)
    profile = s.get(FusionProfile, st.slots[st.active_slot]["profile"])
    assert profile is not None
    return Serving(profile, st.active_slot, st.changed_at.timestamp())


def slot_weights(s: Session, default_weights: Mapping[Modality, float]) -> dict[str, Weights]:
    """The weights each fused slot is written with (both, on every index write)."""
    st = state(s, default_weights)
    ids = {slot: info["profile"] for slot, info in st.slots.items()}
    rows = {p.id: p for p in s.scalars(select(FusionProfile).where(
        FusionProfile.id.in_(set(ids.values()))))}
    return {slot: weights_of(rows[pid].weights) for slot, pid in ids.items()}


# --- profiles ---------------------------------------------------------------------------------
def get(s: Session, profile_id: int) -> FusionProfile:
    # Ids are 64-bit integers: a larger number names no profile (and SQLite cannot bind it).
    profile = s.get(FusionProfile, profile_id) if 0 < profile_id < 2**63 else None
    if profile is None:
        raise NotFound(f"no fusion profile {profile_id}")
    return profile


def listing(s: Session) -> list[FusionProfile]:
    return list(s.scalars(select(FusionProfile).order_by(FusionProfile.id.desc())))


def create(s: Session, name: str, weights: Mapping[Modality, float],
           surfaces: Mapping[str, Mapping[Modality, float]], note: str | None, actor: str
           ) -> FusionProfile:
    """A new version of the named profile (version 1 for a new name)."""
    latest = s.scalars(select(FusionProfile).where(FusionProfile.name == name)
                       .order_by(FusionProfile.version.desc()).limit(1)).first()
    profile = FusionProfile(
        name=name, version=(latest.version + 1) if latest else 1, weights=_plain(weights),
        surfaces={k: _plain(v) for k, v in surfaces.items()}, note=note, created_by=actor)
    s.add(profile)
    s.flush()
    before = latest.weights if latest else None
    _audit(s, actor, Action.CREATE, profile.id, weights=profile.weights,
           surfaces=profile.surfaces, changed=_changes(before, profile.weights))
    return profile


def _changes(before: Mapping[str, float] | None, after: Mapping[str, float]
             ) -> dict[str, list[float | None]]:
    if before is None:
        return {}
    keys = sorted(set(before) | set(after))
    return {k: [before.get(k), after.get(k)] for k in keys if before.get(k) != after.get(k)}


# --- publishing -------------------------------------------------------------------------------
def open_job(s: Session) -> FusionJob | None:
    return s.scalars(select(FusionJob).where(FusionJob.status.in_(OPEN))
                     .order_by(FusionJob.created_at.desc()).limit(1)).first()


def start(s: Session, profile_id: int, action: Action, actor: str,
          default_weights: Mapping[Modality, float]) -> FusionJob:
    """Make this profile live: a job that re-fuses every item into the standby slot, or, when
    the standby slot already holds this profile in full, an immediate switch."""
    st = state(s, default_weights, lock=True)  # one publisher at a time
    profile = get(s, profile_id)
    running = open_job(s)
    if running is not None:
        raise Conflict(f"re-fusion job {running.id} is still {running.status}; "
                       "wait for it to finish")
    if st.slots[st.active_slot]["profile"] == profile.id:
        raise Conflict(f"{profile.name} v{profile.version} is already live")
    if action is Action.ROLLBACK and profile.published_at is None:
        raise Conflict(f"{profile.name} v{profile.version} was never published; publish it")
    standby = next(slot for slot in FUSED_SLOTS if slot != st.active_slot)
    held = st.slots[standby]
    total = _indexed(s)
    job = FusionJob(id=str(uuid.uuid4()), profile_id=profile.id, action=action.value,
                    status=JobStatus.QUEUED.value, slot=standby, total=total, done=0,
                    actor=actor, created_at=utcnow())
    s.add(job)
    _audit(s, actor, action, profile.id, job=job.id, weights=profile.weights,
           previous=st.slots[st.active_slot]["profile"])
    if held["profile"] == profile.id and held["complete"]:
        job.done = total  # its vectors are on standby already: nothing to re-fuse
        job.started_at = job.created_at
        s.flush()
        switch(s, job)
    else:
        # From now on index writes fill the standby slot with the new weights.
        st.slots = {**st.slots, standby: {"profile": profile.id, "complete": False}}
        s.flush()
    return job


def _indexed(s: Session) -> int:
    return int(s.scalar(select(func.count()).select_from(Item).where(Item.indexed.is_(True)))
               or 0)


def switch(s: Session, job: FusionJob) -> None:
    """Serving moves to the job's slot (one row update: every process sees it at once)."""
    st = s.scalars(select(FusionState).where(FusionState.id == 1).with_for_update()).one()
    st.slots = {**st.slots, job.slot: {"profile": job.profile_id, "complete": True}}
    st.active_slot = job.slot
    st.changed_at = utcnow()
    profile = get(s, job.profile_id)
    if profile.published_at is None:
        profile.published_at = st.changed_at
    job.status = JobStatus.SUCCEEDED.value
    job.finished_at = st.changed_at
    _audit(s, job.actor, Action.SWITCH, job.profile_id, job=job.id, slot=job.slot,
           items=job.done)


def fail(s: Session, job: FusionJob, error: str) -> None:
    job.status = JobStatus.FAILED.value
    job.error = error
    job.finished_at = utcnow()
    _audit(s, job.actor, Action.FAIL, job.profile_id, job=job.id, error=error)


def job(s: Session, job_id: str) -> FusionJob:
    found = s.get(FusionJob, job_id)
    if found is None:
        raise NotFound(f"no fusion job {job_id}")
    return found


def history(s: Session, limit: int) -> list[tuple[FusionAudit, FusionProfile]]:
    q = (select(FusionAudit, FusionProfile)
         .join(FusionProfile, FusionProfile.id == FusionAudit.profile_id)
         .order_by(FusionAudit.id.desc()).limit(limit))
    return [(a, p) for a, p in s.execute(q).all()]
