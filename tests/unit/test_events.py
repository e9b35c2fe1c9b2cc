"""Event batch validation: each bad event is refused with a reason naming its field, the rest
of the batch goes on."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from medley.recs.events import WEIGHTS, EventType, validate_batch, weight

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC).timestamp()
SKEW = 300.0
ITEMS = {"item-1", "item-2"}


def _good(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "event_id": "ev-1",
        "user_id": "user-1",
        "item_id": "item-1",
        "type": "view",
        "value": 42.0,
        "timestamp": "2025-06-01T11:59:00Z",
        "context": {"surface": "home", "device": "tv", "locale": "en-GB"},
        "recommendation_id": "rec-9",
    }
    row.update(changes)
    return row


def _validate(rows: list[Any]) -> tuple[list[Any], list[Any]]:
    accepted, rejected, _ = validate_batch(rows, known_items=ITEMS, now=NOW,
                                           max_future_skew_s=SKEW)
    return accepted, rejected


def test_valid_event_is_accepted() -> None:
    accepted, rejected = _validate([_good()])
    assert rejected == []
    [ev] = accepted
    assert (ev.event_id, ev.user_id, ev.item_id, ev.type) == ("ev-1", "user-1", "item-1",
                                                             EventType.VIEW)
    assert ev.value == 42.0
    assert ev.ts == NOW - 60
    assert ev.context == {"surface": "home", "device": "tv", "locale": "en-GB"}
    assert ev.recommendation_id == "rec-9"


def test_minimal_event_is_accepted() -> None:
    row = _good()
    for optional in ("value", "context", "recommendation_id"):
        del row[optional]
    accepted, rejected = _validate([row])
    assert rejected == []
    assert accepted[0].value is None
    assert accepted[0].context == {}


def _without(field: str) -> dict[str, Any]:
    row = _good()
    del row[field]
    return row


@pytest.mark.parametrize(
    ("row", "field"),
    [
        (_without("event_id"), "event_id"),
        (_without("user_id"), "user_id"),
        (_without("timestamp"), "timestamp"),
        (_good(event_id=""), "event_id"),
        (_good(user_id=""), "user_id"),
        (_good(item_id=""), "item_id"),
        (_good(type="purchase"), "type"),
        (_good(value=-1.0), "value"),
        (_good(value=float("nan")), "value"),
        (_good(value=float("inf")), "value"),
        (_good(value=1e12), "value"),
        (_good(mood="happy"), "mood"),  # an unknown field names itself
        (_good(item_id="no-such-item"), "item_id"),
        (_good(timestamp="2025-06-02T12:00:00Z"), "timestamp"),  # a day in the future
        (_good(timestamp="1969-12-31T00:00:00Z"), "timestamp"),
        (_good(timestamp="yesterday-ish"), "timestamp"),
        (_good(context={"surface": "home", "colour": "red"}), "context.colour"),
        (_good(context={"surface": "x" * 65}), "context.surface"),
        (_good(user_id="u" * 129), "user_id"),
    ],
)
def test_bad_event_is_refused_with_a_reason_naming_the_field(
    row: dict[str, Any], field: str
) -> None:
    good = _good(event_id="ev-ok")
    accepted, rejected = _validate([row, good])
    assert [ev.event_id for ev in accepted] == ["ev-ok"]  # the rest of the batch goes on
    [r] = rejected
    assert r.index == 0
    assert r.reason.startswith(f"{field}:"), r.reason
    assert r.event_id == row.get("event_id")  # echoed so the client can match it


@pytest.mark.parametrize("row", [["ev-1", "view"], "view", 7, None])
def test_non_object_row_is_refused(row: Any) -> None:
    accepted, rejected = _validate([_good(), row])
    assert len(accepted) == 1
    [r] = rejected
    assert (r.index, r.event_id) == (1, None)
    assert "object" in r.reason


def test_small_clock_skew_is_tolerated() -> None:
    accepted, rejected = _validate([_good(timestamp="2025-06-01T12:04:00Z")])  # 4 min ahead
    assert rejected == []
    assert accepted[0].ts == NOW + 240


def test_naive_timestamp_is_read_as_utc() -> None:
    accepted, rejected = _validate([_good(timestamp="2025-06-01T11:00:00")])
    assert rejected == []
    assert accepted[0].ts == NOW - 3600


def test_offset_timestamp_is_converted_to_utc() -> None:
    accepted, _ = _validate([_good(timestamp="2025-06-01T13:00:00+02:00")])
    assert accepted[0].ts == NOW - 3600


def test_repeated_event_id_in_one_batch_is_kept_once() -> None:
    first = _good(event_id="dup", type="like")
    again = _good(event_id="dup", type="share")
    other = _good(event_id="other")
    accepted, rejected = _validate([first, other, again])
    assert [(e.event_id, e.type) for e in accepted] == [("dup", EventType.LIKE),
                                                        ("other", EventType.VIEW)]
    assert rejected == []  # a retry is not an error


def test_empty_context_values_are_dropped() -> None:
    accepted, _ = _validate([_good(context={"surface": "", "device": "phone"})])
    assert accepted[0].context == {"device": "phone"}


def test_view_weight_grows_with_dwell_but_at_most_doubles() -> None:
    base = WEIGHTS[EventType.VIEW]
    dwell = [None, 0.0, 1.0, 10.0, 50.0, 100.0, 1e4, 1e7]
    weights = [weight(EventType.VIEW, v) for v in dwell]
    assert weights[0] == weights[1] == base
    assert all(b >= a for a, b in itertools.pairwise(weights))
    assert weights[2] > base
    assert weights[5] == pytest.approx(2 * base)
    assert max(weights) <= 2 * base


@pytest.mark.parametrize(
    "kind", [EventType.LIKE, EventType.SHARE, EventType.SKIP, EventType.DISLIKE]
)
def test_dwell_only_matters_for_views(kind: EventType) -> None:
    assert weight(kind, 500.0) == weight(kind, None) == WEIGHTS[kind]


def test_event_weights_order_engagement() -> None:
    w = {k: weight(k, None) for k in EventType}
    assert w[EventType.IMPRESSION] == 0
    assert w[EventType.SHARE] >= w[EventType.LIKE] > w[EventType.COMPLETE] > w[EventType.VIEW] > 0
    assert w[EventType.DISLIKE] < w[EventType.SKIP] < 0


def test_an_app_session_id_is_kept_and_a_broken_one_refused() -> None:
    accepted, rejected = _validate([_good(session_id="s-42"),
                                    _good(event_id="ev-2", session_id="bad\x00id"),
                                    _good(event_id="ev-3", session_id="x" * 200)])
    assert [e.session_id for e in accepted] == ["s-42"]
    assert [r.index for r in rejected] == [1, 2]
    assert all(r.reason.startswith("session_id") for r in rejected)
    assert _validate([_good()])[0][0].session_id is None  # optional
