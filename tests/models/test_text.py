"""SentenceEmbedder with the packaged all-MiniLM-L6-v2 (real weights: heavy)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.enrich import catalog_descriptions
from enrich.base import ModelUnavailable
from enrich.hub import hub_unreachable
from enrich.text import SentenceEmbedder
from medley.config import ModelSettings, Precision, Settings

pytestmark = pytest.mark.heavy


def _models(root: Path, precision: Precision) -> ModelSettings:
    return Settings(data_dir=root, text_precision=precision).models


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("text-models")  # the int8 build is cached here


@pytest.fixture(scope="module")
def int8(models_root: Path) -> SentenceEmbedder:
    embedder = SentenceEmbedder(_models(models_root, Precision.INT8))
    embedder.load()
    return embedder


@pytest.fixture(scope="module")
def fp32(models_root: Path) -> SentenceEmbedder:
    return SentenceEmbedder(_models(models_root, Precision.FP32))


def test_paraphrases_are_closer_than_unrelated_sentences(int8: SentenceEmbedder) -> None:
    a, b, c = int8.embed(
        [
            "A waterproof backpack for hiking in the mountains.",
            "A rain-proof rucksack for mountain walks.",
            "Quarterly revenue grew by eight percent.",
        ]
    )
    assert a @ b > a @ c + 0.3 and a @ b > b @ c + 0.3


def test_rows_are_unit_float32(int8: SentenceEmbedder) -> None:
    rows = int8.embed(["one", "two words", "a somewhat longer third sentence"])
    assert rows.shape == (3, 384) and rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert int8.embed([]).shape == (0, 384)
    assert int8.info.name == "all-MiniLM-L6-v2" and "int8" in int8.info.version


def test_int8_stays_within_cosine_099_of_fp32(
    int8: SentenceEmbedder, fp32: SentenceEmbedder
) -> None:
    texts = [*catalog_descriptions(300, seed=1), "red", "How do I reset my password?"]
    cosines = (int8.embed(texts) * fp32.embed(texts)).sum(axis=1)
    assert cosines.min() >= 0.99, cosines.min()
    assert "sentence-transformers/fp32" in fp32.info.version


def test_order_and_batching_do_not_change_rows(int8: SentenceEmbedder) -> None:
    texts = catalog_descriptions(5, seed=2)
    together = int8.embed(texts)
    alone = np.concatenate([int8.embed([t]) for t in texts])
    # Int8 activations share one scale per batch: close, not bit-identical.
    assert (together * alone).sum(axis=1).min() >= 0.99
    np.testing.assert_allclose(int8.embed(texts[::-1])[::-1], together, atol=1e-5)


def test_a_second_process_reuses_the_cached_build(
    models_root: Path, int8: SentenceEmbedder
) -> None:
    assert list((models_root / "models" / "onnx").glob("*.onnx"))
    start = time.monotonic()
    again = SentenceEmbedder(_models(models_root, Precision.INT8))
    again.load()
    assert again.info == int8.info
    assert time.monotonic() - start < 20  # no sensitivity pass, export or quantisation


def test_missing_model_folder_is_unavailable(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, text_model=str(tmp_path / "nope"))
    embedder = SentenceEmbedder(settings.models)
    with pytest.raises(ModelUnavailable, match="nope"):
        embedder.embed(["hello"])


def test_uncached_hub_model_fails_fast_offline(tmp_path: Path) -> None:
    if hub_unreachable() is None:
        pytest.skip("the hub is reachable here: this would download a model")
    start = time.monotonic()
    settings = Settings(data_dir=tmp_path, text_model="no-org/no-such-model")
    embedder = SentenceEmbedder(settings.models)
    with pytest.raises(ModelUnavailable, match="no-such-model"):
        embedder.load()
    assert time.monotonic() - start < 15


def test_bf16_stays_within_cosine_099_of_fp32(models_root: Path, fp32: SentenceEmbedder) -> None:
    bf16 = SentenceEmbedder(_models(models_root, Precision.BF16))
    texts = [*catalog_descriptions(100, seed=2), "red", "How do I reset my password?"]
    cosines = (bf16.embed(texts) * fp32.embed(texts)).sum(axis=1)
    assert cosines.min() >= 0.99
    assert bf16.info.version.endswith("sentence-transformers/bf16")
