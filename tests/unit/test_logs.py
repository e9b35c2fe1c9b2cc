"""JSON service logs: one object per line, with each request's id, route, status and duration."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.metrics import RequestMetrics
from medley import logs


@pytest.fixture
def json_logs() -> Iterator[list[str]]:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(logs.JsonFormatter().format(record))

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure("json")
    root.addHandler(Keep())
    try:
        yield lines
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        logs.ACCESS.disabled = True
        logging.getLogger("uvicorn.access").disabled = False


def test_every_request_is_one_json_line_with_its_route_and_id(json_logs: list[str]) -> None:
    app = FastAPI()

    @app.get("/v1/items/{item_id}")
    def get_item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    app.add_middleware(RequestMetrics)
    client = TestClient(app)
    r = client.get("/v1/items/abc-123", headers={"X-Request-ID": "req-42"})
    assert r.headers["x-request-id"] == "req-42"
    generated = client.get("/v1/items/other").headers["x-request-id"]
    access = [json.loads(line) for line in json_logs if '"medley.access"' in line]
    assert [a["request_id"] for a in access] == ["req-42", generated]
    first = access[0]
    assert first["route"] == "/v1/items/{item_id}" and first["status"] == 200
    assert first["method"] == "GET" and first["duration_ms"] >= 0 and first["level"] == "info"
    assert "abc-123" not in json.dumps(first)  # the route template, not the path with its id
