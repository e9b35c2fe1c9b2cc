"""The small interface every model family implements."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

T_contra = TypeVar("T_contra", contravariant=True)


class ModelUnavailable(RuntimeError):
    """The configured weights could not be loaded; the modality is marked `unavailable`."""


class UnknownModel(ValueError):
    """A model family or backend name the factory does not know."""


class MediaDecodeError(ValueError):
    """The input could not be decoded (truncated, corrupt, bomb...); the message is for users."""


@dataclass(frozen=True)
class ModelInfo:
    family: str  # "clip-image", "clip-text", "text", "whisper"
    name: str  # e.g. "ViT-B-32", "all-MiniLM-L6-v2", "tiny.en"
    version: str  # weights tag or checksum, backend and precision
    dim: int = 0  # embedding size; 0 for a transcriber


class LoadOnce:
    """Weights load on first use, once per process, even when threads race for them.
    Subclasses implement `_load()`, which sets `self._info`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded = False
        self._info: ModelInfo | None = None

    @property
    def info(self) -> ModelInfo:
        self.load()
        assert self._info is not None
        return self._info

    def load(self) -> None:
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True

    def _load(self) -> None:
        raise NotImplementedError


class Embedder(Protocol[T_contra]):
    """Loads once, lazily; embeds a batch into L2-normalised float32 rows."""

    @property
    def info(self) -> ModelInfo: ...

    def load(self) -> None: ...

    def embed(self, inputs: Sequence[T_contra]) -> np.ndarray: ...


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    language: str
    text: str
    segments: list[Segment] = field(default_factory=list)
    duration: float = 0.0


class Transcriber(Protocol):
    @property
    def info(self) -> ModelInfo: ...

    def load(self) -> None: ...

    def transcribe(self, audio: Path) -> Transcript: ...


def l2_normalise(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)
