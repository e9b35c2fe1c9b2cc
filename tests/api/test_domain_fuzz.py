"""A property-based fuzzer over the domain (Hypothesis): item metadata, events, filters and ids
at the extremes of their types (calendar edges, huge and tiny numbers, deep structures, odd
Unicode) pushed through upload -> extraction -> index -> sync -> the answer endpoints.

Invariants: no 5xx; every refusal is a readable JSON error; nothing accepted is lost; and no
stall: an ordinary item uploaded afterwards is searchable within 5 s of being indexed.
Schemathesis (tests/api/test_fuzz.py) covers the HTTP surface from the OpenAPI schema; this
covers what the schema cannot say. `python -m benchmarks trust` runs longer fuzz campaigns.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import embedded_app, wait_until
from tests.conftest import wait_for

pytestmark = pytest.mark.heavy

# Per property: 25 in `make test` (about a minute on two cores); a longer campaign sets
# MEDLEY_DOMAIN_FUZZ_EXAMPLES (README, Tests).
EXAMPLES = int(os.environ.get("MEDLEY_DOMAIN_FUZZ_EXAMPLES", "25"))
ACCEPTED: list[str] = []  # ids of items the fuzz uploaded and the API accepted

# Text as clients send it, biased to the awkward: controls, combining marks, RTL, emoji,
# surrogates refused by JSON encoders, blanks.
odd_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "\u202e", "e\u0301", "\ufffd", "🎬" * 30, "a" * 600,
                     "\u00a0\u2003", "x\x7fy"]),
)
offsets = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-14)),
                           None])
edge_datetimes = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59),
                 timezones=st.just(UTC) | st.none()),
    st.builds(lambda d, tz: d.replace(tzinfo=tz),
              st.sampled_from([datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59),
                               datetime(1000, 1, 1), datetime(8999, 12, 31, 23, 59),
                               datetime(1970, 1, 1), datetime(1969, 12, 31, 23, 59, 59)]),
              offsets),
)


def iso(value: datetime) -> str:
    return value.isoformat()


date_strings = st.one_of(edge_datetimes.map(iso),
                         st.sampled_from(["0001-01-01", "9999-12-31", "2026-02-30", "-1", "1e400",
                                          "2026-01-01T25:00:00Z", ""]))
json_scalars = st.one_of(
    st.none(), st.booleans(), st.text(max_size=20),
    st.integers(min_value=-(10**60), max_value=10**60),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([1e308, -1e-308, 0.0]),
)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=30)
deep = st.integers(min_value=1, max_value=200).map(lambda n: json.loads('{"a":' * n + "1"
                                                                          + "}" * n))
metadata = st.fixed_dictionaries(
    {"title": odd_text},
    optional={"description": odd_text, "tags": st.lists(odd_text, max_size=5),
              "published_at": date_strings, "age_rating": odd_text,
              "attributes": st.one_of(json_values, deep), "language": odd_text,
              "external_id": odd_text})


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, tiny_clip: dict[str, Any]
           ) -> Iterator[TestClient]:
    with embedded_app(tmp_path_factory.mktemp("domain-fuzz"), tiny_clip,
                      rate_limits={r: (1e6, 1e6) for r in ("client", "content", "editor",
                                                           "admin")}) as c:
        yield c


def readable(r: Any) -> None:
    """No 5xx, and a refusal says what was wrong in the documented shape."""
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        error = r.json()["error"]
        assert isinstance(error["code"], str) and error["message"].strip(), r.text


FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@FUZZ
@given(meta=metadata)
def test_uploads_and_patches(client: TestClient, meta: dict[str, Any]) -> None:
    try:
        raw = json.dumps(meta)
    except (ValueError, UnicodeEncodeError):
        return
    r = client.post("/v1/items", data={"metadata": raw})
    readable(r)
    if r.status_code == 202:
        ACCEPTED.append(r.json()["id"])
        patch = {k: v for k, v in meta.items() if k != "title"}
        readable(client.patch(f"/v1/items/{ACCEPTED[-1]}", json=patch))


@FUZZ
@given(user=odd_text, when=date_strings, value=json_scalars, kind=odd_text | st.just("like"))
def test_events(client: TestClient, user: str, when: str, value: Any, kind: str) -> None:
    item = ACCEPTED[0] if ACCEPTED else "no-item"
    ev = {"event_id": f"fz-{time.monotonic_ns()}", "user_id": user, "item_id": item,
          "type": kind, "timestamp": when, "value": value}
    readable(client.post("/v1/events", json={"events": [ev]}))


@FUZZ
@given(user=odd_text, after=date_strings, before=date_strings, rating=odd_text,
       q=odd_text)
def test_answers_with_filters(client: TestClient, user: str, after: str, before: str,
                              rating: str, q: str) -> None:
    params = {"published_after": after, "published_before": before, "max_age_rating": rating}
    uid = quote(user, safe="") or "u"  # the id as a client would put it in the path
    for path in (f"/v1/users/{uid}/recommendations", f"/v1/users/{uid}/new-items"):
        readable(client.get(path, params=params))
    readable(client.get("/v1/search", params={**params, "q": q or "x"}))
    if ACCEPTED:
        readable(client.get(f"/v1/items/{ACCEPTED[-1]}/similar", params=params))


def test_after_the_fuzz_nothing_is_lost_and_nothing_stalls(client: TestClient) -> None:
    for item_id in ACCEPTED:  # every accepted upload is still there, each with a final status
        readable(client.get(f"/v1/items/{item_id}"))
        assert client.get(f"/v1/items/{item_id}").status_code == 200
    ok = client.post("/v1/items", data={"metadata": json.dumps(
        {"title": "Ordinary harbour lighthouse at dusk"})}).json()["id"]
    wait_for(client, ok)

    def searchable() -> bool:
        hits = client.get("/v1/search", params={"q": "harbour lighthouse"}).json()["items"]
        return ok in [h["item_id"] for h in hits]

    wait_until(searchable, timeout=5)
    health = client.get("/healthz").json()["recommendations"]
    assert health["ready"] and health["set_aside"]["items"] == 0, health
