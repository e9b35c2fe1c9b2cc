"""Fusion maths, pure functions.

The fused vector is the concatenation of each present modality's unit vector scaled by
sqrt(w / W), where W sums the weights of the modalities the item has. It has unit norm, and for
two items with the same modalities cos(fused_a, fused_b) = Σ w·cos_m / Σ w — so a weight means
what an editor thinks it means. A missing modality is a zero block: the item stays comparable.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from medley.domain import Modality


def layout(dims: Mapping[Modality, int]) -> dict[Modality, slice]:
    """Where each modality's block sits in the fused vector (enum order, stable)."""
    out: dict[Modality, slice] = {}
    start = 0
    for m in Modality:
        if m in dims:
            out[m] = slice(start, start + dims[m])
            start += dims[m]
    return out


def fused_dim(dims: Mapping[Modality, int]) -> int:
    return sum(dims.values())


def usable(
    vectors: Mapping[Modality, np.ndarray], dims: Mapping[Modality, int]
) -> dict[Modality, np.ndarray]:
    """The vectors whose modality and size fit the current models (a vector stored under an
    older model of another size is left out rather than fused wrongly)."""
    return {m: v for m, v in vectors.items() if m in dims and v.shape == (dims[m],)}


def fuse(
    vectors: Mapping[Modality, np.ndarray],
    weights: Mapping[Modality, float],
    dims: Mapping[Modality, int],
) -> np.ndarray | None:
    """One item's fused vector, or None when no weighted modality is present."""
    present = {m: v for m, v in vectors.items() if weights.get(m, 0.0) > 0 and m in dims}
    total = sum(weights[m] for m in present)
    if total <= 0:
        return None
    out = np.zeros(fused_dim(dims), dtype=np.float32)
    for m, block in layout(dims).items():
        if m in present:
            v = np.asarray(present[m], dtype=np.float32)
            if v.shape != (dims[m],):
                raise ValueError(f"{m} vector has shape {v.shape}, expected ({dims[m]},)")
            norm = float(np.linalg.norm(v))
            if norm > 0:
                out[block] = v / norm * np.sqrt(weights[m] / total)
    return out


def expected_cosine(
    cosines: Mapping[Modality, float], weights: Mapping[Modality, float]
) -> float:
    """Σ w·cos / Σ w over the given modalities: what fused cosine must equal."""
    total = sum(weights[m] for m in cosines if weights.get(m, 0.0) > 0)
    if total <= 0:
        return 0.0
    return sum(weights[m] * c for m, c in cosines.items() if weights.get(m, 0.0) > 0) / total


def mean_pool(rows: np.ndarray) -> np.ndarray:
    """Pool unit keyframe vectors into one unit video vector."""
    mean = np.asarray(rows, dtype=np.float32).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else mean


def fuse_many(
    blocks: Mapping[Modality, np.ndarray],
    weights: Mapping[Modality, float],
    dims: Mapping[Modality, int],
) -> np.ndarray:
    """`fuse` for n items at once: `blocks[m]` is an (n, dims[m]) array with a zero row where an
    item lacks m. Rows with no weighted modality come back as zeros."""
    n = len(next(iter(blocks.values()))) if blocks else 0
    out = np.zeros((n, fused_dim(dims)), dtype=np.float32)
    norms: dict[Modality, np.ndarray] = {}
    total = np.zeros(n, dtype=np.float64)
    for m, v in blocks.items():
        if m in dims and weights.get(m, 0.0) > 0:
            norms[m] = np.linalg.norm(v, axis=1)
            total += np.where(norms[m] > 0, weights[m], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        for m, sl in layout(dims).items():
            if m in norms:
                scale = np.where(norms[m] > 0,
                                 np.sqrt(weights[m] / total) / norms[m], 0.0)
                out[:, sl] = blocks[m] * scale[:, None]
    return out
