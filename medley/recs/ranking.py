"""Ranking and re-ranking maths, pure functions over numpy arrays.

The blend: score = w_c·content + w_f·(a·collab + (1-a)·collab^) + w_p·(a·pop + (1-a)·pop^)
where a = n / (n + k) grows with an item's interaction count n, and collab^ / pop^ are the same
signals predicted from the item's content neighbours. A new item therefore starts where similar
established items stand, and its own evidence takes over as it accumulates. Each signal is
min-max scaled over the candidate pool first, so the weights compare like with like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BlendWeights:
    content: float = 1.0
    collab: float = 1.0
    popularity: float = 0.5
    confidence: float = 10.0  # k: interactions at which behaviour and content prior weigh equally


def behaviour_weight(n: np.ndarray, k: float) -> np.ndarray:
    """a = n / (n + k): 0 for an item nobody touched, → 1 as evidence accumulates."""
    n = np.asarray(n, dtype=np.float64)
    return n / (n + k) if k > 0 else (n > 0).astype(np.float64)


def scale_jointly(*arrays: np.ndarray) -> list[np.ndarray]:
    """Min-max scale several arrays with one shared range (so an observed signal and its
    prediction stay comparable); NaN becomes 0; a constant range maps to 0."""
    finite = [a[np.isfinite(a)] for a in arrays]
    values = np.concatenate(finite) if finite else np.array([])
    if values.size == 0:
        return [np.zeros_like(a, dtype=np.float64) for a in arrays]
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo
    out = []
    for a in arrays:
        scaled = (a - lo) / span if span > 0 else np.zeros_like(a, dtype=np.float64)
        out.append(np.where(np.isfinite(scaled), scaled, 0.0))
    return out


def evidence(observed: np.ndarray, predicted: np.ndarray, a: np.ndarray) -> np.ndarray:
    """One behavioural signal on a shared 0..1 scale: a·observed + (1-a)·predicted. Where only
    one of the two is known it stands alone; where neither is, the item gets the pool's median
    (no evidence either way, rather than the worst)."""
    obs, pred = scale_jointly(observed, predicted)
    has_obs, has_pred = np.isfinite(observed), np.isfinite(predicted)
    out = np.where(has_obs & has_pred, a * obs + (1.0 - a) * pred,
                   np.where(has_obs, obs, np.where(has_pred, pred, np.nan)))
    return _fill_median(out)


def _fill_median(x: np.ndarray) -> np.ndarray:
    known = np.isfinite(x)
    if not known.any():
        return np.zeros_like(x, dtype=np.float64)
    return np.where(known, x, float(np.median(x[known])))


def blend(
    content: np.ndarray,
    collab: np.ndarray,
    popularity: np.ndarray,
    collab_prior: np.ndarray,
    popularity_prior: np.ndarray,
    interactions: np.ndarray,
    w: BlendWeights,
) -> np.ndarray:
    """Blended scores. Every signal is scaled to 0..1 over the candidate pool, so the weights
    say how much each counts; NaN means "unknown" (see `evidence`)."""
    a = behaviour_weight(interactions, w.confidence)
    (c,) = scale_jointly(content)
    c = _fill_median(np.where(np.isfinite(content), c, np.nan))
    f = evidence(collab, collab_prior, a)
    p = evidence(popularity, popularity_prior, a)
    return w.content * c + w.collab * f + w.popularity * p


def neighbour_mean(
    similarities: np.ndarray, values: np.ndarray, shrink: float = 0.0
) -> np.ndarray:
    """Per row, the similarity-weighted mean of the neighbours' values (negative similarities
    and NaN values ignored); NaN where a row has no usable neighbour. Shapes: (n, k).

    `shrink` adds that much weight on a value of 0: neighbours that are only faintly similar
    then lend little of their value, where a plain weighted mean would lend all of it."""
    s = np.clip(np.asarray(similarities, dtype=np.float64), 0.0, None)
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v) & (s > 0)
    s = np.where(ok, s, 0.0)
    total = s.sum(axis=-1)
    num = (s * np.where(ok, v, 0.0)).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, num / np.where(total > 0, total + shrink, 1.0), np.nan)


def mmr(scores: np.ndarray, vectors: np.ndarray, lam: float, k: int) -> list[int]:
    """Maximal marginal relevance: greedily pick argmax λ·score - (1-λ)·max cos(selected).
    Scores are min-max scaled first so λ means the same whatever their range."""
    n = len(scores)
    k = min(k, n)
    if k <= 0:
        return []
    (rel,) = scale_jointly(np.asarray(scores, dtype=np.float64))
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.maximum(norms, 1e-9)
    max_sim = np.full(n, -np.inf)
    chosen: list[int] = []
    available = np.ones(n, dtype=bool)
    for _ in range(k):
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        value = np.where(available, lam * rel - (1.0 - lam) * penalty, -np.inf)
        best = int(np.argmax(value))
        chosen.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, unit @ unit[best])
    return chosen


def interleave(ranked: Sequence[str], explore: Sequence[str], n: int, share: float) -> list[str]:
    """Top-n list with round(share·n) slots kept for exploration items, spread evenly (first
    exploration slot at position 1/(2·share)); unused slots go back to the ranked list."""
    slots = min(round(share * n), len(explore))
    explore = [e for e in explore if e not in set(ranked[: n - slots])][:slots]
    slots = len(explore)
    positions = {int((j + 0.5) * n / slots) for j in range(slots)} if slots else set()
    out: list[str] = []
    ranked_iter = iter(r for r in ranked if r not in set(explore))
    explore_iter = iter(explore)
    for pos in range(n):
        pick = next(explore_iter, None) if pos in positions else None
        if pick is None:
            pick = next(ranked_iter, None)
        if pick is None:
            pick = next(explore_iter, None)
        if pick is None:
            break
        out.append(pick)
    return out


def place_pins(ranked: Sequence[str], pins: Sequence[tuple[str, int]], n: int) -> list[str]:
    """Put each pinned item at its (0-based) position; the rest keep their order."""
    pinned = {item for item, _ in pins}
    rest = [r for r in ranked if r not in pinned]
    out = list(rest)
    for item, pos in sorted(pins, key=lambda p: p[1]):
        out.insert(min(max(pos, 0), len(out)), item)
    return out[:n]
