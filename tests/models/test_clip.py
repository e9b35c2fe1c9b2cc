"""ClipModel on a tiny random-weight architecture (tests/support/tiny_models.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from enrich import cpu
from enrich.base import ModelUnavailable
from enrich.clip import ClipModel
from enrich.hub import hub_unreachable
from medley.config import Precision, Settings
from tests.support.tiny_models import EMBED_DIM


def _photos() -> list[Image.Image]:
    import skimage.data

    arrays = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    return [Image.fromarray(a) for a in arrays] + [Image.fromarray(skimage.data.camera())]


def _clip(tiny_clip: dict[str, Any], tmp_path: Path, **overrides: Any) -> ClipModel:
    return ClipModel(Settings(data_dir=tmp_path, **{**tiny_clip, **overrides}).models)


@pytest.mark.parametrize("precision", list(Precision))
def test_embeds_images_and_text_to_unit_vectors(
    tiny_clip: dict[str, Any], tmp_path: Path, precision: Precision
) -> None:
    clip = _clip(tiny_clip, tmp_path, clip_precision=precision)
    images = clip.image_embedder().embed(_photos())  # includes a greyscale photo
    texts = clip.text_embedder().embed(["a cat", "a cup of coffee", ""])
    for rows, n in ((images, 4), (texts, 3)):
        assert rows.shape == (n, EMBED_DIM) and rows.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert clip.image_embedder().embed([]).shape == (0, EMBED_DIM)
    assert clip.image_embedder().info.family == "clip-image"
    assert clip.text_embedder().info.family == "clip-text"
    # The version names the path that ran: `auto` resolves per machine (enrich/cpu.py).
    assert clip.info.dim == EMBED_DIM
    chosen = cpu.choose(precision, "cpu", "clip")
    # bf16 falls back to int8 when this random-weight model drifts past cosine 0.99.
    ran = {chosen, Precision.INT8} if chosen is Precision.BF16 else {chosen}
    assert clip.info.version.rsplit("/", 1)[-1] in {p.value for p in ran}


def test_batches_give_the_same_rows_as_singles(tiny_clip: dict[str, Any], tmp_path: Path) -> None:
    clip = _clip(tiny_clip, tmp_path, clip_precision=Precision.FP32, clip_batch_size=3)
    photos = _photos()
    together = clip.image_embedder().embed(photos)
    alone = np.concatenate([clip.image_embedder().embed([p]) for p in photos])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    words = ["a dog", "red car", "the sea at night", "x"]
    np.testing.assert_allclose(
        clip.text_embedder().embed(words),
        np.concatenate([clip.text_embedder().embed([w]) for w in words]),
        atol=1e-5,
    )


def test_int8_and_bf16_are_close_to_fp32(tiny_clip: dict[str, Any], tmp_path: Path) -> None:
    rows = {}
    for p in Precision:
        clip = _clip(tiny_clip, tmp_path, clip_precision=p)
        rows[p] = (
            clip.image_embedder().embed(_photos()),
            clip.text_embedder().embed(["a cat on a sofa", "a red bicycle"]),
        )
    for fast in (Precision.INT8, Precision.BF16):
        for fp32, got in zip(rows[Precision.FP32], rows[fast], strict=True):
            assert (fp32 * got).sum(axis=1).min() >= 0.99, fast
    # Int8 batches are quantised with one activation scale per batch: near, not equal, to singles.
    clip = _clip(tiny_clip, tmp_path, clip_precision=Precision.INT8)
    alone = np.concatenate([clip.image_embedder().embed([p]) for p in _photos()])
    assert (alone * rows[Precision.INT8][0]).sum(axis=1).min() >= 0.99


def test_version_names_the_checkpoint(tiny_clip: dict[str, Any], tmp_path: Path) -> None:
    import hashlib

    digest = hashlib.sha256(Path(tiny_clip["clip_checkpoint"]).read_bytes()).hexdigest()[:12]
    assert digest in _clip(tiny_clip, tmp_path).info.version


def test_loads_once_across_threads(tiny_clip: dict[str, Any], tmp_path: Path) -> None:
    clip = _clip(tiny_clip, tmp_path)
    threads = [threading.Thread(target=clip.load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    model = clip._model
    clip.load()
    assert model is not None and clip._model is model


def test_missing_checkpoint_is_unavailable(tiny_clip: dict[str, Any], tmp_path: Path) -> None:
    clip = _clip(tiny_clip, tmp_path, clip_checkpoint=tmp_path / "nope.pt")
    with pytest.raises(ModelUnavailable, match=r"nope\.pt"):
        clip.image_embedder().embed(_photos())


def test_corrupt_checkpoint_is_unavailable(tiny_clip: dict[str, Any], tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelUnavailable, match=r"bad\.pt"):
        _clip(tiny_clip, tmp_path, clip_checkpoint=bad).load()


def test_no_weights_never_means_random_weights(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, clip_pretrained=None, clip_checkpoint=None)
    clip = ClipModel(settings.models)
    with pytest.raises(ModelUnavailable, match="random weights are never used"):
        clip.load()


def test_unknown_tag_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="no-such-tag"):
        ClipModel(Settings(data_dir=tmp_path, clip_pretrained="no-such-tag").models).load()


def test_default_hub_tag_fails_fast_offline(tmp_path: Path) -> None:
    if hub_unreachable() is None:
        pytest.skip("the hub is reachable here: this would download ViT-B-32")
    start = time.monotonic()
    with pytest.raises(ModelUnavailable, match=r"laion2b_s34b_b79k.*cannot be downloaded"):
        ClipModel(Settings(data_dir=tmp_path).models).load()
    assert time.monotonic() - start < 15  # huggingface_hub alone retries for ~45 s


def test_the_architecture_is_read_without_importing_open_clip(tiny_clip: dict[str, Any],
                                                              tmp_path: Path) -> None:
    """A serving process needs CLIP's vector size before it opens the index: reading it must
    not import open_clip (and torch with it, seconds on every start). The figures are the
    ones open_clip gives, for a packaged architecture and a custom file alike."""
    import subprocess
    import sys

    probe = ("import sys; from medley.config import Settings; from enrich.clip import "
             "architecture; a = architecture(Settings(**{k: v for k, v in %r.items()}).models); "
             "print(a['embed_dim'], 'open_clip' in sys.modules, 'torch' in sys.modules)")
    for settings, dim in (({}, 512), ({"clip_model": tiny_clip["clip_model"],
                                       "clip_model_config": str(tiny_clip["clip_model_config"])},
                                      None)):
        done = subprocess.run([sys.executable, "-c", probe % settings], capture_output=True,
                              text=True, check=True)
        got, imported_clip, imported_torch = done.stdout.split()
        assert imported_clip == imported_torch == "False"
        if dim is not None:
            assert int(got) == dim

    import open_clip

    from enrich.clip import architecture
    from medley.config import Settings

    assert architecture(Settings().models) == open_clip.get_model_config("ViT-B-32")
    custom = Settings(clip_model=tiny_clip["clip_model"],
                      clip_model_config=tiny_clip["clip_model_config"])
    open_clip.add_model_config(tiny_clip["clip_model_config"])
    assert architecture(custom.models) == open_clip.get_model_config(tiny_clip["clip_model"])
