"""Statistics an editor may read at any moment without fooling themselves.

A fixed-horizon test read every minute finds a "winner" in an A/A test far more often than its
5%. The mixture sequential probability ratio test (mSPRT; Robbins 1970, Johari et al., KDD 2017)
gives p-values and confidence intervals that hold at every moment at once: the chance that an
A/A test ever shows p < alpha, however often it is read, is at most alpha.

The unit is the user (the randomisation unit): each metric is one number per user, and the arms'
user means are compared. With d the difference of means and V its variance (s²/n summed over
both arms), the mixture of alternatives N(0, tau²) gives the likelihood ratio

    Lambda = sqrt(V / (V + tau²)) * exp(tau² d² / (2 V (V + tau²)))

the always-valid p-value min(1, 1/Lambda), and the confidence sequence: every theta0 whose
ratio stays under 1/alpha. tau is the effect size the test is tuned to find; here a tenth of a
per-user standard deviation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

ALPHA = 0.05
TAU_SD = 0.1  # the mixture's scale, in per-user standard deviations of the metric
SRM_P = 0.001  # a sample-ratio mismatch is flagged below this p-value (chi-square)
MIN_USERS = 2


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    var: float  # sample variance (ddof 1)

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray) -> Summary:
        x = np.asarray(values, dtype=np.float64)
        x = x[np.isfinite(x)]
        n = len(x)
        return cls(n, float(x.mean()) if n else math.nan, float(x.var(ddof=1)) if n > 1 else 0.0)


@dataclass(frozen=True)
class Difference:
    """Treatment minus control, with an always-valid interval (absolute and relative to the
    control mean) and p-value. `significant`: the interval excludes zero."""

    diff: float
    low: float
    high: float
    p: float
    rel: float | None
    rel_low: float | None
    rel_high: float | None

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


def _half_width(v: float, tau2: float, alpha: float) -> float:
    return math.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log((v + tau2) / v)))


def _p_value(d: float, v: float, tau2: float) -> float:
    log_lr = 0.5 * math.log(v / (v + tau2)) + tau2 * d * d / (2 * v * (v + tau2))
    return 1.0 if log_lr <= 0 else min(1.0, math.exp(-log_lr))


def _difference(d: float, v: float, sd: float, base: float | None, alpha: float
                ) -> Difference | None:
    if not (v > 0 and sd > 0):
        return None
    tau2 = (TAU_SD * sd) ** 2
    h = _half_width(v, tau2, alpha)
    p = _p_value(d, v, tau2)
    if base is None or not base > 0:
        return Difference(d, d - h, d + h, p, None, None, None)
    # Every metric is a non-negative mean, so the treatment's cannot fall below zero: the
    # interval is cut there (a narrower interval, still valid). Relative to the control mean,
    # taken as known: its own noise is second-order where an interval is narrow enough to read.
    low = max(d - h, -base)
    return Difference(d, low, d + h, p, d / base, low / base, (d + h) / base)


def compare(control: Summary, treatment: Summary, alpha: float = ALPHA) -> Difference | None:
    """Treatment against control; None until both arms have MIN_USERS users and some spread."""
    if control.n < MIN_USERS or treatment.n < MIN_USERS:
        return None
    v = control.var / control.n + treatment.var / treatment.n
    pooled = math.sqrt((control.var + treatment.var) / 2)
    return _difference(treatment.mean - control.mean, v, pooled, control.mean, alpha)


def versus_zero(values: Summary, alpha: float = ALPHA) -> Difference | None:
    """One sample's mean against zero (interleaving: each user's preference, +1/0/-1)."""
    if values.n < MIN_USERS:
        return None
    return _difference(values.mean, values.var / values.n, math.sqrt(values.var), None, alpha)


def srm(counts: Sequence[int], weights: Sequence[float]) -> float | None:
    """The chi-square p-value of the arms' user counts against the configured split (None
    with too few users to say)."""
    total = sum(counts)
    if total < 20 or len(counts) < 2:
        return None
    w = np.asarray(weights, dtype=np.float64)
    expected = total * w / w.sum()
    stat = float(((np.asarray(counts) - expected) ** 2 / expected).sum())
    return float(sps.chi2.sf(stat, len(counts) - 1))
