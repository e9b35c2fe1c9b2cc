"""The upload API on the embedded default: real models (tiny random CLIP from a fixture, packaged
MiniLM and Whisper tiny.en), in-process Celery worker, embedded index, SQLite."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import embedded_app
from tests.conftest import wait_for

pytestmark = pytest.mark.heavy

LIMIT = 3 * 1024 * 1024


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, tiny_clip: dict[str, Any]
) -> Iterator[TestClient]:
    with embedded_app(tmp_path_factory.mktemp("api-data"), tiny_clip,
                      max_upload_bytes=LIMIT) as c:
        yield c


def post(client: TestClient, meta: dict[str, Any] | str, **files: Path | bytes) -> Any:
    parts: dict[str, Any] = {}
    for name, f in files.items():
        data = f.read_bytes() if isinstance(f, Path) else f
        parts[name] = (f.name if isinstance(f, Path) else f"{name}.bin", io.BytesIO(data))
    raw = meta if isinstance(meta, str) else json.dumps(meta)
    return client.post("/v1/items", data={"metadata": raw}, files=parts or None)


def upload_done(client: TestClient, meta: dict[str, Any], **files: Path | bytes) -> dict[str, Any]:
    r = post(client, meta, **files)
    assert r.status_code == 202, r.text
    assert r.json()["status"] in ("queued", "processing")
    return wait_for(client, r.json()["id"])


def test_image_audio_and_video_become_ready_with_transcripts(client, samples) -> None:
    image = upload_done(
        client, {"title": "Coffee", "tags": ["food"]}, image=samples.photos["coffee"]
    )
    assert image["status"] == "ready"
    assert image["modalities"]["image"]["dim"] == 64
    assert image["modalities"]["text"]["dim"] == 384
    assert "all-MiniLM-L6-v2" in image["modalities"]["text"]["model"]

    audio_path = next(iter(samples.speech.values()))
    audio = upload_done(client, {"title": "Narration"}, audio=audio_path)
    assert audio["status"] == "ready", audio
    tr = audio["transcript"]
    assert tr["language"] == "en" and len(tr["text"].split()) >= 3
    assert tr["segments"] and all(s["end"] >= s["start"] for s in tr["segments"])
    assert "whisper" in audio["modalities"]["speech"]["model"]

    video = upload_done(client, {"title": "Space slideshow"}, video=samples.slideshow)
    assert video["status"] == "ready", video
    assert video["modalities"]["video"]["timings"]["keyframes"] > 1
    assert video["modalities"]["speech"]["status"] == "ready"
    assert video["transcript"]["text"]
    assert video["timings"]["upload_to_done_s"] > 0


def test_video_without_audio_track_has_no_speech_and_is_ready(client, samples) -> None:
    got = upload_done(client, {"title": "Silent"}, video=samples.silent)
    assert got["status"] == "ready"
    assert got["modalities"]["speech"]["status"] == "absent"
    assert "no audio track" in got["modalities"]["speech"]["error"]


@pytest.mark.parametrize(
    ("sample", "part", "reason"),
    [
        ("truncated_png", "image", "truncated"),
        ("bomb_png", "image", "megapixel"),
        ("empty", "image", "empty"),
        ("truncated_mp4", "video", ""),
    ],
)
def test_broken_media_fails_its_modality_and_the_rest_completes(
    client, samples, sample: str, part: str, reason: str
) -> None:
    got = upload_done(client, {"title": f"Broken {sample}"}, **{part: getattr(samples, sample)})
    mod = got["modalities"][part]
    assert mod["status"] == "failed"
    assert reason in mod["error"] and mod["error"]
    assert got["modalities"]["text"]["status"] == "ready"
    assert got["status"] == "partial"


@pytest.mark.parametrize("part", ["audio", "video"])
def test_mislabeled_media_is_415_and_creates_nothing(client, samples, part: str) -> None:
    before = client.get("/v1/items").json()["total"]
    r = post(client, {"title": "x"}, **{part: samples.png_as_wav})
    assert r.status_code == 415
    assert "image/png" in r.json()["error"]["message"]
    assert client.get("/v1/items").json()["total"] == before


def test_garbage_bytes_are_415(client, samples) -> None:
    r = post(client, {"title": "x"}, image=samples.garbage)
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media"


def test_oversize_upload_is_413_and_keeps_no_file(client, samples) -> None:
    big = samples.photos["coffee"].read_bytes() + b"\0" * (LIMIT + 1)
    r = post(client, {"title": "big"}, image=big)
    assert r.status_code == 413
    settings = client.app.state.service.settings  # type: ignore[attr-defined]
    assert list((settings.media_dir / "tmp").glob("*")) == []


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ({"description": "no title"}, "title"),
        ({"title": ""}, "title"),
        ({"title": "x", "surprise": 1}, "surprise"),
        ({"title": "x", "tags": "not-a-list"}, "tags"),
        ({"title": "x", "published_at": "yesterday"}, "published_at"),
    ],
)
def test_bad_metadata_is_422_with_the_field_named(client, meta, needle: str) -> None:
    r = post(client, meta)
    assert r.status_code == 422
    assert needle in r.json()["error"]["message"]


def test_missing_metadata_part_is_422(client) -> None:
    r = client.post("/v1/items", files={"image": ("a.png", io.BytesIO(b"x"))})
    assert r.status_code == 422 and "metadata" in r.json()["error"]["message"]


def test_identical_media_is_not_extracted_again(client, samples) -> None:
    first = upload_done(client, {"title": "Cat"}, image=samples.photos["chelsea"])
    second = upload_done(
        client, {"title": "Same cat, other title"}, image=samples.photos["chelsea"]
    )
    assert second["modalities"]["image"]["reused_from"] == first["id"]
    assert second["modalities"]["image"]["status"] == "ready"
    assert second["modalities"]["text"]["reused_from"] is None  # different text: embedded


def test_patch_reembeds_only_changed_text(client, samples) -> None:
    item = upload_done(
        client, {"title": "Rocket", "tags": ["space"]}, image=samples.photos["rocket"]
    )
    before = item["modalities"]
    r = client.patch(f"/v1/items/{item['id']}", json={"tags": ["space", "launch"]})
    assert r.status_code == 200 and r.json()["tags"] == ["space", "launch"]
    after = wait_for(client, item["id"])["modalities"]
    assert after["text"]["finished_at"] != before["text"]["finished_at"]
    assert after["clip_text"]["finished_at"] == before["clip_text"]["finished_at"]
    assert after["image"]["finished_at"] == before["image"]["finished_at"]
    assert client.patch(f"/v1/items/{item['id']}", json={"bogus": 1}).status_code == 422
    assert client.patch("/v1/items/nope", json={"title": "x"}).status_code == 404


def test_delete_removes_item_vectors_and_media(client, samples) -> None:
    item = upload_done(client, {"title": "Flower"}, image=samples.photos["flower"])
    service = client.app.state.service  # type: ignore[attr-defined]
    index = service.runtime.index()
    assert index.retrieve([item["id"]])
    media = list(service.settings.media_dir.glob(f"*/{item['media']['image']['sha256']}.*"))
    assert media
    assert client.delete(f"/v1/items/{item['id']}").status_code == 204
    assert client.get(f"/v1/items/{item['id']}").status_code == 404
    assert not media[0].exists()
    import time

    deadline = time.monotonic() + 20
    while index.retrieve([item["id"]]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert index.retrieve([item["id"]]) == []
    assert client.delete(f"/v1/items/{item['id']}").status_code == 404


def test_list_pages_and_filters_by_status(client) -> None:
    r = client.get("/v1/items", params={"limit": 2})
    body = r.json()
    assert r.status_code == 200 and len(body["items"]) <= 2 and body["total"] >= 2
    assert body["next_offset"] == 2
    partial = client.get("/v1/items", params={"status": "partial"}).json()
    assert partial["items"] and all(i["status"] == "partial" for i in partial["items"])
    assert client.get("/v1/items", params={"status": "bogus"}).status_code == 422
    assert client.get("/v1/items", params={"limit": 0}).status_code == 422
    capped = client.get("/v1/items", params={"limit": 10_000}).json()
    assert capped["limit"] == 200


def test_unknown_item_is_a_readable_404(client) -> None:
    r = client.get("/v1/items/does-not-exist")
    assert r.status_code == 404
    assert r.json() == {
        "error": {"code": "not_found", "message": "item does-not-exist does not exist"}
    }


def test_healthz_reports_models(client) -> None:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = client.get("/healthz").json()
        if "clip" in body["models"]:
            break
        time.sleep(0.5)
    assert body["status"] == "ok", body
    assert body["models"]["text"]["status"] == "ok"


def test_truncated_audio_fails_speech_with_a_reason(client, samples) -> None:
    wav = next(iter(samples.speech.values())).read_bytes()[:30]  # RIFF header, no samples
    got = upload_done(client, {"title": "Cut short"}, audio=wav)
    assert got["modalities"]["speech"]["status"] == "failed"
    assert "audio" in got["modalities"]["speech"]["error"]
    assert got["status"] == "partial"


def test_hostile_file_name_is_only_a_label(client, samples) -> None:
    data = samples.photos["astronaut"].read_bytes()
    r = client.post(
        "/v1/items",
        data={"metadata": json.dumps({"title": "evil"})},
        files={"image": ("../../../../etc/passwd.png", io.BytesIO(data))},
    )
    assert r.status_code == 202
    got = wait_for(client, r.json()["id"])
    media_dir = client.app.state.service.settings.media_dir  # type: ignore[attr-defined]
    stored = list(media_dir.glob(f"*/{got['media']['image']['sha256']}.png"))
    assert len(stored) == 1 and stored[0].resolve().is_relative_to(media_dir.resolve())
    assert got["media"]["image"]["filename"] == "../../../../etc/passwd.png"
