"""Valid cases that reach further than random ones: ids that exist, event batches that are
mostly well-formed, upload metadata that parses. Applied to half of schemathesis's valid cases
in `benchmarks.trust_fuzz`."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC
from typing import Any

from hypothesis import strategies as st

# Fields whose value names something that may exist: path parameters and JSON body keys.
ID_FIELDS = ("item_id", "user_id")
EVENT_TYPES = ("impression", "view", "like", "dislike", "skip", "complete", "share")
ID_LISTS = {"liked_items": "item_id", "items": "item_id", "exclude_ids": "item_id"}


def _plant(value: Any, known: Mapping[str, Sequence[str]], draw: Callable[[Any], Any]) -> Any:
    """`value` with some id fields replaced by ids that exist."""
    if isinstance(value, list):
        return [_plant(v, known, draw) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for k, v in value.items():
        kind = k if k in ID_FIELDS else None
        if kind and known.get(kind) and isinstance(v, str) and draw(st.booleans()):
            v = draw(st.sampled_from(known[kind]))
        elif (k in ID_LISTS and known.get(ID_LISTS[k]) and isinstance(v, list) and v
              and all(isinstance(x, str) for x in v) and draw(st.booleans())):
            v = draw(st.lists(st.sampled_from(known[ID_LISTS[k]]), min_size=1, max_size=len(v)))
        out[k] = _plant(v, known, draw)
    return out


def _events(known: Mapping[str, Sequence[str]]) -> Any:
    """Event batches that are mostly well-formed: known items, odd values and times."""
    item = st.sampled_from(known["item_id"]) if known.get("item_id") else st.text(max_size=40)
    user = st.sampled_from(known["user_id"]) if known.get("user_id") else st.text(max_size=40)
    when = st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
    event = st.fixed_dictionaries(
        {"event_id": st.text(min_size=1, max_size=80), "user_id": user | st.text(max_size=200),
         "item_id": item, "type": st.sampled_from(EVENT_TYPES) | st.text(max_size=10),
         "timestamp": when},
        optional={"value": st.none() | st.integers()
                  | st.floats(allow_nan=False, allow_infinity=False),
                  "recommendation_id": st.text(max_size=80),
                  "context": st.dictionaries(st.sampled_from(["device", "surface", "locale"]),
                                             st.text(max_size=80), max_size=3)})
    return st.lists(event, min_size=1, max_size=30)


def _metadata() -> Any:
    """An upload's metadata part as valid-looking JSON: a title and some optional fields."""
    return st.fixed_dictionaries(
        {"title": st.text(min_size=1, max_size=300)},
        optional={"description": st.text(max_size=500), "tags": st.lists(st.text(max_size=60)),
                  "language": st.text(max_size=12), "age_rating": st.text(max_size=8),
                  "published_at": st.datetimes().map(lambda d: d.isoformat()),
                  "attributes": st.dictionaries(st.text(max_size=20), st.integers() | st.text())},
    ).map(json.dumps)


def plant_case(case: Any, known: Mapping[str, Sequence[str]], draw: Callable[[Any], Any]
               ) -> None:
    """Half the time each: an existing id in an id field, realistic events, upload metadata."""
    for name in ID_FIELDS:
        params = case.path_parameters or {}
        if name in params and known.get(name) and draw(st.booleans()):
            params[name] = draw(st.sampled_from(known[name]))
    if isinstance(case.body, dict | list):
        case.body = _plant(case.body, known, draw)
    if isinstance(case.body, dict) and draw(st.booleans()):
        if isinstance(case.body.get("events"), list):
            case.body["events"] = draw(_events(known))
        if isinstance(case.body.get("metadata"), str):
            case.body["metadata"] = draw(_metadata())
