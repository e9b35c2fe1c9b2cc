"""Fusion profiles as the database keeps them: immutable versions, publishing them (re-fusion
jobs, the switch) and the audit log. The serving state they change (which profile each fused
slot of the index holds, which slot serves) is `medley.fusion_state`.

Every rule an editor can run into (a job already running, rolling back to something never
published) is raised here as a domain error; the API maps it to HTTP.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from index.base import FUSED_SLOTS
from medley.db.models import FusionAudit, FusionJob, FusionProfile, FusionState, Item, utcnow
from medley.domain import Modality
from medley.errors import Conflict, NotFound
from medley.fusion_state import Action, audit, plain, state

SURFACES = ("similar", "recommendations", "search")


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


OPEN = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


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
        name=name, version=(latest.version + 1) if latest else 1, weights=plain(weights),
        surfaces={k: plain(v) for k, v in surfaces.items()}, note=note, created_by=actor)
    s.add(profile)
    s.flush()
    before = latest.weights if latest else None
    audit(s, actor, Action.CREATE, profile.id, weights=profile.weights,
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
    audit(s, actor, action, profile.id, job=job.id, weights=profile.weights,
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
    audit(s, job.actor, Action.SWITCH, job.profile_id, job=job.id, slot=job.slot,
           items=job.done)


def fail(s: Session, job: FusionJob, error: str) -> None:
    job.status = JobStatus.FAILED.value
    job.error = error
    job.finished_at = utcnow()
    audit(s, job.actor, Action.FAIL, job.profile_id, job=job.id, error=error)


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
