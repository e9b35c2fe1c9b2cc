"""open_clip image and text towers: one model loaded once, two embedders sharing it.

Weights come from `clip_checkpoint` (a local state dict) or the `clip_pretrained` tag (from the
local cache, else downloaded). There is no fallback to random weights: anything that cannot be
loaded raises `ModelUnavailable` with which weights and why. The precision is the machine's
(`enrich.cpu`): bf16 where the CPU computes it natively, else int8 (every Linear layer
quantised dynamically, `enrich.quantize.int8_torch`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from enrich import cpu
from enrich.base import LoadOnce, ModelInfo, ModelUnavailable, l2_normalise
from enrich.hub import hub_unreachable, unreachable
from medley.config import ModelSettings, Precision

log = logging.getLogger(__name__)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _safetensors_name(filename: str) -> str:
    if filename == "open_clip_pytorch_model.bin":
        return "open_clip_model.safetensors"
    return str(Path(filename).with_suffix(".safetensors"))


def architecture(settings: ModelSettings) -> dict[str, Any]:
    """The open_clip config of the configured architecture (a custom JSON is registered first).
    Reads configs only; the registry uses it for vector sizes without loading weights.

    The JSON file is read directly where it can be found: importing open_clip imports torch
    and torchvision (3.7 s in a fresh process here, `bench/startup-stages.md`), and a serving
    process needs the vector sizes before it can open the index, so that import sat on every
    start's critical path."""
    found = _config_file(settings)
    if found is not None:
        return dict(json.loads(found.read_text()))
    import open_clip

    if settings.clip_model_config is not None:
        if not Path(settings.clip_model_config).is_file():
            raise ModelUnavailable(
                f"CLIP architecture file {settings.clip_model_config} is missing"
            )
        open_clip.add_model_config(settings.clip_model_config)
    config = open_clip.get_model_config(settings.clip_model)
    if config is None:
        raise ModelUnavailable(f"open_clip has no architecture named {settings.clip_model!r}")
    return dict(config)


def _config_file(settings: ModelSettings) -> Path | None:
    """The JSON file open_clip would read the configured architecture from (a custom file
    named like the model, else the one open_clip ships), found without importing open_clip."""
    custom = settings.clip_model_config
    if custom is not None:
        path = Path(custom)
        return path if path.is_file() and path.stem == settings.clip_model else None
    spec = importlib.util.find_spec("open_clip")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "model_configs" / f"{settings.clip_model}.json"
        if path.is_file():
            return path
    return None


class ClipModel(LoadOnce):
    """Loads lazily, once; `image_embedder()` and `text_embedder()` share it."""

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__()
        self.settings = settings
        self._model: Any = None
        self._preprocess: Any = None
        self._tokenizer: Any = None
        self._dtype: Any = None  # the image tower's input type (torch.float32 or bfloat16)

    def image_embedder(self) -> ClipEmbedder:
        """Embedder[PIL.Image.Image]."""
        return ClipEmbedder(self, "clip-image", self.encode_images)

    def text_embedder(self) -> ClipEmbedder:
        """Embedder[str]."""
        return ClipEmbedder(self, "clip-text", self.encode_texts)

    def _load(self) -> None:
        import open_clip
        import torch

        s = self.settings
        if s.torch_threads:
            torch.set_num_threads(s.torch_threads)
        config = architecture(s)  # raises first if a custom architecture file is missing
        if s.clip_model_config is not None:  # create_model finds it by name once registered
            open_clip.add_model_config(s.clip_model_config)
        checkpoint, weights, options = self._weights()
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                s.clip_model, pretrained=str(checkpoint), device=s.device, **options
            )
        except Exception as exc:
            what = checkpoint if s.clip_checkpoint else f"{weights} ({checkpoint})"
            raise ModelUnavailable(
                f"CLIP {s.clip_model} weights {what} could not be loaded: {exc}"
            ) from exc
        model.eval()
        self._tokenizer = open_clip.get_tokenizer(s.clip_model)
        precision = cpu.choose(s.clip_precision, s.device, "clip")
        if precision is Precision.BF16:
            model, precision = self._bf16_if_close(model)
        if precision is Precision.INT8:
            from enrich.quantize import int8_torch

            model = int8_torch(model)
        self._dtype = torch.bfloat16 if precision is Precision.BF16 else torch.float32
        self._preprocess = preprocess
        self._model = model
        version = f"{weights}/open_clip/{precision.value}"
        self._info = ModelInfo("clip", s.clip_model, version, int(config["embed_dim"]))

    def _bf16_if_close(self, model: Any) -> tuple[Any, Precision]:
        """The model in bfloat16 if its embeddings of calibration inputs (seeded noise
        images, a few captions) stay within cosine `cpu.MIN_COSINE` of fp32; else fp32 for
        the int8 path to quantise."""
        import copy

        import torch

        size = model.visual.image_size
        h, w = (size, size) if isinstance(size, int) else size
        images = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(0))
        tokens = self._tokenizer(["a photo of a dog", "a rocket launch at night"])
        with torch.inference_mode():
            ref = [model.encode_image(images).numpy(), model.encode_text(tokens).numpy()]
            half = copy.deepcopy(model).to(torch.bfloat16)
            got = [half.encode_image(images.bfloat16()).float().numpy(),
                   half.encode_text(tokens).float().numpy()]
        worst = min(cpu.agrees(r, g) for r, g in zip(ref, got, strict=True))
        if worst < cpu.MIN_COSINE:
            log.warning("CLIP in bf16 drifts from fp32 (cosine %.4f): using int8", worst)
            return model, Precision.INT8
        return half, Precision.BF16

    def _weights(self) -> tuple[Path, str, dict[str, Any]]:
        """(checkpoint file, how info.version names it, create_model options)."""
        s = self.settings
        if s.clip_checkpoint is not None:
            path = Path(s.clip_checkpoint)
            if not path.is_file():
                raise ModelUnavailable(f"CLIP checkpoint {path} does not exist")
            return path, f"sha256:{_sha256(path)[:12]}", {}
        if not s.clip_pretrained:
            raise ModelUnavailable(
                "no CLIP weights configured: set MEDLEY_CLIP_PRETRAINED (an open_clip tag) or "
                "MEDLEY_CLIP_CHECKPOINT (a local file); random weights are never used"
            )
        import open_clip

        tag = s.clip_pretrained
        cfg = open_clip.get_pretrained_cfg(s.clip_model, tag)
        if not cfg:
            known = ", ".join(open_clip.list_pretrained_tags_by_model(s.clip_model)) or "none"
            raise ModelUnavailable(
                f"open_clip knows no weights {tag!r} for {s.clip_model} (known: {known})"
            )
        # Passing a file instead of the tag skips open_clip's own download (with its long
        # retries), so carry over what the tag would have set.
        keys = ("mean", "std", "interpolation", "resize_mode")
        options: dict[str, Any] = {
            "force_preprocess_cfg": {k: cfg[k] for k in keys if k in cfg},
            "force_quick_gelu": bool(cfg.get("quick_gelu", False)),
        }
        return self._fetch(cfg, f"{s.clip_model}/{tag}"), tag, options

    def _fetch(self, cfg: dict[str, Any], what: str) -> Path:
        """The tag's weights from a local cache, else downloaded; fails fast when offline."""
        from open_clip import download_pretrained

        cache = self.settings.models_dir / "open_clip"
        hub = cfg.get("hf_hub", "")
        if hub:
            from huggingface_hub import hf_hub_download

            repo, filename = os.path.split(hub)
            filename = filename or "open_clip_pytorch_model.bin"
            for folder in (None, cache):  # the standard HF cache, then ours
                for name in (_safetensors_name(filename), filename):
                    try:
                        found = hf_hub_download(repo, name, cache_dir=folder, local_files_only=True)
                        return Path(found)
                    except Exception:
                        continue
            reason = hub_unreachable()
        else:
            url = cfg.get("url", "")
            local = cache / os.path.basename(urlsplit(url).path)
            if local.is_file():
                return local
            reason = unreachable(url) if url else "the tag names no download"
        if reason:
            raise ModelUnavailable(
                f"CLIP weights {what} are not cached and cannot be downloaded: {reason}"
            )
        try:
            return Path(download_pretrained(cfg, cache_dir=str(cache)))
        except Exception as exc:
            raise ModelUnavailable(f"CLIP weights {what} could not be downloaded: {exc}") from exc

    def encode_images(self, images: Sequence[Any]) -> np.ndarray:
        import torch

        self.load()
        bs, s_dev = self.settings.clip_batch_size, self.settings.device
        rows = [np.zeros((0, self.info.dim), dtype=np.float32)]
        with torch.inference_mode():
            for i in range(0, len(images), bs):
                batch = torch.stack([self._preprocess(im) for im in images[i : i + bs]])
                batch = batch.to(s_dev, dtype=self._dtype)
                rows.append(self._model.encode_image(batch).float().cpu().numpy())
        return l2_normalise(np.concatenate(rows))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        self.load()
        bs = self.settings.clip_batch_size
        rows = [np.zeros((0, self.info.dim), dtype=np.float32)]
        with torch.inference_mode():
            for i in range(0, len(texts), bs):
                tokens = self._tokenizer(list(texts[i : i + bs])).to(self.settings.device)
                rows.append(self._model.encode_text(tokens).float().cpu().numpy())
        return l2_normalise(np.concatenate(rows))


class ClipEmbedder:
    """Embedder over one tower of the shared model: images or texts, into the same space."""

    def __init__(self, clip: ClipModel, family: str, encode: Callable[[Sequence[Any]], np.ndarray]):
        self.clip = clip
        self.family = family
        self._encode = encode

    @property
    def info(self) -> ModelInfo:
        base = self.clip.info
        return ModelInfo(self.family, base.name, base.version, base.dim)

    def load(self) -> None:
        self.clip.load()

    def embed(self, inputs: Sequence[Any]) -> np.ndarray:
        return self._encode(inputs)
