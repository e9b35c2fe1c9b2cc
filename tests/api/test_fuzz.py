"""Hostile input: schemathesis generates valid and invalid requests for every operation in the
OpenAPI schema and sends them to the real app (real text model, tiny CLIP, seeded catalog) with
the admin key. No answer may be a 5xx: bad input is the client's error, never the server's."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from benchmarks.trust_fuzz import asgi_schema, fuzz_schema, server_error_report
from medley.config import Settings
from tests.conftest import AUTH

pytestmark = pytest.mark.heavy

EXAMPLES = 40  # per operation and mode (valid, invalid): about two minutes on two cores
USERS = [f"fuzz-user-{k}" for k in range(4)]


@pytest.fixture(scope="module")
def rec_settings(rec_settings: Settings) -> Settings:
    """The catalog's settings, with rate limits no fuzz run reaches (429s would hide handlers)."""
    return rec_settings.model_copy(update={"rate_limits": {
        role: (1e6, 1e6) for role in ("client", "content", "editor", "admin")}})


@pytest.fixture(scope="module")
def known(catalog: tuple[Any, dict[str, list[str]]]) -> dict[str, list[str]]:
    """Ids that exist: the catalog's items and users with some history."""
    client, ids = catalog
    items = [i for cluster in ids.values() for i in cluster]
    now = datetime.now(UTC).isoformat()
    events = [{"event_id": f"fuzz-{u}-{k}", "user_id": u, "type": "like" if k % 3 else "view",
               "item_id": items[(n * 7 + k) % len(items)], "timestamp": now}
              for n, u in enumerate(USERS) for k in range(5)]
    r = client.post("/v1/events", json={"events": events}, headers=AUTH)
    assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text
    return {"item_id": items, "user_id": USERS}


def test_no_input_gets_a_server_error(catalog: tuple[Any, dict[str, list[str]]],
                                      known: dict[str, list[str]]) -> None:
    client, _ = catalog
    started = time.perf_counter()
    result = fuzz_schema(asgi_schema(client.app, AUTH), headers=AUTH, known=known,
                         max_examples=EXAMPLES, say=print)
    print(f"fuzz: {result['operations']} operations, {result['cases']} cases, "
          f"{time.perf_counter() - started:.0f} s, failures by check {result['failures_by_check']}")
    for op in result["per_operation"]:  # what the other checks found (reported, not enforced)
        for check, examples in op["examples"].items():
            if check != "status_code_conformance":
                print(f"{op['operation']} {check}: {op['failures'][check]}\n  {examples[0]}")
    assert result["operations"] >= 25
    assert result["server_errors"] == 0 and result["transport_errors"] == 0, \
        server_error_report(result)
    for check in ("response_schema_conformance", "content_type_conformance"):  # bodies match
        assert check not in result["failures_by_check"], [
            (op["operation"], op["examples"][check][0]) for op in result["per_operation"]
            if check in op["examples"]]


@pytest.mark.parametrize(("path", "status"), [
    # Found by the fuzz: each answered 500.
    ("/v1/search?q=rocket&exclude_ids=not-a-uuid", 200),  # the index refused non-UUID ids
    ("/v1/users/fuzz-user-0/new-items?exclude_ids=%C3%9C", 200),
    # "²" broke int(); it is no age rating: refused, plainly
    ("/v1/users/fuzz-user-0/recommendations?max_age_rating=%C2%B2", 422),
    ("/v1/fusion/profiles/99999999999999999999", 404),  # past SQLite's 64-bit integers
])
def test_inputs_that_once_answered_500(catalog: tuple[Any, dict[str, list[str]]], path: str,
                                       status: int) -> None:
    client, _ = catalog
    r = client.get(path, headers=AUTH)
    assert r.status_code == status, r.text


def test_profile_actions_on_an_id_past_64_bits(catalog: tuple[Any, dict[str, list[str]]]
                                               ) -> None:
    client, _ = catalog
    for action in ("evaluate", "publish", "rollback"):
        r = client.post(f"/v1/fusion/profiles/{2**64}/{action}", headers=AUTH)
        assert r.status_code == 404, r.text


def test_an_empty_boost_tag_is_refused_and_editorial_still_loads(
        catalog: tuple[Any, dict[str, list[str]]]) -> None:
    client, _ = catalog
    r = client.put("/v1/editorial", json={"boosts": [{"tag": "", "factor": 1.5}]}, headers=AUTH)
    assert r.status_code == 422, r.text  # it was stored, then loading it answered 500
    assert client.get("/v1/editorial", headers=AUTH).status_code == 200
