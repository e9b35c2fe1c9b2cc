"""No CLIP weights reachable (the default hub tag, offline): the service says so and keeps
working on the other modalities. It never falls back to random weights."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from medley.config import Settings
from tests.conftest import ADMIN_KEY, AUTH, wait_for

pytestmark = pytest.mark.heavy


def test_unloadable_clip_marks_image_unavailable_and_text_still_works(
    tmp_path, samples, model_cache
) -> None:
    settings = Settings(data_dir=tmp_path / "data", model_cache_dir=model_cache,
                        clip_model="ViT-B-32",
                        clip_pretrained="laion2b_s34b_b79k", stale_sweep_interval_s=1.0,
                        bootstrap_admin_key=ADMIN_KEY)
    with TestClient(create_app(settings), headers=AUTH) as client:
        deadline = time.monotonic() + 120
        health: dict = {}
        while time.monotonic() < deadline:
            health = client.get("/healthz").json()
            if "clip" in health["models"]:
                break
            time.sleep(0.5)
        assert health["status"] == "degraded"
        assert health["models"]["clip"]["status"] == "unavailable"
        assert "laion2b_s34b_b79k" in health["models"]["clip"]["detail"]

        r = client.post(
            "/v1/items",
            data={"metadata": json.dumps({"title": "Astronaut", "description": "in orbit"})},
            files={"image": ("a.png", samples.photos["astronaut"].read_bytes())},
        )
        assert r.status_code == 202
        got = wait_for(client, r.json()["id"])
        assert got["modalities"]["image"]["status"] == "unavailable"
        assert got["modalities"]["clip_text"]["status"] == "unavailable"
        assert "laion2b_s34b_b79k" in got["modalities"]["image"]["error"]
        assert got["modalities"]["text"]["status"] == "ready"
        assert got["status"] == "partial"
