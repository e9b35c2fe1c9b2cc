"""`GET /metrics`: Prometheus text whose counters move with traffic, with bounded labels."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import embedded_app
from tests.conftest import wait_for

pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, tiny_clip: dict[str, Any]
           ) -> Iterator[TestClient]:
    with embedded_app(tmp_path_factory.mktemp("metrics-data"), tiny_clip) as c:
        yield c


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_counters_move_with_traffic_and_labels_hold_no_ids(client: TestClient) -> None:
    anonymous = TestClient(client.app)  # no key: scraped like /healthz
    before = anonymous.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    route = "/v1/items/{item_id}"
    seen = sample(before.text, "medley_http_requests_total", route=route, status="404")

    item = client.post("/v1/items", data={"metadata": json.dumps(
        {"title": "A lighthouse at dusk"})}).json()["id"]
    wait_for(client, item)
    for _ in range(3):
        assert client.get("/v1/items/no-such-item").status_code == 404
    assert anonymous.get("/v1/items").status_code == 401  # refused by the guard: counted too

    after = anonymous.get("/metrics").text
    assert sample(after, "medley_http_requests_total", route=route, status="404") == seen + 3
    assert sample(after, "medley_http_requests_total", route="/v1/items", method="GET",
                  status="401") >= 1
    assert sample(after, "medley_http_request_duration_seconds_count", route=route) >= 3
    assert sample(after, "medley_extractions_total", modality="text", status="ready") >= 1
    assert sample(after, "medley_extraction_seconds_count", modality="text") >= 1
    assert "medley_queue_depth" in after and "medley_events_behind" in after
    assert sample(after, "medley_serving_ready") == 1.0
    assert item not in after and "no-such-item" not in after  # ids never become labels

