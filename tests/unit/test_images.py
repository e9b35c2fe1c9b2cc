"""Safe image decoding: real photos decode, bombs are refused before decoding, broken files fail
with a readable reason."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from enrich.base import MediaDecodeError
from enrich.images import open_image
from medley.samples import SampleSet, bomb_png_bytes

LIMIT = 64_000_000


def test_real_photos_decode_to_rgb(samples: SampleSet) -> None:
    for name, path in samples.photos.items():
        img = open_image(path, LIMIT)
        assert img.mode == "RGB", name
        with Image.open(path) as raw:
            assert img.size == raw.size


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to decode pixels fail the test."""

    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_bomb_is_refused_before_decoding(samples: SampleSet, no_decoding: None) -> None:
    started = time.monotonic()
    with pytest.raises(MediaDecodeError, match=r"900 megapixels, over the 64 megapixel limit"):
        open_image(samples.bomb_png, LIMIT)
    assert time.monotonic() - started < 2.0


def test_bomb_under_pils_own_limit_is_refused_by_ours(tmp_path: Path, no_decoding: None) -> None:
    # 100 MP: PIL only warns (its hard limit is ~179 MP), so our check must catch it.
    path = tmp_path / "hundred.png"
    path.write_bytes(bomb_png_bytes(10000, 10000))
    with pytest.raises(MediaDecodeError, match=r"100 megapixels"):
        open_image(path, LIMIT)


def test_the_limit_is_the_callers(samples: SampleSet, no_decoding: None) -> None:
    with pytest.raises(MediaDecodeError, match=r"0\.24 megapixels, over the 0\.1 megapixel"):
        open_image(samples.photos["coffee"], 100_000)


@pytest.mark.parametrize(
    ("attr", "reason"),
    [
        ("truncated_png", "image is truncated"),
        ("empty", "image file is empty"),
        ("garbage", "not a recognised image format"),
        ("truncated_mp4", "not a recognised image format"),
    ],
)
def test_broken_files_raise_readable_errors(samples: SampleSet, attr: str, reason: str) -> None:
    with pytest.raises(MediaDecodeError, match=reason):
        open_image(getattr(samples, attr), LIMIT)


def test_audio_is_not_an_image(samples: SampleSet) -> None:
    with pytest.raises(MediaDecodeError, match="not a recognised image format"):
        open_image(samples.speech["coffee"], LIMIT)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaDecodeError, match="could not be read"):
        open_image(tmp_path / "nope.png", LIMIT)


def test_transparency_becomes_white_and_grey_becomes_rgb(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent black
    rgba.save(tmp_path / "alpha.png")
    img = open_image(tmp_path / "alpha.png", LIMIT)
    assert img.getpixel((0, 0)) == (255, 255, 255) and img.getpixel((1, 1)) == (255, 0, 0)
    Image.new("L", (3, 2), 128).save(tmp_path / "grey.jpg")
    grey = open_image(tmp_path / "grey.jpg", LIMIT)
    assert grey.mode == "RGB" and grey.size == (3, 2)


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (6, 2), (0, 128, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    img.save(tmp_path / "rotated.jpg", exif=exif)
    assert open_image(tmp_path / "rotated.jpg", LIMIT).size == (2, 6)
