"""The fusion identity: a weight means what an editor thinks it means."""

from __future__ import annotations

import numpy as np
import pytest

from medley import fusion
from medley.domain import Modality as M

DIMS = {M.IMAGE: 8, M.VIDEO: 8, M.SPEECH: 6, M.TEXT: 6, M.CLIP_TEXT: 8}


def _rand(rng: np.random.Generator, mods: list[M]) -> dict[M, np.ndarray]:
    return {m: rng.normal(size=DIMS[m]).astype(np.float32) for m in mods}


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize(
    ("weights", "mods"),
    [
        ({M.IMAGE: 1, M.TEXT: 1}, [M.IMAGE, M.TEXT]),
        ({M.IMAGE: 3, M.TEXT: 1, M.SPEECH: 0.5}, [M.IMAGE, M.TEXT, M.SPEECH]),
        ({m: 1.0 for m in M}, list(M)),
        ({M.IMAGE: 0.0, M.TEXT: 2.0, M.VIDEO: 5.0}, [M.IMAGE, M.TEXT, M.VIDEO]),
        ({M.SPEECH: 1.0}, [M.SPEECH]),
    ],
)
def test_fused_cosine_is_weighted_mean_of_modality_cosines(weights, mods) -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        a, b = _rand(rng, mods), _rand(rng, mods)
        fa, fb = fusion.fuse(a, weights, DIMS), fusion.fuse(b, weights, DIMS)
        assert fa is not None and fb is not None
        expected = fusion.expected_cosine({m: _cos(a[m], b[m]) for m in mods}, weights)
        assert float(fa @ fb) == pytest.approx(expected, abs=1e-5)
        assert np.linalg.norm(fa) == pytest.approx(1.0, abs=1e-5)


def test_item_missing_a_modality_stays_comparable() -> None:
    rng = np.random.default_rng(1)
    weights = {M.IMAGE: 1.0, M.TEXT: 1.0}
    full = _rand(rng, [M.IMAGE, M.TEXT])
    text_only = {M.TEXT: full[M.TEXT].copy()}
    fa, fb = fusion.fuse(full, weights, DIMS), fusion.fuse(text_only, weights, DIMS)
    assert fa is not None and fb is not None
    # Same text, no image: similar on the shared half, not zero and not identical.
    assert float(fa @ fb) == pytest.approx(np.sqrt(0.5), abs=1e-5)
    assert np.linalg.norm(fb) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("vectors", "weights"),
    [({}, {M.TEXT: 1.0}), ({M.IMAGE: np.ones(8)}, {M.IMAGE: 0.0, M.TEXT: 1.0})],
)
def test_nothing_weighted_gives_no_fused_vector(vectors, weights) -> None:
    assert fusion.fuse(vectors, weights, DIMS) is None


def test_wrong_dimension_is_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        fusion.fuse({M.TEXT: np.ones(5)}, {M.TEXT: 1.0}, DIMS)


def test_layout_blocks_are_disjoint_and_cover_the_vector() -> None:
    blocks = fusion.layout(DIMS)
    covered = sorted(i for s in blocks.values() for i in range(s.start, s.stop))
    assert covered == list(range(fusion.fused_dim(DIMS)))


def test_mean_pool_of_identical_frames_is_that_frame() -> None:
    v = np.array([0.6, 0.8], dtype=np.float32)
    assert np.allclose(fusion.mean_pool(np.stack([v, v, v])), v)


@pytest.mark.parametrize(
    ("weights", "present"),
    [
        ({m: 1.0 for m in M}, [list(M), [M.TEXT], [M.IMAGE, M.SPEECH]]),
        ({M.IMAGE: 0.0, M.TEXT: 2.0, M.VIDEO: 5.0}, [list(M), [M.IMAGE], [M.VIDEO, M.TEXT]]),
        ({M.SPEECH: 3.0, M.TEXT: 0.5}, [[M.SPEECH], [M.CLIP_TEXT], []]),
    ],
)
def test_fusing_many_items_at_once_matches_fusing_each(weights, present) -> None:
    rng = np.random.default_rng(7)
    items = [_rand(rng, mods) for mods in present]
    blocks = {m: np.zeros((len(items), d), dtype=np.float32) for m, d in DIMS.items()}
    for k, vecs in enumerate(items):
        for m, v in vecs.items():
            blocks[m][k] = v * 3.0  # stored vectors need not be unit length
    many = fusion.fuse_many(blocks, weights, DIMS)
    for k, vecs in enumerate(items):
        one = fusion.fuse(vecs, weights, DIMS)
        if one is None:  # nothing weighted: a zero row, which re-fusion skips
            assert not many[k].any()
        else:
            assert np.allclose(many[k], one, atol=1e-6)
