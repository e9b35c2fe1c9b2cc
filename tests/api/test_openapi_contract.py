"""The OpenAPI schema carries the models behind the two most used calls (events and uploads),
and says what the routes enforce: a field the schema requires is one the API refuses an event
without, and the upload's parts are JSON metadata and binary files."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from medley.config import Settings
from medley.recs.events import validate_batch

NOW = 1_780_000_000.0
EVENT = {"event_id": "e-1", "user_id": "ana", "item_id": "item-1", "type": "view",
         "value": 95, "timestamp": "2026-05-28T10:00:00Z", "context": {"device": "tv"},
         "recommendation_id": "r-1", "session_id": "s-1"}


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("contract")))
    body: dict[str, Any] = TestClient(app).get("/openapi.json").json()  # no start-up needed
    return body


def _component(schema: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = schema["components"]["schemas"][name]
    return found


def test_an_event_batch_is_a_list_of_typed_events(schema: dict[str, Any]) -> None:
    batch = _component(schema, "EventBatch")["properties"]["events"]
    assert batch["items"] == {"$ref": "#/components/schemas/EventIn"}
    event = _component(schema, "EventIn")
    assert set(event["properties"]) == set(EVENT)
    kinds = _component(schema, "EventType")["enum"]
    assert {"view", "like", "skip", "complete", "impression"} <= set(kinds)


def test_the_schema_requires_exactly_what_the_api_refuses_an_event_without(
        schema: dict[str, Any]) -> None:
    required = set(_component(schema, "EventIn")["required"])
    assert required == {"event_id", "user_id", "item_id", "type", "timestamp"}
    for field in EVENT:
        event = {k: v for k, v in EVENT.items() if k != field}
        accepted, rejected, _ = validate_batch([event], known_items={"item-1"}, now=NOW,
                                               max_future_skew_s=300)
        if field in required:
            assert not accepted and rejected[0].reason.startswith(field), field
        else:
            assert len(accepted) == 1, (field, rejected)


def test_an_upload_is_json_metadata_and_binary_files(schema: dict[str, Any]) -> None:
    form = schema["paths"]["/v1/items"]["post"]["requestBody"]["content"]["multipart/form-data"]
    body = _component(schema, form["schema"]["$ref"].rsplit("/", 1)[1])
    metadata = body["properties"]["metadata"]
    assert metadata["contentMediaType"] == "application/json"
    assert metadata["contentSchema"] == {"$ref": "#/components/schemas/ItemMetadata"}
    assert "title" in _component(schema, "ItemMetadata")["required"]
    for part in ("image", "audio", "video"):
        kinds = [o for o in body["properties"][part]["anyOf"] if o.get("type") == "string"]
        assert kinds and all(o["format"] == "binary" for o in kinds), part
