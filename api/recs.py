"""Routes for client apps: events, similar, for-you, new items, search, preferences; and the
editorial pins and boosts. Handlers are plain `def`: FastAPI runs them on its thread pool, so
ranking and query embedding never block the event loop."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from api.auth import allow
from api.deps import ExperimentsDep, RecsDep, SettingsDep
from api.params import ItemIdPath, UserIdPath
from api.rec_schemas import (
    AnswerOut,
    EditorialIn,
    EventBatch,
    EventsOut,
    PreferencesIn,
    PreferencesOut,
    RejectedOut,
    answer_out,
)
from index.base import Where
from medley import dates
from medley.domain import RATING_WORDS, age_min
from medley.errors import InvalidInput
from medley.keys import Role

router = APIRouter(prefix="/v1", tags=["recommendations"])
CLIENT = [allow(Role.CLIENT)]


def _split(values: list[str]) -> frozenset[str]:
    return frozenset(v.strip() for raw in values for v in raw.split(",") if v.strip())


AGE = re.compile(r"[0-9]{1,2}\+?")


# `async def`: a cheap check run on the event loop, not handed to the thread pool (api/deps).
async def filters(
    max_age_rating: Annotated[str | None, Query(max_length=16, description=
        "age-rating ceiling: a number (12, 16+) or a rating (G, PG, PG-13, R, NC-17, TV-MA)")
    ] = None,
    include_tags: Annotated[list[str], Query(description="any of these tags")] = [],  # noqa: B006
    exclude_tags: Annotated[list[str], Query(description="none of these tags")] = [],  # noqa: B006
    published_after: datetime | None = None,
    published_before: datetime | None = None,
    exclude_ids: Annotated[list[str], Query()] = [],  # noqa: B006
) -> Where:
    ceiling = None
    if max_age_rating is not None:
        # Strictly an age (0-99, "16+") or a known rating word: "1e400" or "-5" are not
        # ceilings, and reading their digits (1400, 5) would filter by something nobody asked.
        word = max_age_rating.strip()
        if not (AGE.fullmatch(word) or word.lower() in RATING_WORDS):
            raise InvalidInput(f"max_age_rating: {max_age_rating[:32]!r} is not an age rating "
                               "(an age 0-99, optionally with '+', or a rating such as PG-13)")
        ceiling = age_min(word)
    if published_after is not None:
        published_after = dates.checked(published_after, "published_after")
    if published_before is not None:
        published_before = dates.checked(published_before, "published_before")
    if published_after and published_before and published_after > published_before:
        raise InvalidInput("published_after is later than published_before")
    return Where(
        max_age=ceiling,
        include_tags=_split(include_tags),
        exclude_tags=_split(exclude_tags),
        published_from=published_after.timestamp() if published_after else None,
        published_to=published_before.timestamp() if published_before else None,
        exclude_ids=_split(exclude_ids),
    )


Filters = Annotated[Where, Depends(filters)]
async def answer_limit(
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, description="how many items to return "
                                "(at most MEDLEY_MAX_RESULTS)")] = 10,
) -> int:
    cap = settings.max_results
    if limit > cap:
        raise InvalidInput(f"limit: at most {cap}")
    return limit


Limit = Annotated[int, Depends(answer_limit)]
# A behaviour filter: "has not found its audience yet". 0 = nobody engaged with it yet.
MaxAudience = Annotated[int | None, Query(ge=0, le=1_000_000_000, description=
    "only items at most this many distinct users engaged with (a positive event: view, like, "
    "complete, share); 0 = items nobody has engaged with yet")]


def _context(device: str | None, surface: str | None, locale: str | None) -> dict[str, str]:
    return {k: v for k, v in (("device", device), ("surface", surface), ("locale", locale)) if v}


@router.post("/events", response_model=EventsOut, dependencies=CLIENT)
def post_events(recs: RecsDep, batch: EventBatch) -> Any:
    accepted, duplicates, rejected, paused, repeated = recs.ingest(batch.events)
    body = EventsOut(accepted=accepted, duplicates=duplicates,
                     rejected=[RejectedOut(index=r.index, event_id=r.event_id, reason=r.reason)
                               for r in rejected], paused=paused, repeated=repeated)
    if accepted == 0 and not duplicates and not paused and rejected:
        raise InvalidInput(f"no event was accepted; first problem: event {rejected[0].index}: "
                           f"{rejected[0].reason}")
    return body


@router.get("/items/{item_id}/similar", response_model=AnswerOut, dependencies=CLIENT)
def similar(recs: RecsDep, exps: ExperimentsDep, item_id: ItemIdPath, where: Filters,
            limit: Limit, user_id: Annotated[str | None, Query(max_length=128, description=
                "who asks: an experiment on this surface serves the user's arm")] = None,
            ) -> AnswerOut:
    return answer_out(exps.similar(item_id, limit, where, user_id), recs.table)


@router.get("/users/{user_id}/recommendations", response_model=AnswerOut, dependencies=CLIENT)
def recommendations(
    recs: RecsDep, exps: ExperimentsDep, user_id: UserIdPath, where: Filters, limit: Limit,
    device: Annotated[str | None, Query(max_length=64)] = None,
    surface: Annotated[str | None, Query(max_length=64)] = None,
    locale: Annotated[str | None, Query(max_length=35)] = None,
    max_audience: MaxAudience = None,
) -> AnswerOut:
    answer = exps.for_user(user_id, limit, where, _context(device, surface, locale),
                           max_audience=max_audience)
    return answer_out(answer, recs.table)


@router.get("/users/{user_id}/new-items", response_model=AnswerOut, dependencies=CLIENT,
            description=
    "Items that are new, ranked for the user. New: published (`published_at`, else the time "
    "the item entered the catalog) within MEDLEY_NEW_ITEM_MAX_AGE_DAYS (14) and not in the "
    "future, and not yet found by its audience: by default at most "
    "MEDLEY_NEW_ITEM_MAX_AUDIENCE (20) distinct users engaged with it, so a back catalog "
    "imported with its history does not crowd out what nobody has seen. `max_audience` sets "
    "another cap for this request (0: only items nobody has engaged with yet).")
def new_items(recs: RecsDep, exps: ExperimentsDep, user_id: UserIdPath, where: Filters,
              limit: Limit, max_audience: MaxAudience = None) -> AnswerOut:
    answer = exps.for_user(user_id, limit, where, {}, only_new=True, max_audience=max_audience)
    return answer_out(answer, recs.table)


@router.get("/search", response_model=AnswerOut, dependencies=CLIENT)
def search(
    recs: RecsDep, where: Filters,
    q: Annotated[str, Query(min_length=1, max_length=500, description="what to look for")],
    limit: Limit,
    user_id: Annotated[str | None, Query(max_length=128)] = None,
) -> AnswerOut:
    return answer_out(recs.search(q, limit, where, user_id), recs.table)


@router.put("/users/{user_id}/preferences", response_model=PreferencesOut, dependencies=CLIENT)
def put_preferences(recs: RecsDep, user_id: UserIdPath, body: PreferencesIn) -> PreferencesOut:
    prefs = recs.put_preferences(user_id, body.liked_items, body.text, body.disliked_tags)
    return PreferencesOut.of(user_id, prefs)


@router.get("/users/{user_id}/preferences", response_model=PreferencesOut, dependencies=CLIENT)
def get_preferences(recs: RecsDep, user_id: UserIdPath) -> PreferencesOut:
    prefs = recs.preferences(user_id)
    return PreferencesOut.of(user_id, prefs)


@router.put("/editorial", response_model=EditorialIn, tags=["editorial"],
            dependencies=[allow(Role.EDITOR)])
def put_editorial(recs: RecsDep, body: EditorialIn) -> EditorialIn:
    recs.put_editorial([p.model_dump() for p in body.pins],
                       [b.model_dump(exclude_none=True) for b in body.boosts])
    return body


@router.get("/editorial", response_model=EditorialIn, tags=["editorial"],
            dependencies=[allow(Role.EDITOR)])
def get_editorial(recs: RecsDep) -> EditorialIn:
    ed = recs.rec.editorial
    return EditorialIn.of(ed)
