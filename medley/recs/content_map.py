"""Content -> behaviour: a ridge regression from an item's content vectors to its collaborative
factors and its engagement, learned on established items (Gantner et al., "Learning
Attribute-to-Feature Mappings for Cold-Start Recommendations", ICDM 2010).

A brand-new item has no ALS factors, so ALS cannot score it. Its predicted factors can: the user
vector times them scores it like any item, landing it among the items its audience already
likes. The input is every modality the item has, each block centred on the catalog mean (the
shared direction of sentence embeddings says nothing about taste) plus one presence bit per
modality, so an item with only artwork and one with only a description both map.

Pure numpy; the fitted map travels inside the collaborative model's blob.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

ALPHAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # ridge strengths tried, x the mean eigenvalue
FOLDS = 5


def design(units: np.ndarray, present: np.ndarray, means: np.ndarray,
           widths: Sequence[int]) -> np.ndarray:
    """The regression input: per-modality unit blocks minus that modality's catalog mean
    (zero where the item lacks the modality), then the presence bits and a constant 1."""
    x = np.asarray(units, dtype=np.float32) - np.asarray(means, dtype=np.float32)
    start = 0
    for k, w in enumerate(widths):
        x[:, start : start + w] *= present[:, k : k + 1]
        start += w
    ones = np.ones((len(x), 1), dtype=np.float32)
    return np.hstack([x, present.astype(np.float32), ones])


def _solve(eig: tuple[np.ndarray, np.ndarray], xty: np.ndarray, lam: float) -> np.ndarray:
    vals, vecs = eig
    return (vecs / (vals + lam)) @ (vecs.T @ xty)


def _fit_folds(x: np.ndarray, y: np.ndarray, folds: np.ndarray, alphas: Sequence[float],
               dual: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Ridge with the strength that has the least out-of-fold squared error: (weights, the
    out-of-fold predictions at that strength, i.e. what an unseen item's prediction looks
    like). Solved in whichever space is smaller: features (D x D, for catalogs with more
    items than dimensions) or items (N x N, for small catalogs: at 2,304 dimensions and a few
    hundred items the feature space would cost seconds per fold for nothing). Both give the
    same answer: (XᵀX + λI)⁻¹XᵀY = Xᵀ(XXᵀ + λI)⁻¹Y."""
    x64 = x.astype(np.float64)
    dual = len(x) < x.shape[1] if dual is None else dual
    # Strengths are relative to the mean eigenvalue of XᵀX (the same in both spaces).
    scale = float((x64 * x64).sum()) / x.shape[1]
    oof = np.zeros((len(alphas), *y.shape), dtype=np.float64)
    if dual:
        k = x64 @ x64.T
        for f in np.unique(folds):
            tr, te = folds != f, folds == f
            vals, vecs = np.linalg.eigh(k[np.ix_(tr, tr)])
            vy = vecs.T @ y[tr]
            for a, alpha in enumerate(alphas):
                oof[a, te] = k[np.ix_(te, tr)] @ (vecs / (vals + alpha * scale)) @ vy
    else:
        grams = {}
        for f in np.unique(folds):
            xf = x64[folds == f]  # each fold's XᵀX once: a fold's training gram is the total
            grams[f] = (xf.T @ xf, xf.T @ y[folds == f])  # minus its own
        gram = sum(g for g, _ in grams.values())
        xty = sum(c for _, c in grams.values())
        for f, (g, c) in grams.items():
            eig = np.linalg.eigh(gram - g)
            for a, alpha in enumerate(alphas):
                oof[a, folds == f] = x64[folds == f] @ _solve(eig, xty - c, alpha * scale)
    errors = [float(((oof[a] - y) ** 2).sum()) for a in range(len(alphas))]
    best = int(np.argmin(errors))
    lam = float(alphas[best]) * scale
    if dual:
        vals, vecs = np.linalg.eigh(k)
        weights = x64.T @ ((vecs / (vals + lam)) @ (vecs.T @ y))
    else:
        weights = _solve(np.linalg.eigh(gram), xty, lam)
    return weights, oof[best]


class LinearMap:
    """What a map from content to behaviour shares, whichever way it was fitted: its input
    layout (modality blocks, in order), the catalog means they are centred on, and a weight
    matrix whose last column is a per-item scalar (engagement, audience). Subclasses are
    dataclasses with those three fields and their own `design`."""

    layout: list[tuple[str, int]]
    means: np.ndarray
    weights: np.ndarray
    design: Callable[[np.ndarray, np.ndarray, np.ndarray, Sequence[int]], np.ndarray]

    @property
    def widths(self) -> list[int]:
        return [w for _, w in self.layout]

    def predict(self, units: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(predicted factors (n, f), the last column (n,)) for these items."""
        out = type(self).design(units, present, self.means, self.widths) @ self.weights
        return out[:, :-1].astype(np.float32), out[:, -1]

    def matches(self, layout: Sequence[tuple[str, int]]) -> bool:
        return [tuple(p) for p in self.layout] == [tuple(p) for p in layout]


@dataclass
class ContentMap(LinearMap):
    """x(item) @ weights -> [collaborative factors..., log(1 + interactions)]."""

    layout: list[tuple[str, int]]  # (modality, width) of the content blocks, in order
    means: np.ndarray  # (D,) the catalog means the blocks were centred on
    weights: np.ndarray  # (D + modalities + 1, factors + 1)
    r2: float  # out-of-fold share of the factors' variance explained (reported, not used)
    # predict() -> (factors, predicted log engagement)
    design = staticmethod(design)


def fit(
    layout: Sequence[tuple[str, int]], units: np.ndarray, present: np.ndarray,
    means: np.ndarray, factors: np.ndarray, engagement: np.ndarray, *, seed: int = 0,
) -> tuple[ContentMap, np.ndarray] | None:
    """Fit on established items: their content (units, present), ALS factors and log
    engagement. Returns the map and its out-of-fold predictions for those same items (the
    ranker's training features must look like predictions for unseen items, not in-sample
    fits); None when too few items have content to learn from."""
    has = present.any(axis=1)
    if has.sum() < 2 * FOLDS or len(layout) == 0:
        return None
    widths = [w for _, w in layout]
    x = design(units, present, means, widths)
    y = np.hstack([factors, engagement[:, None]]).astype(np.float64)
    y_mean = y[has].mean(axis=0)
    folds = np.random.default_rng(seed).integers(0, FOLDS, size=len(x))
    folds[~has] = -1  # items without content: predicted, never learned from
    w, oof_fit = _fit_folds(x[has], y[has] - y_mean, folds[has], ALPHAS)
    w[-1] += y_mean  # the constant column carries the targets' mean
    oof = np.tile(y_mean, (len(x), 1))
    oof[has] = oof_fit + y_mean
    f = factors.shape[1]
    resid = ((oof[has, :f] - y[has, :f]) ** 2).sum()
    total = ((y[has, :f] - y_mean[:f]) ** 2).sum()
    r2 = float(1.0 - resid / total) if total > 0 else 0.0
    cmap = ContentMap([(m, int(d)) for m, d in layout], np.asarray(means, dtype=np.float32),
                      w.astype(np.float32), r2)
    return cmap, oof
