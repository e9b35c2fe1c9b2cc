"""The contract as a client team meets it: a client generated with openapi-python-client from the
live server's `/openapi.json`, in a temporary folder, drives the README's loop through its
typed models and functions (keys, upload, events, recommendations, search) against the real
app under uvicorn. No request is written by hand."""

from __future__ import annotations

import importlib
import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw
from pydantic import SecretStr

from medley.config import Precision, Settings
from tests.conftest import ADMIN_KEY
from tests.support.live import serving, wait

pytestmark = pytest.mark.heavy  # real text model, a live server, a generator run

PACKAGE = "medley_client"
# The one operation the generator leaves out: a JPEG answer, which it has no type for (it
# warns and omits it). Any other warning is a gap in the schema.
OMITTED = {"GET /v1/items/{item_id}/thumbnail"}

# The README's catalog, in small: three space items, two others, and a photo with a caption.
CATALOG = {
    "rocket": ("Falcon 9 Launch", "A rocket launch carries a satellite into orbit.",
               ["space", "rocket"]),
    "hubble": ("Hubble Deep Field", "A space telescope photographs thousands of distant "
               "galaxies.", ["space", "astronomy"]),
    "astronaut": ("Astronaut Training", "Astronauts train for a mission to the space station "
                  "in orbit.", ["space", "astronaut"]),
    "pasta": ("Pasta Night", "Cooking fresh pasta with tomato sauce and basil in the kitchen.",
              ["cooking"]),
    "dahlia": ("Orange Dahlia", "An orange dahlia flower blooms in the garden.",
               ["garden", "flower"]),
    "coffee": ("Coffee break", "A cup of coffee on a saucer", ["food"]),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_clip: dict[str, Any]) -> Iterator[str]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("client-data"),
                        clip_precision=Precision.FP32, events_poll_interval_s=0.1,
                        bootstrap_admin_key=SecretStr(ADMIN_KEY), **tiny_clip)
    from api.app import create_app

    with serving(create_app(settings)) as url:
        wait(lambda: _healthy(url), 120, "/healthz answering with models loaded")
        yield url


def _served(url: str) -> int:
    """Items in the serving table (`/healthz`, an operator's route outside the loop)."""
    return int(httpx.get(f"{url}/healthz", timeout=5).json()["recommendations"]["items"])


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=5).json().get("status") in ("ok", "degraded")
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def api(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The generated package, imported from its temporary folder."""
    folder = tmp_path_factory.mktemp("generated")
    schema = folder / "openapi.json"
    schema.write_text(httpx.get(f"{server}/openapi.json", timeout=60).raise_for_status().text)
    # The venv's bin first: the generator formats its output with ruff, as it would for a team.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(schema),
         "--output-path", str(folder / PACKAGE), "--meta", "none"],
        capture_output=True, text=True, timeout=300, env=env, cwd=folder)
    assert run.returncode == 0, run.stdout + run.stderr
    skipped = set(re.findall(r"WARNING parsing (\S+ \S+) within", run.stdout + run.stderr))
    assert skipped == OMITTED, run.stdout + run.stderr
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def _op(api: Any, tag: str, name: str) -> Any:
    """An operation's module, as the client team imports it (`medley_client.api.<tag>.<op>`)."""
    return importlib.import_module(f"{api.__name__}.api.{tag}.{name}")


def _photo() -> bytes:
    image = Image.new("RGB", (96, 64), (120, 80, 40))
    ImageDraw.Draw(image).ellipse((30, 14, 66, 50), fill=(240, 240, 235))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_a_generated_client_runs_the_readme_loop(api: Any, server: str) -> None:
    models = importlib.import_module(f"{api.__name__}.models")
    types = importlib.import_module(f"{api.__name__}.types")

    def as_(key: str) -> Any:
        return api.AuthenticatedClient(base_url=server, token=key, timeout=httpx.Timeout(60))

    # Keys and roles: an admin makes a content team's key and a client app's.
    admin = as_(ADMIN_KEY)
    create_key = _op(api, "keys", "create_key_v1_keys_post")
    made = {role: create_key.sync(client=admin, body=models.KeyIn(role=role, name=name))
            for role, name in ((models.Role.CONTENT, "catalog team"),
                               (models.Role.CLIENT, "tv app"))}
    for role, key in made.items():
        assert isinstance(key, models.KeyCreated) and key.role == role, key
        assert key.key.startswith("mdl_")
    listed = _op(api, "keys", "list_keys_v1_keys_get").sync(client=admin)
    assert {k.name for k in listed.keys} >= {"catalog team", "tv app"}
    content, app = as_(made[models.Role.CONTENT].key), as_(made[models.Role.CLIENT].key)
    denied = _op(api, "items", "list_items_v1_items_get").sync_detailed(client=app, limit=2)
    assert denied.status_code == 403
    assert isinstance(denied.parsed, models.Error) and denied.parsed.error.code == "forbidden"

    # Upload: typed metadata as the JSON part, a binary file part for the photo.
    upload = _op(api, "items", "upload_item_v1_items_post")
    ids: dict[str, str] = {}
    for name, (title, description, tags) in CATALOG.items():
        meta = models.ItemMetadata(title=title, description=description, tags=tags,
                                   language="en")
        body = models.BodyUploadItemV1ItemsPost(metadata=json.dumps(meta.to_dict()))
        if name == "coffee":
            body.image = types.File(payload=io.BytesIO(_photo()), file_name="coffee.png",
                                    mime_type="image/png")
        accepted = upload.sync(client=content, body=body)
        assert isinstance(accepted, models.Accepted), accepted
        ids[name] = accepted.id
    get_item = _op(api, "items", "get_item_v1_items_item_id_get")

    def done(item_id: str) -> Any:
        item = get_item.sync(item_id=item_id, client=content)
        assert isinstance(item, models.ItemOut), item
        return item if item.status in ("ready", "partial", "failed") and item.indexed else None

    items = {name: wait(lambda i=item_id: done(i), 180, f"{name} enriched and indexed")
             for name, item_id in ids.items()}
    assert {name: item.status for name, item in items.items()} == dict.fromkeys(ids, "ready")
    photo = items["coffee"]
    assert photo.modalities["image"].status == "ready" and photo.media["image"].size > 0
    wait(lambda: _served(server) == len(ids), 30, "every item served")

    # Events: typed, each validated on its own; the one naming no item comes back with a reason.
    now = datetime.now(UTC)
    at = [now - timedelta(minutes=10 - k) for k in range(4)]
    sent = _op(api, "recommendations", "post_events_v1_events_post").sync(
        client=app, body=models.EventBatch(events=[
            models.EventIn(event_id="e-1", user_id="ana", item_id=ids["rocket"],
                           type_=models.EventType.VIEW, value=95, timestamp=at[0],
                           context=models.Context(device="tv", surface="home")),
            models.EventIn(event_id="e-2", user_id="ana", item_id=ids["rocket"],
                           type_=models.EventType.LIKE, timestamp=at[1]),
            models.EventIn(event_id="e-3", user_id="ana", item_id=ids["hubble"],
                           type_=models.EventType.COMPLETE, timestamp=at[2]),
            models.EventIn(event_id="e-4", user_id="ana", item_id="no-such-item",
                           type_=models.EventType.LIKE, timestamp=at[3]),
        ]))
    assert isinstance(sent, models.EventsOut), sent
    assert sent.accepted == 3 and sent.duplicates == []
    assert [(r.index, r.event_id) for r in sent.rejected] == [(3, "e-4")]
    assert sent.rejected[0].reason.startswith("item_id")

    # Recommendations: what to show Ana next, once her events count, and why.
    recommend = _op(api, "recommendations", "recommendations_v1_users_user_id_recommendations_get")

    def personal() -> Any:
        answer = recommend.sync(user_id="ana", client=app, limit=5)
        assert isinstance(answer, models.AnswerOut), answer
        reasons = [r for i in answer.items for r in i.reasons]
        return answer if any(r.startswith("because you liked") for r in reasons) else None

    answer = wait(personal, 30, "a for-you answer from Ana's events")
    assert answer.fallback is False and answer.recommendation_id
    got = [i.item_id for i in answer.items]
    assert got and set(got) <= set(ids.values()) - {ids["rocket"], ids["hubble"]}
    assert ids["astronaut"] in got, [i.title for i in answer.items]  # the space item left
    assert all(isinstance(i, models.ScoredOut) and i.reasons for i in answer.items)

    # Search, for Ana.
    found = _op(api, "recommendations", "search_v1_search_get").sync(
        client=app, q="a cup of coffee", limit=3, user_id="ana")
    assert isinstance(found, models.AnswerOut), found
    assert found.items and found.items[0].item_id == ids["coffee"], found

    # Then report what she did with an answer: the event carries its recommendation_id.
    liked = _op(api, "recommendations", "post_events_v1_events_post").sync(
        client=app, body=models.EventBatch(events=[models.EventIn(
            event_id=f"e-{uuid.uuid4().hex[:8]}", user_id="ana", item_id=got[0],
            type_=models.EventType.LIKE, timestamp=datetime.now(UTC),
            recommendation_id=answer.recommendation_id)]))
    assert isinstance(liked, models.EventsOut) and liked.accepted == 1, liked
