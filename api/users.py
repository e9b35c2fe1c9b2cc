"""Routes about one user's data: their own controls ("not interested", pausing history,
resetting recommendations) for client apps, and erasure for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import allow
from api.deps import PrivacyDep
from api.params import UserIdPath
from api.privacy_schemas import ControlsOut, HistoryIn, NotInterestedIn, ReceiptOut
from medley.keys import Role

router = APIRouter(prefix="/v1/users", tags=["privacy"])
CLIENT = [allow(Role.CLIENT)]


@router.get("/{user_id}/controls", response_model=ControlsOut, dependencies=CLIENT)
def get_controls(privacy: PrivacyDep, user_id: UserIdPath) -> ControlsOut:
    return ControlsOut.of(user_id, privacy.controls(user_id))


@router.post("/{user_id}/not-interested", response_model=ControlsOut, dependencies=CLIENT)
def not_interested(privacy: PrivacyDep, user_id: UserIdPath, body: NotInterestedIn) -> ControlsOut:
    """Never show this item, or items with this tag, to this user again (idempotent)."""
    return ControlsOut.of(user_id, privacy.not_interested(user_id, body.item_id,
                                                                    body.tag))


@router.delete("/{user_id}/not-interested", response_model=ControlsOut, dependencies=CLIENT)
def interested_again(
    privacy: PrivacyDep, user_id: UserIdPath,
    item_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
) -> ControlsOut:
    """Undo "not interested" for one item or tag (idempotent)."""
    return ControlsOut.of(user_id, privacy.interested_again(user_id, item_id, tag))


@router.put("/{user_id}/history", response_model=ControlsOut, dependencies=CLIENT)
def pause_history(privacy: PrivacyDep, user_id: UserIdPath, body: HistoryIn) -> ControlsOut:
    """Pause (or resume) this user's history: while paused their events are not stored."""
    return ControlsOut.of(user_id, privacy.pause_history(user_id, body.paused))


@router.post("/{user_id}/reset", response_model=ReceiptOut, dependencies=CLIENT)
def reset(privacy: PrivacyDep, user_id: UserIdPath) -> ReceiptOut:
    """Start this user's recommendations afresh: history and taste go, stated preferences and
    controls stay."""
    return ReceiptOut.of(privacy.reset(user_id))


@router.delete("/{user_id}", response_model=ReceiptOut, dependencies=[allow(Role.ADMIN)])
def erase(privacy: PrivacyDep, user_id: UserIdPath) -> ReceiptOut:
    """Erase everything about this user. An unknown (or already erased) user gets a receipt
    of zeros, not 404: erasure is idempotent, so a retried call still gets its receipt."""
    return ReceiptOut.of(privacy.erase(user_id))
