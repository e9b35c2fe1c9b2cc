"""A consumer that stops consuming is noticed and the work still completes (issue 13): the
embedded worker is stopped behind the service's back, as a hung or dead consumer thread would
be, and an upload made afterwards still reaches ready."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import embedded_app
from tests.conftest import wait_for

pytestmark = pytest.mark.heavy

IDLE_S = 3.0  # MEDLEY_REDISPATCH_IDLE_S for the test (60 s by default)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, tiny_clip: dict[str, Any]
           ) -> Iterator[TestClient]:
    with embedded_app(tmp_path_factory.mktemp("frozen"), tiny_clip,
                      redispatch_idle_s=IDLE_S) as c:
        yield c


def test_a_frozen_consumer_is_restarted_and_the_work_completes(client: TestClient) -> None:
    service = client.app.state.service  # type: ignore[attr-defined]
    workers = service.workers
    assert workers and all(w.restarts == 0 for w in workers)
    for worker in workers:
        worker.stop()  # nothing consumes now; nothing else is told
    started = time.monotonic()
    item = client.post("/v1/items", data={"metadata": json.dumps(
        {"title": "Uploaded while the consumer was frozen"})}).json()["id"]
    time.sleep(IDLE_S / 2)
    assert client.get(f"/v1/items/{item}").json()["status"] == "queued"  # really stuck
    body = wait_for(client, item, timeout=60)
    took = time.monotonic() - started
    assert body["status"] == "ready"
    assert sum(w.restarts for w in workers) >= 1
    assert client.get("/healthz").json()["worker"]["restarts"] >= 1
    # Bounded by the idle wait, a sweep round (1 s) and the extraction itself.
    assert took < IDLE_S + 30, took
