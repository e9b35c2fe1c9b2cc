"""One function per modality: input paths or text in, a vector (and a transcript) out."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from enrich.registry import MODALITY_FAMILY, Family
from medley import fusion, repo
from medley.config import ModelSettings
from medley.domain import MediaKind, Modality, ModalityStatus

if TYPE_CHECKING:
    from workers.runtime import Runtime


@dataclass(frozen=True)
class Extracted:
    result: repo.Outcome
    transcript: dict[str, Any] | None = field(default=None)


def model_key(settings: ModelSettings, m: Modality) -> str:
    """Identifies the weights behind a modality without loading them (for reuse checks)."""
    if MODALITY_FAMILY[m] is Family.CLIP:
        weights = str(settings.clip_checkpoint or settings.clip_pretrained)
        return f"open_clip:{settings.clip_model}:{weights}:{settings.clip_precision}"
    text = f"sentence-transformers:{settings.text_model or 'all-MiniLM-L6-v2'}"
    if m is Modality.SPEECH:
        return f"whisper:{settings.whisper_backend}:{settings.whisper_model or 'tiny.en'}|{text}"
    return text


def _ready(vector: Any, version: str, **timings: float) -> Extracted:
    return Extracted(repo.Outcome(ModalityStatus.READY, vector=vector, model_version=version,
                                  timings=timings))


# model_s below: the time in the shared batch (waiting for it to fill, and the model call).
def _text(rt: Runtime, job: dict[str, Any]) -> Extracted:
    model = rt.models.load(Family.TEXT)
    t0 = time.perf_counter()
    vec = rt.batcher("text", model.embed)(job["text"])
    return _ready(vec, model.info.version, model_s=time.perf_counter() - t0)


def _clip_text(rt: Runtime, job: dict[str, Any]) -> Extracted:
    clip = rt.models.load(Family.CLIP)
    t0 = time.perf_counter()
    vec = rt.batcher("clip-text", clip.text_embedder().embed)(job["text"])
    return _ready(vec, clip.info.version, model_s=time.perf_counter() - t0)


def _image(rt: Runtime, job: dict[str, Any]) -> Extracted:
    from enrich.images import open_image

    t0 = time.perf_counter()
    img = open_image(Path(job["media"][MediaKind.IMAGE.value]), rt.settings.max_image_pixels)
    clip = rt.models.load(Family.CLIP)
    t1 = time.perf_counter()
    vec = rt.batcher("clip-image", clip.image_embedder().embed)(img)
    return _ready(vec, clip.info.version, decode_s=t1 - t0, model_s=time.perf_counter() - t1)


def _video(rt: Runtime, job: dict[str, Any]) -> Extracted:
    from enrich.images import open_image
    from enrich.video import extract_keyframes

    s = rt.settings
    scratch = rt.store.scratch_dir()
    try:
        t0 = time.perf_counter()
        frames = extract_keyframes(Path(job["media"][MediaKind.VIDEO.value]), scratch,
                                   cap=s.keyframe_cap, scene_threshold=s.scene_threshold,
                                   max_seconds=s.max_media_seconds)
        images = [open_image(f, s.max_image_pixels) for f in frames]
        clip = rt.models.load(Family.CLIP)
        t1 = time.perf_counter()
        rows = clip.image_embedder().embed(images)
        vec = fusion.mean_pool(rows)
        return _ready(vec, clip.info.version, keyframes_s=t1 - t0,
                      model_s=time.perf_counter() - t1, keyframes=float(len(frames)))
    finally:
        rt.store.drop_scratch(scratch)


def _speech(rt: Runtime, job: dict[str, Any]) -> Extracted:
    from enrich.video import extract_audio

    media = job["media"]
    scratch = rt.store.scratch_dir()
    try:
        t0 = time.perf_counter()
        if MediaKind.AUDIO.value in media:
            audio: Path | None = Path(media[MediaKind.AUDIO.value])
        else:
            audio = extract_audio(Path(media[MediaKind.VIDEO.value]), scratch / "track.wav",
                                  max_seconds=rt.settings.max_media_seconds)
        if audio is None:
            return Extracted(repo.Outcome(ModalityStatus.ABSENT,
                                          error="the video has no audio track"))
        whisper = rt.models.load(Family.WHISPER)
        t1 = time.perf_counter()
        tr = whisper.transcribe(audio)
        t2 = time.perf_counter()
        transcript = {
            "language": tr.language, "text": tr.text, "duration": tr.duration,
            "segments": [{"start": g.start, "end": g.end, "text": g.text} for g in tr.segments],
            "model_name": whisper.info.name, "model_version": whisper.info.version,
        }
        timings = {"audio_s": t1 - t0, "transcribe_s": t2 - t1, "audio_seconds": tr.duration}
        if not tr.text.strip():
            return Extracted(repo.Outcome(ModalityStatus.ABSENT, error="no speech was found",
                                          timings=timings), transcript)
        text_model = rt.models.load(Family.TEXT)
        vec = text_model.embed([tr.text])[0]
        timings["embed_s"] = time.perf_counter() - t2
        out = _ready(vec, f"{whisper.info.version} + {text_model.info.version}", **timings)
        return Extracted(out.result, transcript)
    finally:
        rt.store.drop_scratch(scratch)


EXTRACTORS: dict[Modality, Callable[[Runtime, dict[str, Any]], Extracted]] = {
    Modality.TEXT: _text,
    Modality.CLIP_TEXT: _clip_text,
    Modality.IMAGE: _image,
    Modality.VIDEO: _video,
    Modality.SPEECH: _speech,
}
