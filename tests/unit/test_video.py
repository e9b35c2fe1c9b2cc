"""ffmpeg helpers on real sample videos and on hostile files."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from enrich.base import MediaDecodeError
from enrich.video import extract_audio, extract_keyframes, probe
from medley.samples import SampleSet

MAX_S = 4 * 3600.0


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB").resize((64, 36)), dtype=np.float32)


def test_probe_describes_the_slideshow(samples: SampleSet) -> None:
    info = probe(samples.slideshow, max_seconds=MAX_S)
    assert info.has_video and info.has_audio
    assert (info.width, info.height) == (640, 360)
    assert info.duration == pytest.approx(12.0, abs=0.2)
    speech = probe(samples.speech["coffee"], max_seconds=MAX_S)
    assert speech.has_audio and not speech.has_video


def test_slideshow_keyframes_are_the_distinct_slides(samples: SampleSet, tmp_path: Path) -> None:
    frames = extract_keyframes(samples.slideshow, tmp_path, cap=8, scene_threshold=0.3)
    assert 1 < len(frames) <= 8
    assert len(frames) == 3  # first slide + two hard cuts
    for frame in frames:
        assert frame.read_bytes()[:3] == b"\xff\xd8\xff"
    a, b, c = (_pixels(f) for f in frames)
    assert min(np.abs(a - b).mean(), np.abs(b - c).mean()) > 10  # three different pictures


def test_more_scenes_than_the_cap_keeps_an_even_subset(samples: SampleSet, tmp_path: Path) -> None:
    every = extract_keyframes(samples.tour, tmp_path / "all", cap=8, scene_threshold=0.3)
    assert 4 <= len(every) <= 8
    capped = extract_keyframes(samples.tour, tmp_path / "cap", cap=3, scene_threshold=0.3)
    assert len(capped) == 3
    # The subset starts at the first scene and ends at the last one.
    assert np.abs(_pixels(capped[0]) - _pixels(every[0])).mean() < 5
    assert np.abs(_pixels(capped[-1]) - _pixels(every[-1])).mean() < 5


def test_no_scene_change_falls_back_to_evenly_spaced_frames(
    samples: SampleSet, tmp_path: Path
) -> None:
    frames = extract_keyframes(samples.silent, tmp_path, cap=4, scene_threshold=0.3)
    assert len(frames) == 4


def test_audio_is_16k_mono_wav(samples: SampleSet, tmp_path: Path) -> None:
    out = extract_audio(samples.slideshow, tmp_path / "a.wav")
    assert out == tmp_path / "a.wav"
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert w.getnframes() / 16000 == pytest.approx(12.0, abs=0.2)
        samples_ = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    assert np.abs(samples_).max() > 1000  # the voice-over, not silence
    assert not list(tmp_path.glob("*.partial"))


def test_audio_from_a_plain_wav(samples: SampleSet, tmp_path: Path) -> None:
    out = extract_audio(samples.speech["coffee"], tmp_path / "speech.wav")
    assert out is not None
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels()) == (16000, 1)


def test_video_without_audio_gives_none(samples: SampleSet, tmp_path: Path) -> None:
    assert extract_audio(samples.silent, tmp_path / "none.wav") is None
    assert not (tmp_path / "none.wav").exists()


@pytest.mark.parametrize(
    ("attr", "reason"),
    [
        ("garbage", "not a recognised audio or video format"),
        ("empty", "media file is empty"),
        ("truncated_mp4", "truncated"),
        ("png_as_wav", "no audio or video stream"),
        ("bomb_png", "no audio or video stream"),
    ],
)
def test_undecodable_files_raise_readable_errors(
    samples: SampleSet, tmp_path: Path, attr: str, reason: str
) -> None:
    path = getattr(samples, attr)
    with pytest.raises(MediaDecodeError, match=reason):
        extract_keyframes(path, tmp_path, cap=4, scene_threshold=0.3)
    with pytest.raises(MediaDecodeError, match=reason):
        extract_audio(path, tmp_path / "x.wav")
    assert not list(tmp_path.glob("*.jpg")) and not (tmp_path / "x.wav").exists()


def test_audio_file_has_no_keyframes(samples: SampleSet, tmp_path: Path) -> None:
    with pytest.raises(MediaDecodeError, match="no video stream"):
        extract_keyframes(samples.speech["coffee"], tmp_path, cap=4, scene_threshold=0.3)


def test_too_long_media_is_refused(samples: SampleSet, tmp_path: Path) -> None:
    with pytest.raises(MediaDecodeError, match=r"12\.0 seconds long, over the 5\.0 seconds limit"):
        extract_keyframes(samples.slideshow, tmp_path, 4, 0.3, max_seconds=5)
    with pytest.raises(MediaDecodeError, match="over the"):
        extract_audio(samples.slideshow, tmp_path / "a.wav", max_seconds=5)


def test_hostile_file_names_are_just_names(samples: SampleSet, tmp_path: Path) -> None:
    # Without a file: URL, "pipe:0" would be read as a protocol and "-y" as an option.
    for name in ("pipe:0.mp4", "-y", "a b;$(touch pwned)|'q\".mp4"):
        path = tmp_path / name
        shutil.copyfile(samples.slideshow, path)
        assert probe(path, max_seconds=MAX_S).has_audio
        assert len(extract_keyframes(path, tmp_path / "kf", cap=2, scene_threshold=0.3)) == 2
        assert extract_audio(path, tmp_path / "out" / f"{name}.wav") is not None
    assert not (tmp_path / "pwned").exists()


def test_decoding_past_the_timeout_is_a_decode_error(samples: SampleSet, tmp_path: Path) -> None:
    with pytest.raises(MediaDecodeError, match="took longer than"):
        extract_keyframes(samples.tour, tmp_path, 8, 0.3, timeout_s=0.001)
