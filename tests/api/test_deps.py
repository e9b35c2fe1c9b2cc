"""Routes take what they need as typed dependencies (`api/deps.py`), and none of those costs a
request a thread-pool hand-off."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from api.deps import get_recs
from medley.config import Settings
from medley.recs.answers import Answer, Scored
from medley.recs.service import Recommendations


@pytest.fixture
def client(make_settings: Callable[..., Settings], client_for: Callable[[Settings], Any]
           ) -> TestClient:
    started: TestClient = client_for(make_settings())
    return started


def _on_event_loop(call: Any) -> bool:
    # A function, or an instance whose class defines an async __call__ (`api.auth.Allow`).
    method = vars(type(call)).get("__call__")
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(method)


def _dependencies(dependant: Dependant) -> list[Dependant]:
    out = []
    for sub in dependant.dependencies:
        out += [sub, *_dependencies(sub)]
    return out


def test_no_dependency_of_an_answer_route_runs_on_the_thread_pool(client: TestClient) -> None:
    """A plain `def` dependency is handed to the thread pool for every request, beside the
    handler's own hand-off: under load those queue behind ranking work."""
    answer_paths = {"/v1/items/{item_id}/similar", "/v1/users/{user_id}/recommendations",
                    "/v1/users/{user_id}/new-items", "/v1/search", "/v1/events"}
    app: Any = client.app
    routes = [ctx.route for ctx in iter_route_contexts(app.routes)
              if isinstance(ctx.route, APIRoute) and ctx.path in answer_paths]
    assert {r.path for r in routes} == answer_paths
    for route in routes:
        sync = [d.call for d in _dependencies(route.dependant)
                if d.call is not None and not _on_event_loop(d.call)]
        assert not sync, f"{route.path}: {sync}"


def test_a_route_answers_from_an_overridden_dependency(client: TestClient) -> None:
    """What a route needs can be replaced in a test without touching the app's state."""

    app: Any = client.app

    class Canned:
        table = app.state.service.recs.table

        def search(self, q: str, n: int, where: object, user_id: str | None) -> Answer:
            return Answer([Scored("canned", 1.0, ["stand-in"])])

    app.dependency_overrides[get_recs] = lambda: Canned()
    try:
        r = client.get("/v1/search", params={"q": "anything"})
    finally:
        app.dependency_overrides.clear()
    assert r.status_code == 200, r.text
    assert [i["item_id"] for i in r.json()["items"]] == ["canned"]
    assert isinstance(app.state.service.recs, Recommendations)
