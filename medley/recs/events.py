"""Behavioural events: their types, what each means for ranking, and batch validation.

Validation is per event: one bad event is refused with a reason, the rest of the batch goes on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from medley import dates, ids


class EventType(StrEnum):
    IMPRESSION = "impression"
    VIEW = "view"
    LIKE = "like"
    DISLIKE = "dislike"
    SKIP = "skip"
    COMPLETE = "complete"
    SHARE = "share"


# Implicit-feedback strength of each event. Positive weights feed popularity, taste and the
# collaborative model; negative ones push an item (and what looks like it) down for that user.
WEIGHTS: dict[EventType, float] = {
    EventType.IMPRESSION: 0.0,
    EventType.VIEW: 1.0,
    EventType.LIKE: 3.0,
    EventType.DISLIKE: -3.0,
    EventType.SKIP: -1.0,
    EventType.COMPLETE: 2.0,
    EventType.SHARE: 3.0,
}
# Seeing an item through is consumption: it is not recommended to that user again.
CONSUMED = frozenset({EventType.VIEW, EventType.LIKE, EventType.DISLIKE, EventType.COMPLETE,
                      EventType.SHARE})


def weight(kind: EventType, value: float | None) -> float:
    """A view counts more the longer it was watched (value = seconds or percent watched)."""
    base = WEIGHTS[kind]
    if kind is EventType.VIEW and value is not None and value > 0:
        return base * (1.0 + min(math.log1p(value) / math.log1p(100.0), 1.0))
    return base


class Context(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device: str | None = Field(None, max_length=64)
    surface: str | None = Field(None, max_length=64)
    locale: str | None = Field(None, max_length=35)


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_id: ids.EventId
    user_id: ids.UserId
    item_id: ids.ItemId
    type: EventType
    value: float | None = Field(None, ge=0, le=1e7, allow_inf_nan=False)
    timestamp: Annotated[datetime, AfterValidator(dates.in_range)]
    context: Context | None = None
    recommendation_id: str | None = Field(None, max_length=64)
    # The app's session, where it has one: session metrics (experiments) then need no guess.
    session_id: ids.EventId | None = None


@dataclass(frozen=True)
class Event:
    """A validated event, as stored and as folded into behaviour state."""

    event_id: str
    user_id: str
    item_id: str
    type: EventType
    value: float | None
    ts: float  # seconds since the epoch, UTC
    context: dict[str, str] = field(default_factory=dict)
    recommendation_id: str | None = None
    session_id: str | None = None

    @property
    def weight(self) -> float:
        return weight(self.type, self.value)


@dataclass(frozen=True)
class Rejected:
    index: int
    event_id: str | None
    reason: str


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "event"
    return f"{where}: {first['msg']}"


def validate_batch(
    raw: list[Any], *, known_items: set[str], now: float, max_future_skew_s: float
) -> tuple[list[Event], list[Rejected], list[str]]:
    """Split a batch into valid events, refusals with a reason each, and the event ids of
    valid events repeated inside the batch (reported as duplicates).

    `known_items` holds the ids of the batch's items that exist; a repeated event_id inside the
    batch keeps its first occurrence (the idempotency key means "the same event").
    """
    accepted: list[Event] = []
    rejected: list[Rejected] = []
    seen: set[str] = set()
    repeated: list[str] = []
    for i, row in enumerate(raw):
        event_id = row.get("event_id") if isinstance(row, dict) else None
        eid = event_id if isinstance(event_id, str) else None
        if not isinstance(row, dict):
            rejected.append(Rejected(i, None, "an event must be a JSON object"))
            continue
        try:
            ev = EventIn.model_validate(row)
        except ValidationError as exc:
            rejected.append(Rejected(i, eid, _reason(exc)))
            continue
        when = ev.timestamp.timestamp()
        if when > now + max_future_skew_s:
            rejected.append(Rejected(i, eid, "timestamp: is in the future"))
            continue
        if when < 0:
            rejected.append(Rejected(i, eid, "timestamp: is before 1970"))
            continue
        if ev.item_id not in known_items:
            rejected.append(Rejected(i, eid, f"item_id: item {ev.item_id} does not exist"))
            continue
        if ev.event_id in seen:
            repeated.append(ev.event_id)
            continue
        seen.add(ev.event_id)
        ctx = {k: v for k, v in ev.context.model_dump().items() if v} if ev.context else {}
        accepted.append(Event(ev.event_id, ev.user_id, ev.item_id, ev.type, ev.value, when, ctx,
                              ev.recommendation_id, ev.session_id))
    return accepted, rejected, repeated
