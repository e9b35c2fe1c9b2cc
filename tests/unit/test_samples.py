"""The sample media are real files of the types they claim (or, for hostile ones, do not)."""

from __future__ import annotations

import json
import struct
import subprocess
import wave
from pathlib import Path

import pytest

from enrich.video import probe
from medley.demo import demo_catalog
from medley.samples import NARRATIONS, PHOTO_SOURCES, SampleSet, build_samples

PNG = b"\x89PNG\r\n\x1a\n"
JPEG = b"\xff\xd8\xff"


def _head(path: Path, n: int = 16) -> bytes:
    with path.open("rb") as fh:
        return fh.read(n)


def _codecs(path: Path) -> list[str]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(out.split())


def test_photos_are_png_or_jpeg_with_a_licence(samples: SampleSet) -> None:
    assert set(samples.photos) >= {"astronaut", "coffee", "chelsea", "rocket", "china", "flower"}
    for name, path in samples.photos.items():
        assert _head(path).startswith(PNG if path.suffix == ".png" else JPEG), name
        assert samples.licences[name] in {"public domain", "CC0", "CC BY 2.0"}
    recorded = json.loads(samples.sources_file.read_text())
    assert set(recorded) == set(PHOTO_SOURCES)
    assert recorded["china"]["licence"] == "CC BY 2.0"


def test_speech_is_wav_with_seconds_of_sound(samples: SampleSet) -> None:
    assert {"coffee", "space", "tour"} <= set(samples.speech)
    for path in samples.speech.values():
        head = _head(path, 12)
        assert head[:4] == b"RIFF" and head[8:12] == b"WAVE"
        with wave.open(str(path)) as w:
            assert w.getnframes() / w.getframerate() > 2.0


def test_videos_are_h264_aac_mp4s_and_the_silent_one_has_no_audio(samples: SampleSet) -> None:
    for path in (samples.slideshow, samples.tour, samples.silent):
        assert _head(path)[4:8] == b"ftyp"
    assert _codecs(samples.slideshow) == ["aac", "h264"]
    assert _codecs(samples.silent) == ["h264"]
    slides = probe(samples.slideshow, max_seconds=3600)
    assert slides.has_video and slides.has_audio and slides.duration == pytest.approx(12, abs=0.2)
    tour = probe(samples.tour, max_seconds=3600)
    assert tour.has_audio and tour.duration == pytest.approx(30, abs=0.2)
    silent = probe(samples.silent, max_seconds=3600)
    assert silent.has_video and not silent.has_audio


def test_hostile_files_are_what_they_pretend_not_to_be(samples: SampleSet) -> None:
    assert samples.empty.stat().st_size == 0
    assert _head(samples.truncated_png).startswith(PNG)
    assert samples.truncated_png.stat().st_size < samples.photos["coffee"].stat().st_size
    assert _head(samples.truncated_mp4)[4:8] == b"ftyp"
    bomb = samples.bomb_png.read_bytes()
    assert bomb.startswith(PNG) and len(bomb) < 200_000
    assert struct.unpack(">II", bomb[16:24]) == (30000, 30000)  # IHDR width, height
    assert samples.png_as_wav.suffix == ".wav" and _head(samples.png_as_wav).startswith(PNG)
    garbage = samples.garbage.read_bytes()
    assert len(garbage) == 64 * 1024 and not garbage.startswith((PNG, JPEG, b"RIFF"))


def test_build_is_idempotent(samples: SampleSet) -> None:
    files = sorted(p for p in samples.root.rglob("*") if p.is_file())
    before = {p: p.stat().st_mtime_ns for p in files}
    again = build_samples(samples.root)
    assert again == samples
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert not list(samples.root.rglob("*.tmp*"))  # no leftovers from atomic writes


def test_demo_catalog_rows_point_at_real_files(samples: SampleSet) -> None:
    manifest = demo_catalog(samples.root)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(rows) >= 8
    for row in rows:
        assert {"title", "description", "tags", "language", "age_rating", "published_at"} <= set(
            row
        )
        for kind in ("image", "audio", "video"):
            if kind in row:
                assert (manifest.parent / row[kind]).is_file()
    coffee = next(r for r in rows if r["title"] == "Coffee Break")
    # An editorial blurb, not the narration: text and dialogue say different things.
    assert coffee["description"] and coffee["description"] != NARRATIONS["coffee"]
    assert coffee["image"].endswith("coffee.png") and coffee["audio"].endswith("coffee.wav")
    assert any(r.get("video", "").endswith("collection_tour_30s.mp4") for r in rows)
    assert len({r["external_id"] for r in rows}) == len(rows)
