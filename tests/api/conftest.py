"""A catalog of three topical clusters, enriched by the real text model, for recommendation
tests. Text-only items: their vectors come from MiniLM (metadata text) and the tiny CLIP text
tower, so content similarity is real where it matters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from medley.config import Precision, Settings
from tests.conftest import ADMIN_KEY, AUTH, wait_for

CLUSTERS: dict[str, list[str]] = {
    "space": [
        "A rocket launch carries astronauts to the orbiting space station",
        "Astronomers photograph distant galaxies with a space telescope",
        "The Apollo missions landed astronauts on the Moon",
        "A probe flies past Jupiter and photographs its moons",
        "Life aboard the International Space Station in orbit",
        "How rockets reach orbit: engines, fuel and staging",
        "Mars rovers search the red planet for signs of water",
        "A documentary about black holes and neutron stars",
        "Astronauts train for a spacewalk outside the station",
        "The search for planets orbiting other stars",
        "Saturn's rings seen up close by a spacecraft",
        "A night under the stars: amateur astronomy with a telescope",
    ],
    "cooking": [
        "A chef bakes sourdough bread in a wood-fired oven",
        "Quick pasta recipes with fresh tomatoes and basil",
        "How to cook the perfect steak in a cast iron pan",
        "Baking chocolate cake with a rich ganache frosting",
        "Street food tour: noodles, dumplings and grilled skewers",
        "A home cook makes curry from scratch with fresh spices",
        "Knife skills for chopping vegetables in the kitchen",
        "Grandma's recipe for apple pie with a flaky crust",
        "Fermenting kimchi and pickles at home",
        "Making fresh pizza dough and tomato sauce",
        "A pastry chef shapes croissants with layers of butter",
        "Slow-cooked beef stew with root vegetables",
    ],
    "football": [
        "Highlights of the football cup final with a late winning goal",
        "A striker scores a hat-trick in the league match",
        "Goalkeeper saves a penalty in the shoot-out",
        "Training drills for young football players",
        "The history of the world cup and its greatest teams",
        "A manager explains the tactics of pressing football",
        "Fans celebrate in the stadium after the derby win",
        "Top ten free kicks scored in the football league",
        "A defender clears the ball off the goal line",
        "Transfer news: the club signs a new midfielder",
        "Women's football final draws a record crowd",
        "Referee decisions and VAR in the football match",
    ],
}


@pytest.fixture(scope="module")
def rec_settings(tmp_path_factory: pytest.TempPathFactory, tiny_clip: dict[str, Any]) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("recs-data"),
        clip_precision=Precision.FP32,
        events_poll_interval_s=0.1,
        collab_retrain_interval_s=2.0,
        bootstrap_admin_key=ADMIN_KEY,
        **tiny_clip,
    )


@pytest.fixture(scope="module")
def catalog(rec_settings: Settings) -> Iterator[tuple[Any, dict[str, list[str]]]]:
    """(client, {cluster: [item ids]}) for a running app with 36 enriched items."""
    with TestClient(create_app(rec_settings), headers=AUTH) as client:
        ids: dict[str, list[str]] = {}
        for cluster, texts in CLUSTERS.items():
            for k, text in enumerate(texts):
                meta = {"title": text.split(":")[0][:60], "description": text,
                        "tags": [cluster, f"{cluster}-{k % 3}"],
                        "age_rating": "PG-13" if k % 4 == 3 else "all"}
                r = client.post("/v1/items", data={"metadata": json.dumps(meta)})
                assert r.status_code == 202, r.text
                ids.setdefault(cluster, []).append(r.json()["id"])
        for cluster_ids in ids.values():
            for item_id in cluster_ids:
                wait_for(client, item_id, timeout=120)
        wait_until(lambda: client.get("/healthz").json()["recommendations"]["items"] == 36)
        wait_until(lambda: serving_caught_up(client))
        yield client, ids


def serving_caught_up(client: Any) -> bool:
    """The serving table holds every item as the database now does. An item can be loaded
    while one of its modalities is still being extracted; the finished vector reaches the
    table on the sync's next pass (within a second or two), and tests that compare answers
    with exact expectations must not start in between."""
    from sqlalchemy import select

    from medley.db.models import Item

    service = client.app.state.service
    with service.runtime.db.session() as s:
        current = dict(s.execute(select(Item.id, Item.updated_at)).tuples().all())
    loaded = service.recs.sync._loaded_at
    return all(loaded.get(item_id) == at for item_id, at in current.items())


def wait_until(check: Any, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@contextmanager
def embedded_app(data_dir: Path, tiny_clip: dict[str, Any], **overrides: Any
                 ) -> Iterator[TestClient]:
    """The real app on the embedded default (tiny CLIP, in-process worker) for a test module."""
    settings = Settings(data_dir=data_dir, clip_precision=Precision.FP32,
                        stale_sweep_interval_s=1.0, bootstrap_admin_key=ADMIN_KEY,
                        **tiny_clip, **overrides)
    with TestClient(create_app(settings), headers=AUTH) as client:
        yield client
