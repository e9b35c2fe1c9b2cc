"""GET /v1/items/{id}/thumbnail on the embedded default app, with real sample media."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.api.conftest import embedded_app

# The app enriches every upload in the background with the real (tiny) models.
pytestmark = pytest.mark.heavy

PX = 160


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, tiny_clip: dict[str, Any]
) -> Iterator[TestClient]:
    with embedded_app(tmp_path_factory.mktemp("thumb-data"), tiny_clip) as c:
        yield c


def data_dir(client: TestClient) -> Path:
    return Path(client.app.state.service.settings.data_dir)  # type: ignore[attr-defined]


def create(client: TestClient, title: str, **files: Path | bytes) -> str:
    parts = {
        name: (f.name if isinstance(f, Path) else f"{name}.bin",
               io.BytesIO(f.read_bytes() if isinstance(f, Path) else f))
        for name, f in files.items()
    }
    r = client.post("/v1/items", data={"metadata": json.dumps({"title": title})},
                    files=parts or None)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def decoded(body: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(body))
    assert img.format == "JPEG"
    return img


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("photo", ["coffee", "rocket"])  # landscape and portrait
def test_image_thumbnail_is_a_small_jpeg_with_the_aspect_kept(client, samples, photo) -> None:
    src = samples.photos[photo]
    item_id = create(client, photo.title(), image=src)
    r = client.get(f"/v1/items/{item_id}/thumbnail")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    # Fetched with a key: a shared cache must not hand it to callers without one.
    assert r.headers["cache-control"] == "private, max-age=86400"
    img = decoded(r.content)
    assert img.mode == "RGB"
    assert max(img.size) == PX
    with Image.open(src) as original:
        w, h = original.size
    # Rounding one side to whole pixels moves the ratio by at most one pixel's worth.
    assert abs(img.size[0] / img.size[1] - w / h) <= 1 / min(img.size)


def test_second_request_is_served_from_the_disk_cache_and_etag_gives_304(
    client, samples
) -> None:
    src = samples.photos["chelsea"]
    item_id = create(client, "Chelsea", image=src)
    first = client.get(f"/v1/items/{item_id}/thumbnail")
    assert first.status_code == 200
    digest = sha(src.read_bytes())
    assert digest in first.headers["etag"] and str(PX) in first.headers["etag"]

    cached = list((data_dir(client) / "thumbs").rglob(f"{digest}-{PX}-*.jpg"))
    assert len(cached) == 1 and cached[0].read_bytes() == first.content
    assert not list((data_dir(client) / "thumbs").rglob("*.partial"))
    # If the second answer comes from the file, a changed file shows through.
    marker = Image.new("RGB", (7, 5), (255, 0, 0))
    buf = io.BytesIO()
    marker.save(buf, format="JPEG")
    cached[0].write_bytes(buf.getvalue())
    second = client.get(f"/v1/items/{item_id}/thumbnail")
    assert second.status_code == 200 and second.content == buf.getvalue()
    assert second.headers["etag"] == first.headers["etag"]

    etag = first.headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        r = client.get(f"/v1/items/{item_id}/thumbnail", headers={"If-None-Match": header})
        assert r.status_code == 304, header
        assert r.content == b"" and r.headers["etag"] == etag
    stale = client.get(f"/v1/items/{item_id}/thumbnail", headers={"If-None-Match": '"old"'})
    assert stale.status_code == 200 and stale.content == buf.getvalue()


def test_exif_orientation_is_applied(client) -> None:
    # Stored 320x160 landscape, tagged "rotate 90": shown upright it is portrait.
    img = Image.new("RGB", (320, 160), (10, 120, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    item_id = create(client, "Rotated", image=buf.getvalue())
    r = client.get(f"/v1/items/{item_id}/thumbnail")
    assert r.status_code == 200, r.text
    assert decoded(r.content).size == (80, 160)


def test_video_only_item_gets_a_frame(client, samples) -> None:
    item_id = create(client, "Silent cat", video=samples.silent)
    r = client.get(f"/v1/items/{item_id}/thumbnail")
    assert r.status_code == 200, r.text
    img = decoded(r.content)
    assert img.mode == "RGB" and img.size == (PX, 90)  # the sample is 640x360
    assert sha(samples.silent.read_bytes()) in r.headers["etag"]
    # A real picture, not a black or blank frame.
    lo, hi = img.convert("L").getextrema()
    assert hi - lo > 50


def test_text_only_item_is_404_with_a_readable_message(client) -> None:
    item_id = create(client, "Words only")
    r = client.get(f"/v1/items/{item_id}/thumbnail")
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "not_found"
    assert "no image or video" in error["message"]


def test_unknown_item_is_404(client) -> None:
    r = client.get("/v1/items/no-such-item/thumbnail")
    assert r.status_code == 404
    assert r.json()["error"] == {"code": "not_found",
                                 "message": "item no-such-item does not exist"}


def test_artwork_corrupted_on_disk_is_404_not_500(client, samples) -> None:
    # Its own bytes: the store shares files between identical uploads.
    data = samples.photos["flower"].read_bytes()
    item_id = create(client, "Flower", image=data)
    digest = sha(data)
    (stored,) = (data_dir(client) / "media").rglob(f"{digest}.*")
    stored.write_bytes(data[: len(data) // 3])
    r = client.get(f"/v1/items/{item_id}/thumbnail")
    assert r.status_code == 404, r.text
    message = r.json()["error"]["message"]
    assert message.startswith("this item's artwork cannot be decoded")
    assert str(stored) not in message
    assert not list((data_dir(client) / "thumbs").rglob(f"{digest}-*"))


def test_decompression_bomb_is_404_without_decoding(client, samples) -> None:
    item_id = create(client, "Bomb", image=samples.bomb_png)
    r = client.get(f"/v1/items/{item_id}/thumbnail")
    assert r.status_code == 404
    message = r.json()["error"]["message"]
    assert "cannot be decoded" in message and "megapixel" in message
