"""The fusion state as the database keeps it: which fusion profile each fused slot of the index
holds, which slot serves, and the audit log of its changes.

Serving (`medley.recs.sync`) and index writes (`workers.pipeline`) read it; the editor
(`medley.editor.profiles`) changes it, by publishing a profile or rolling back. It sits below
all of them, so serving reads what the editor published without importing the editor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from index.base import FUSED_SLOTS
from medley.db import Database
from medley.db.models import FusionAudit, FusionProfile, FusionState, utcnow
from medley.domain import Modality

Weights = dict[Modality, float]
DEFAULT_NAME = "default"
SYSTEM = "system"


class Action(StrEnum):
    """What an entry of the audit log records."""

    CREATE = "create"
    PUBLISH = "publish"
    ROLLBACK = "rollback"
    SWITCH = "switch"  # a job finished and serving moved to its slot
    FAIL = "fail"


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


def plain(weights: Mapping[Modality, float]) -> dict[str, float]:
    return {Modality(m).value: float(w) for m, w in weights.items()}


def audit(s: Session, actor: str, action: Action, profile_id: int, **detail: Any) -> None:
    s.add(FusionAudit(actor=actor, action=action.value, profile_id=profile_id, detail=detail))


# --- the state --------------------------------------------------------------------------------
def state(s: Session, default_weights: Mapping[Modality, float], *, lock: bool = False
          ) -> FusionState:
    """The state row, made on first use: a "default" profile from the settings' weights, live
    in the first slot. The second slot is not filled yet (items fill it as they are written)."""
    q = select(FusionState).where(FusionState.id == 1)
    row = s.scalars(q.with_for_update() if lock else q).first()
    if row is not None:
        return row
    profile = FusionProfile(name=DEFAULT_NAME, version=1, weights=plain(default_weights),
                            surfaces={}, created_by=SYSTEM, published_at=utcnow(),
                            note="the weights in the settings")
    s.add(profile)
    s.flush()
    audit(s, SYSTEM, Action.SWITCH, profile.id, slot=FUSED_SLOTS[0], weights=profile.weights)
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
