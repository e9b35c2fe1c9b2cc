"""Request and response shapes of the privacy routes: users' controls, erasure receipts and
differentially private analytics."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from medley.controls import Controls
from medley.privacy.analytics import ItemCounts
from medley.privacy.users import Receipt


class NotInterestedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: str | None = Field(None, min_length=1, max_length=64)
    tag: str | None = Field(None, min_length=1, max_length=128)

    @model_validator(mode="after")
    def _one(self) -> NotInterestedIn:
        if (self.item_id is None) == (self.tag is None):
            raise ValueError("name exactly one of item_id or tag")
        return self


class HistoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    paused: StrictBool = Field(description="true: this user's events are neither stored nor "
                                           "used until they resume")


class NotInterestedOut(BaseModel):
    items: list[str]
    tags: list[str]


class ControlsOut(BaseModel):
    user_id: str
    history_paused: bool
    not_interested: NotInterestedOut

    @classmethod
    def of(cls, user_id: str, c: Controls) -> ControlsOut:
        return cls(user_id=user_id, history_paused=c.paused,
                   not_interested=NotInterestedOut(items=list(c.items), tags=list(c.tags)))


class ReceiptOut(BaseModel):
    receipt_id: str
    kind: str = Field(description="erase: everything about the user; reset: their history "
                                  "and what was learnt from it")
    user_id: str
    erased_at: datetime
    erased: dict[str, int | bool] = Field(description="what went, with counts")
    retrain_scheduled: bool = Field(description="a collaborative model had learnt from the "
                                                "user: it is being retrained without them")
    note: str

    @classmethod
    def of(cls, r: Receipt) -> ReceiptOut:
        if r.kind == "erase":
            note = ("Every stored record of this user is deleted; the receipt keeps no trace "
                    "of the user id. Serving processes drop derived state within seconds.")
        else:
            note = ("This user's history and what was learnt from it are deleted; stated "
                    "preferences and controls stay. Recommendations start afresh.")
        return cls(receipt_id=r.receipt_id, kind=r.kind.value, user_id=r.user_id,
                   erased_at=r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC),
                   erased=r.erased, retrain_scheduled=r.retrain_scheduled, note=note)


class PrivacyOut(BaseModel):
    mechanism: str
    unit: str
    epsilon_spent: float
    epsilon_per_count: float
    noise_stddev: float
    budget_total: float
    budget_left: float
    budget_window_s: float
    budget_resets_at: datetime


class ItemAnalyticsOut(BaseModel):
    item_id: str
    users_by_event_type: dict[str, int] = Field(description="noisy distinct users per event "
                                                            "type")
    noisy: bool = True
    privacy: PrivacyOut
    note: str

    @classmethod
    def of(cls, c: ItemCounts) -> ItemAnalyticsOut:
        b = c.budget
        return cls(
            item_id=c.item_id, users_by_event_type=c.users,
            privacy=PrivacyOut(
                mechanism="discrete Laplace (two-sided geometric)",
                unit="user: each user counts at most once per event type (sensitivity 1 per "
                     "count); epsilon is split evenly over the counts",
                epsilon_spent=b.epsilon, epsilon_per_count=round(c.epsilon_per_count, 6),
                noise_stddev=round(c.noise_stddev, 3), budget_total=b.total,
                budget_left=round(b.left, 9), budget_window_s=b.window_s,
                budget_resets_at=datetime.fromtimestamp(b.resets_at, UTC)),
            note="Counts are noisy on purpose (differential privacy): each call draws fresh "
                 "noise, negative draws show as 0, and every call spends this key's budget.",
        )
