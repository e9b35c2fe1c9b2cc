"""The noise maths of differentially private counts, as pure functions.

Counts get discrete Laplace noise (the two-sided geometric mechanism): P(X = x) ∝ a^|x| with
a = exp(-ε/Δ), for an integer query of L1 sensitivity Δ. It is ε-differentially private for
that query, and its answers are integers: there are no low-order bits of a real-valued sample
to leak the true count, the known weakness of continuous Laplace noise in floating point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


def _check(epsilon: float, sensitivity: int) -> None:
    if not epsilon > 0:  # also refuses NaN
        raise ValueError(f"epsilon must be > 0, not {epsilon!r}")
    if sensitivity < 1:
        raise ValueError(f"sensitivity must be >= 1, not {sensitivity!r}")


def alpha(epsilon: float, sensitivity: int = 1) -> float:
    """The decay a = exp(-ε/Δ) of the noise distribution; 0 (no noise) for ε = ∞."""
    _check(epsilon, sensitivity)
    return math.exp(-epsilon / sensitivity)


def pmf(x: int, epsilon: float, sensitivity: int = 1) -> float:
    """P(noise = x) = (1-a)/(1+a) · a^|x|."""
    a = alpha(epsilon, sensitivity)
    if a == 0.0:
        return 1.0 if x == 0 else 0.0
    return (1 - a) / (1 + a) * a ** abs(x)


def variance(epsilon: float, sensitivity: int = 1) -> float:
    """Var = 2a/(1-a)²; the mean is 0."""
    a = alpha(epsilon, sensitivity)
    return 2 * a / (1 - a) ** 2


def discrete_laplace(epsilon: float, size: int, rng: np.random.Generator,
                     sensitivity: int = 1) -> np.ndarray:
    """`size` independent draws: the difference of two geometric counts of failures, each with
    success probability 1-a, is two-sided geometric with parameter a."""
    a = alpha(epsilon, sensitivity)
    if a == 0.0:
        return np.zeros(size, dtype=np.int64)
    p = -math.expm1(-epsilon / sensitivity)  # 1-a, exact for tiny ε/Δ too
    # numpy counts trials (>= 1); the difference of two trial counts equals that of failures.
    return (rng.geometric(p, size) - rng.geometric(p, size)).astype(np.int64)


def split(epsilon: float, k: int) -> float:
    """Basic composition: k counts released together, each ε/k-private, are ε-private."""
    if k < 1:
        raise ValueError("at least one count is released")
    return epsilon / k


def release(counts: Mapping[str, int], epsilon: float, rng: np.random.Generator
            ) -> dict[str, int]:
    """Noisy counts, ε spent in all. Each count has sensitivity 1 (a user adds at most one to
    it), so each gets ε/k. Negative results become 0: post-processing costs no privacy."""
    if not counts:
        return {}
    per = split(epsilon, len(counts))
    noise = discrete_laplace(per, len(counts), rng)
    return {k: max(0, int(c) + int(n)) for (k, c), n in zip(counts.items(), noise, strict=True)}
