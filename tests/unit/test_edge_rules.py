"""The edge's rules as pure functions: strict JSON, dates, ids, URLs (issue: one bad record
never stalls anything). Each row is an input an outside tester sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from api.edge import MAX_DEPTH, strict_loads, url_problem
from medley import dates, ids
from medley.errors import InvalidInput


@pytest.mark.parametrize(("raw", "problem"), [
    ('{"title": "a", "title": "b"}', "appears twice"),
    ('{"n": NaN}', "NaN is not a JSON number"),
    ('{"n": -Infinity}', "-Infinity is not a JSON number"),
    ('{"n": 1e400}', "beyond what a float holds"),
    ('{"n": ' + "9" * 5000 + "}", "longer than 40 characters"),
    ('{"a": ' * 5000 + "1" + "}" * 5000, "nested deeper"),
    ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nested deeper"),
    ('{"a": 1', "not valid JSON"),
    (b'{"a": "\xff"}', "not UTF-8"),
])
def test_strict_json_refuses_with_a_reason(raw: str | bytes, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        strict_loads(raw, "metadata")


@pytest.mark.parametrize("raw", [
    '{"title": "a", "n": 12345678901234567890, "x": 1.5e300, "deep": ' + "[" * (MAX_DEPTH - 1)
    + "]" * (MAX_DEPTH - 1) + "}",
    '{"nested": {"title": "a"}, "title": "b"}',  # the same key in two objects is fine
])
def test_strict_json_accepts_ordinary_documents(raw: str) -> None:
    assert isinstance(strict_loads(raw, "metadata"), dict)


@pytest.mark.parametrize("value", [
    datetime(1, 1, 1), datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
    datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14))),
    datetime(999, 12, 31, 23, 59, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC),
])
def test_dates_outside_the_range_are_refused(value: datetime) -> None:
    with pytest.raises(ValueError, match="must be a date from"):
        dates.in_range(value)


def test_dates_inside_the_range_become_aware_utc() -> None:
    paris = timezone(timedelta(hours=1))
    assert dates.in_range(datetime(1895, 12, 28, 21, tzinfo=paris)) == datetime(
        1895, 12, 28, 20, tzinfo=UTC)
    assert dates.in_range(datetime(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=UTC)
    # A naive column value is UTC, whatever this machine's zone.
    assert dates.epoch(datetime(1970, 1, 2)) == 86400.0


@pytest.mark.parametrize(("value", "problem"), [
    ("   ", "empty or only whitespace"), ("a\x00b", "control"), ("tab\there", "control"),
    ("bad\ufffdbytes", "not UTF-8"), ("\u200b\x7f", "control"),
])
def test_ids_refused(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ids.clean(value)


def test_ids_are_nfc_so_one_spelling_is_one_user() -> None:
    assert ids.clean("Jose\u0301") == ids.clean("Jos\u00e9") == "Jos\u00e9"
    assert ids.clean("user 42 🎬") == "user 42 🎬"


@pytest.mark.parametrize(("path", "query", "status"), [
    (b"/v1/users/%ff%fe/preferences", b"", 422),
    (b"/v1/search", b"q=%c3%28", 422),
    (b"/v1/items/x", b"a=" + b"b" * 9000, 414),
    (b"/v1/users/J%C3%B6rg/preferences", b"q=caf%C3%A9+au+lait", None),
])
def test_url_problems(path: bytes, query: bytes, status: int | None) -> None:
    problem = url_problem({"raw_path": path, "path": path.decode(), "query_string": query})
    assert (problem[0] if problem else None) == status
