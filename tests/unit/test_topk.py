"""Top-k over blocks gives what one full scan gives, whatever the block size."""

from __future__ import annotations

import numpy as np
import pytest

from medley.recs.topk import top_k


@pytest.mark.parametrize(("n", "block", "k"), [(50, 7, 5), (50, 50, 5), (50, 100, 5),
                                                (10, 3, 20), (1, 1, 1)])
def test_blocks_give_the_full_scan_answer(n: int, block: int, k: int) -> None:
    rng = np.random.default_rng(n + block + k)
    items = rng.normal(size=(n, 4)).astype(np.float32)
    queries = rng.normal(size=(3, 4)).astype(np.float32)
    ids = np.arange(100, 100 + n)
    blocks = [(ids[s : s + block], items[s : s + block]) for s in range(0, n, block)]
    got, scores = top_k(queries, blocks, k)
    full = queries @ items.T
    for q in range(3):
        want = ids[np.argsort(-full[q])[: min(k, n)]]
        assert list(got[q]) == list(want)
        assert np.all(np.diff(scores[q]) <= 0)  # best first


def test_no_blocks_no_answer() -> None:
    got, scores = top_k(np.ones((2, 3), dtype=np.float32), [], 4)
    assert got.shape == (2, 0) and scores.shape == (2, 0)
