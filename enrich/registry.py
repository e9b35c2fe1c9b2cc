"""The one factory for models: built on first use, once per process, shared by its threads."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from enrich.base import ModelInfo, ModelUnavailable, UnknownModel
from medley.config import ModelSettings
from medley.domain import Modality


class Family(StrEnum):
    CLIP = "clip"
    TEXT = "text"
    WHISPER = "whisper"


# Which model family produces each modality's vector.
MODALITY_FAMILY: dict[Modality, Family] = {
    Modality.IMAGE: Family.CLIP,
    Modality.VIDEO: Family.CLIP,
    Modality.CLIP_TEXT: Family.CLIP,
    Modality.TEXT: Family.TEXT,
    Modality.SPEECH: Family.TEXT,
}


class Models:
    """Built from the model section; `max_media_seconds` (a limit) caps what the transcriber
    takes."""

    def __init__(self, settings: ModelSettings, *, max_media_seconds: float) -> None:
        self.settings = settings
        self.max_media_seconds = max_media_seconds
        self._lock = threading.Lock()
        self._built: dict[Family, Any] = {}
        self._errors: dict[Family, str] = {}

    def get(self, family: str) -> Any:
        """The family's model object, constructed (not yet loaded) on first request."""
        try:
            fam = Family(family)
        except ValueError:
            raise UnknownModel(
                f"unknown model family {family!r}; known: {', '.join(Family)}"
            ) from None
        with self._lock:
            if fam not in self._built:
                self._built[fam] = self._build(fam)
            return self._built[fam]

    def _build(self, fam: Family) -> Any:
        if fam is Family.CLIP:
            from enrich.clip import ClipModel

            return ClipModel(self.settings)
        if fam is Family.TEXT:
            from enrich.text import SentenceEmbedder

            return SentenceEmbedder(self.settings)
        from enrich.speech import build_transcriber

        return build_transcriber(self.settings, self.max_media_seconds)

    def load(self, family: str) -> Any:
        """Load the family's weights (once); ModelUnavailable is remembered and re-raised."""
        fam = Family(family)
        if fam in self._errors:
            raise ModelUnavailable(self._errors[fam])
        model = self.get(fam)
        try:
            model.load()
        except ModelUnavailable as exc:
            self._errors[fam] = str(exc)
            raise
        return model

    def info(self, family: str) -> ModelInfo:
        return self.load(family).info

    def health(self, families: Iterable[Family] = tuple(Family)) -> dict[str, dict[str, str]]:
        """Load these families (all by default) and say which are usable (for start-up and
        /healthz)."""
        out: dict[str, dict[str, str]] = {}
        for fam in families:
            try:
                info = self.info(fam)
                out[fam] = {"status": "ok", "model": info.name, "version": info.version}
            except ModelUnavailable as exc:
                out[fam] = {"status": "unavailable", "detail": str(exc)}
        return out

    def dims(self) -> dict[Modality, int]:
        """Vector size per modality, read from model configs without loading weights."""
        from enrich.clip import architecture

        clip = int(architecture(self.settings)["embed_dim"])
        text = _text_dim(self.settings, self)
        return {m: (clip if fam is Family.CLIP else text) for m, fam in MODALITY_FAMILY.items()}


def _text_dim(settings: ModelSettings, models: Models) -> int:
    from enrich.text import model_folder

    folder = model_folder(settings)
    pooling = folder / "1_Pooling" / "config.json" if folder else None
    if pooling is not None and pooling.exists():
        return int(json.loads(pooling.read_text())["word_embedding_dimension"])
    return models.info(Family.TEXT).dim
