"""open_clip image and text towers (provisional fp32 version)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from enrich.base import ModelInfo, ModelUnavailable, l2_normalise
from medley.config import Settings


class ClipModel:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._model: Any = None
        self._preprocess: Any = None
        self._tokenizer: Any = None
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
            import open_clip
            import torch

            s = self.settings
            if s.clip_model_config is not None:
                open_clip.add_model_config(s.clip_model_config)
            try:
                if s.clip_checkpoint is not None:
                    if not s.clip_checkpoint.exists():
                        raise FileNotFoundError(f"no such file {s.clip_checkpoint}")
                    model, _, preprocess = open_clip.create_model_and_transforms(
                        s.clip_model, pretrained=str(s.clip_checkpoint))
                    digest = hashlib.sha256(s.clip_checkpoint.read_bytes()).hexdigest()[:12]
                    weights = f"checkpoint {s.clip_checkpoint.name} sha256:{digest}"
                elif s.clip_pretrained:
                    model, _, preprocess = open_clip.create_model_and_transforms(
                        s.clip_model, pretrained=s.clip_pretrained)
                    weights = s.clip_pretrained
                else:
                    raise ValueError("no CLIP weights configured")
            except Exception as exc:
                what = s.clip_checkpoint or s.clip_pretrained
                raise ModelUnavailable(
                    f"CLIP {s.clip_model} weights {what} could not be loaded: {exc}") from exc
            model.eval()
            self._model = model.to(s.device)
            self._preprocess = preprocess
            self._tokenizer = open_clip.get_tokenizer(s.clip_model)
            dim = int(model.text_projection.shape[1]) if hasattr(model, "text_projection") else 0
            self._info = ModelInfo("clip", s.clip_model, f"{weights} fp32", dim)
            del torch

    def image_embedder(self) -> _ImageEmbedder:
        return _ImageEmbedder(self)

    def text_embedder(self) -> _TextEmbedder:
        return _TextEmbedder(self)


class _ImageEmbedder:
    def __init__(self, clip: ClipModel) -> None:
        self.clip = clip

    @property
    def info(self) -> ModelInfo:
        return self.clip.info

    def load(self) -> None:
        self.clip.load()

    def embed(self, inputs: Sequence[Any]) -> np.ndarray:
        import torch

        self.load()
        out = []
        bs = self.clip.settings.clip_batch_size
        with torch.inference_mode():
            for i in range(0, len(inputs), bs):
                batch = torch.stack([self.clip._preprocess(im) for im in inputs[i : i + bs]])
                out.append(self.clip._model.encode_image(batch).float().numpy())
        return l2_normalise(np.concatenate(out))


class _TextEmbedder:
    def __init__(self, clip: ClipModel) -> None:
        self.clip = clip

    @property
    def info(self) -> ModelInfo:
        return self.clip.info

    def load(self) -> None:
        self.clip.load()

    def embed(self, inputs: Sequence[str]) -> np.ndarray:
        import torch

        self.load()
        with torch.inference_mode():
            toks = self.clip._tokenizer(list(inputs))
            return l2_normalise(self.clip._model.encode_text(toks).float().numpy())
