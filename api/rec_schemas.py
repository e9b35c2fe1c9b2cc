"""Request and response shapes of the recommendation routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medley import ids
from medley.recs.answers import Answer, Editorial, Preferences
from medley.recs.items import ItemTable


class EventBatch(BaseModel):
    events: list[Any] = Field(description="up to 1,000 events; each is validated on its own")


class RejectedOut(BaseModel):
    index: int
    event_id: str | None
    reason: str


class EventsOut(BaseModel):
    accepted: int = Field(description="events stored now")
    duplicates: list[str] = Field(description="event ids stored before (idempotent replays)")
    rejected: list[RejectedOut]
    paused: int = Field(0, description="valid events of users who paused their history: "
                                       "neither stored nor used")
    repeated: list[str] = Field(default_factory=list, description=
        "event ids sent more than once in this batch: the first is counted (accepted or a "
        "duplicate), the others are dropped; accepted + duplicates cover each distinct id once")


class ScoredOut(BaseModel):
    item_id: str
    title: str | None
    score: float
    reasons: list[str]


class AnswerOut(BaseModel):
    recommendation_id: str
    items: list[ScoredOut]
    fallback: bool = Field(description="true: popularity answered because the index or a "
                                       "model could not")
    note: str | None = None
    experiment: int | None = Field(None, description="the experiment that served this answer")
    arm: str | None = Field(None, description="its arm (absent when interleaved)")


def answer_out(answer: Answer, table: ItemTable) -> AnswerOut:
    items = []
    for s in answer.items:
        info = table.get(s.item_id)
        items.append(ScoredOut(item_id=s.item_id, title=info.title if info else None,
                               score=round(s.score, 6), reasons=s.reasons))
    return AnswerOut(recommendation_id=answer.recommendation_id, items=items,
                     fallback=answer.fallback, note=answer.note,
                     experiment=answer.experiment, arm=answer.arm)


class PreferencesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    liked_items: list[ids.ItemId] = Field(default_factory=list, max_length=100)
    text: str | None = Field(None, max_length=500,
                             examples=["light comedies under 30 minutes"])
    disliked_tags: list[str] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _short_values(self) -> PreferencesIn:
        if any(len(t) > 128 for t in self.liked_items + self.disliked_tags):
            raise ValueError("item ids and tags are at most 128 characters")
        return self


class PreferencesOut(BaseModel):
    user_id: str
    liked_items: list[str]
    text: str | None
    disliked_tags: list[str]

    @classmethod
    def of(cls, user_id: str, prefs: Preferences | None) -> PreferencesOut:
        p = prefs or Preferences()
        return cls(user_id=user_id, liked_items=list(p.liked_items), text=p.text,
                   disliked_tags=sorted(p.disliked_tags))


class PinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: str = Field(min_length=1, max_length=64)
    position: int = Field(ge=0, le=99, description="0-based slot in for-you answers")


class BoostIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # An empty tag or id names nothing (and an empty tag once broke loading the editorial).
    item_id: str | None = Field(None, min_length=1, max_length=64)
    tag: str | None = Field(None, min_length=1, max_length=128)
    factor: float = Field(gt=0, le=10, description=">1 lifts, <1 lowers")

    @model_validator(mode="after")
    def _one_target(self) -> BoostIn:
        if (self.item_id is None) == (self.tag is None):
            raise ValueError("a boost names exactly one of item_id or tag")
        return self


class EditorialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pins: list[PinIn] = Field(default_factory=list, max_length=100)
    boosts: list[BoostIn] = Field(default_factory=list, max_length=1000)

    @classmethod
    def of(cls, ed: Editorial) -> EditorialIn:
        boosts = [BoostIn(item_id=None, tag=k[4:], factor=f) if k.startswith("tag:")
                  else BoostIn(item_id=k, tag=None, factor=f) for k, f in ed.boosts.items()]
        return cls(pins=[PinIn(item_id=i, position=p) for i, p in ed.pins], boosts=boosts)
