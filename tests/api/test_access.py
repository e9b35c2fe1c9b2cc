"""Every route in the OpenAPI schema refuses a caller without a key (401) and a key of the wrong
role (403); keys are stored hashed, revocable, rate limited; bodies are capped however sent."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from medley.keys import Role, digest
from medley.ratelimit import RateLimiter
from tests.api.conftest import embedded_app
from tests.conftest import AUTH

# Who may call what: the policy a platform relies on, stated once. A route added without a line
# here fails the walk; an admin key may call every route.
C, K, E, A = Role.CONTENT, Role.CLIENT, Role.EDITOR, Role.ADMIN
EXPECTED: dict[tuple[str, str], set[Role]] = {
    ("post", "/v1/items"): {C},
    ("get", "/v1/items"): {C, E},
    ("get", "/v1/items/{item_id}"): {C, E},
    ("patch", "/v1/items/{item_id}"): {C},
    ("delete", "/v1/items/{item_id}"): {C},
    ("get", "/v1/items/{item_id}/thumbnail"): {C, K, E},
    ("post", "/v1/events"): {K},
    ("get", "/v1/items/{item_id}/similar"): {K},
    ("get", "/v1/users/{user_id}/recommendations"): {K},
    ("get", "/v1/users/{user_id}/new-items"): {K},
    ("get", "/v1/search"): {K},
    ("put", "/v1/users/{user_id}/preferences"): {K},
    ("get", "/v1/users/{user_id}/preferences"): {K},
    ("get", "/v1/users/{user_id}/controls"): {K},
    ("post", "/v1/users/{user_id}/not-interested"): {K},
    ("delete", "/v1/users/{user_id}/not-interested"): {K},
    ("put", "/v1/users/{user_id}/history"): {K},
    ("post", "/v1/users/{user_id}/reset"): {K},
    ("delete", "/v1/users/{user_id}"): set(),
    ("get", "/v1/analytics/items/{item_id}"): {C, E},
    ("put", "/v1/editorial"): {E},
    ("get", "/v1/editorial"): {E},
    ("get", "/v1/fusion/profiles"): {E},
    ("post", "/v1/fusion/profiles"): {E},
    ("get", "/v1/fusion/profiles/{profile_id}"): {E},
    ("post", "/v1/fusion/preview"): {E},
    ("post", "/v1/fusion/profiles/{profile_id}/preview"): {E},
    ("post", "/v1/fusion/evaluate"): {E},
    ("post", "/v1/fusion/profiles/{profile_id}/evaluate"): {E},
    ("post", "/v1/fusion/profiles/{profile_id}/publish"): {E},
    ("post", "/v1/fusion/profiles/{profile_id}/rollback"): {E},
    ("get", "/v1/fusion/jobs/{job_id}"): {E},
    ("get", "/v1/fusion/history"): {E},
    ("post", "/v1/fusion/evaluations"): {E},
    ("post", "/v1/fusion/profiles/{profile_id}/evaluations"): {E},
    ("get", "/v1/fusion/evaluations/{job_id}"): {E},
    ("post", "/v1/experiments/{experiment_id}/evaluations"): {E},
    ("post", "/v1/experiments"): {E},
    ("get", "/v1/experiments"): {E},
    ("get", "/v1/experiments/{experiment_id}"): {E},
    ("get", "/v1/experiments/{experiment_id}/results"): {E},
    ("get", "/v1/experiments/{experiment_id}/timeline"): {E},
    ("post", "/v1/experiments/{experiment_id}/start"): {E},
    ("post", "/v1/experiments/{experiment_id}/pause"): {E},
    ("post", "/v1/experiments/{experiment_id}/stop"): {E},
    ("post", "/v1/experiments/{experiment_id}/ship"): {E},
    ("post", "/v1/keys"): set(),
    ("get", "/v1/keys"): set(),
    ("get", "/v1/keys/me"): {C, K, E},
    ("delete", "/v1/keys/{key_id}"): set(),
}
PUBLIC = {("get", "/healthz")}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, tiny_clip: dict[str, Any]
        ) -> Iterator[TestClient]:
    with embedded_app(tmp_path_factory.mktemp("access"), tiny_clip) as client:
        yield client


@pytest.fixture(scope="module")
def keys(app: TestClient) -> dict[Role, str]:
    made = {}
    for role in Role:
        r = app.post("/v1/keys", json={"role": role.value, "name": f"walk-{role.value}"})
        assert r.status_code == 201, r.text
        made[role] = r.json()["key"]
    return made


def _operations(client: TestClient) -> list[tuple[str, str]]:
    schema = client.get("/openapi.json").json()
    return [(m, p) for p, ops in schema["paths"].items() for m in ops]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def _call(client: TestClient, method: str, path: str, key: str | None) -> Any:
    # No body on purpose: the refusal must come before the input is even read.
    request = client.build_request(method, _concrete(path))
    del request.headers["authorization"]  # the test client's own admin key
    if key is not None:
        request.headers["authorization"] = f"Bearer {key}"
    return client.send(request)


def test_the_policy_covers_every_route_in_the_schema(app: TestClient) -> None:
    ops = set(_operations(app))
    assert ops - PUBLIC == set(EXPECTED), "a route was added or removed: state its roles here"


def test_every_route_refuses_a_caller_without_a_key(app: TestClient) -> None:
    for method, path in set(_operations(app)) - PUBLIC:
        for key in (None, "mdl_made_up_key", ""):
            r = _call(app, method, path, key)
            assert r.status_code == 401, (method, path, key, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
            assert r.json()["error"]["code"] == "unauthenticated"
    assert _call(app, "get", "/healthz", None).status_code == 200


def test_every_route_refuses_the_wrong_role_and_admits_the_right_one(
    app: TestClient, keys: dict[Role, str]
) -> None:
    schema = app.get("/openapi.json").json()
    for (method, path), allowed in EXPECTED.items():
        assert set(schema["paths"][path][method]["x-roles"]) == {r.value for r in allowed | {A}}
        for role in Role:
            r = _call(app, method, path, keys[role])
            if role in allowed or role is A:
                assert r.status_code not in (401, 403), (method, path, role, r.text)
            else:
                assert r.status_code == 403, (method, path, role, r.text)
                assert role.value in r.json()["error"]["message"]


def test_keys_are_stored_hashed_and_revocation_takes_effect(app: TestClient) -> None:
    made = app.post("/v1/keys", json={"role": "client", "name": "to revoke"}).json()
    secret, key_id = made["key"], made["id"]
    db = app.app.state.service.runtime.db  # type: ignore[attr-defined]
    with db.engine.connect() as c:
        stored = c.exec_driver_sql("SELECT hash FROM api_keys WHERE id = ?", (key_id,)).scalar()
        dump = " ".join(str(v) for row in c.exec_driver_sql("SELECT * FROM api_keys") for v in row)
    assert stored == digest(secret) and secret not in dump
    listed = app.get("/v1/keys").json()["keys"]
    assert all("key" not in k for k in listed) and key_id in {k["id"] for k in listed}
    me = {"Authorization": f"Bearer {secret}"}
    assert app.get("/v1/keys/me", headers=me).json()["role"] == "client"
    assert app.delete(f"/v1/keys/{key_id}").json()["revoked"] is True
    assert app.get("/v1/keys/me", headers=me).status_code == 401
    assert app.delete("/v1/keys/nope").status_code == 404


def test_the_last_admin_key_cannot_be_revoked(app: TestClient) -> None:
    me = app.get("/v1/keys/me").json()["id"]
    for k in app.get("/v1/keys").json()["keys"]:  # down to this one (other tests made more)
        if k["role"] == "admin" and not k["revoked"] and k["id"] != me:
            assert app.delete(f"/v1/keys/{k['id']}").status_code == 200
    r = app.delete(f"/v1/keys/{me}")
    assert r.status_code == 409 and "last admin key" in r.json()["error"]["message"]
    assert app.get("/v1/keys/me").status_code == 200  # still managing keys
    other = app.post("/v1/keys", json={"role": "admin", "name": "second admin"}).json()
    assert app.delete(f"/v1/keys/{other['id']}").status_code == 200  # not the last: fine


def test_bad_key_requests_are_refused_plainly(app: TestClient) -> None:
    assert app.post("/v1/keys", json={"role": "root", "name": "x"}).status_code == 422
    assert app.post("/v1/keys", json={"role": "client", "name": ""}).status_code == 422
    weird = {"Authorization": "Basic dXNlcjpwYXNz"}
    assert app.get("/v1/keys/me", headers=weird).status_code == 401
    huge = {"Authorization": "Bearer " + "x" * 10_000}
    assert app.get("/v1/keys/me", headers=huge).status_code == 401


def test_a_key_over_its_rate_gets_429_with_retry_after(app: TestClient,
                                                       keys: dict[Role, str]) -> None:
    service = app.app.state.service  # type: ignore[attr-defined]
    shipped = service.limiter
    service.limiter = RateLimiter({"client": (2.0, 3.0)})  # the settings' shape, tighter
    client = {"Authorization": f"Bearer {keys[Role.CLIENT]}"}
    try:
        codes = [app.get("/v1/keys/me", headers=client) for _ in range(8)]
        other = app.get("/v1/keys/me", headers=AUTH)
    finally:
        service.limiter = shipped
    limited = [r for r in codes if r.status_code == 429]
    assert limited, [r.status_code for r in codes]
    assert int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].json()["error"]["code"] == "rate_limited"
    assert other.status_code == 200  # another key is not held back by this one's use


def test_bodies_over_the_limit_are_refused_however_they_are_sent(app: TestClient) -> None:
    limit = app.app.state.service.settings.max_json_bytes  # type: ignore[attr-defined]
    declared = app.post("/v1/events", content=b"[" + b" " * limit + b"]",
                        headers={"content-type": "application/json"})
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the count happens as bytes arrive
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    streamed = app.post("/v1/events", content=chunks(),
                        headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"


def test_pages_and_answers_are_capped_by_settings(app: TestClient) -> None:
    settings = app.app.state.service.settings  # type: ignore[attr-defined]
    page = app.get("/v1/items", params={"limit": 10_000}).json()
    assert page["limit"] == settings.max_page_size
    deep = app.get("/v1/items", params={"offset": settings.max_offset + 1})
    assert deep.status_code == 422 and "offset" in deep.json()["error"]["message"]
    over = app.get("/v1/search", params={"q": "x", "limit": settings.max_results + 1})
    assert over.status_code == 422 and "limit" in over.json()["error"]["message"]
    hist = app.get("/v1/fusion/history", params={"limit": 10_000})
    assert hist.status_code == 200
