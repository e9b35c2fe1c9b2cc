"""Content-constrained implicit ALS ("CALS"): every item's collaborative factors are a linear
function of its content, y_i = Aᵀ z_i, and A is fitted on the implicit-ALS objective itself,
with the confidences ALS trains on, not by regressing ALS's factors after the fact (as
`content_map` does, Gantner et al. 2010). A brand-new item then has factors exactly like an
established one: its content says where it sits in the behavioural space, and a user's score
for it is y_i · x_u, landing it among the items its audience already likes.

Fitting alternates (a) A given the user factors, a least-squares problem over all user-item
pairs solved by conjugate gradient without forming the (D·f)² system, and (b) the ALS user step
given the item factors ZA, starting from the trained ALS user factors. Its byproducts:

- each training user's CALS vector x_u (the user step over their whole history, stored: serving
  keeps only 50 recent positives per user), and for users who came later a fold-in from their
  recent positives against CALS item factors (the ALS fold-in, with the stored gram ZAᵀZA);
- the predicted audience of an item, y_i · mean(x_u): how much the user base as a whole is
  predicted to take to it (a content-predicted engagement prior, one column of the map).

Pure numpy and scipy; fitted by `medley.recs.learn` in the training task, stored in the
collaborative model's blob.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, cg

from medley.recs.content_map import LinearMap

LAM = 1.0  # ridge on A, x the mean eigenvalue of (ZᵀZ ⊗ XᵀX) (chosen on validation)
OUTER = 3  # A-step / user-step alternations (validation: 3 beat 1 and 2; more did not pay)
CG_ITERS = 60  # conjugate-gradient steps per A-step, warm-started from the previous A
MIN_ITEMS = 20  # items with content the map needs to learn from; fewer: no map
MIN_USERS = 5  # users with a positive; fewer: no map
# The per-user taste classifier ("uclf"): a ridge fit in the same content space, liked items 1,
# items touched but not liked 0, plus the most-engaged items the user never touched 0.
CLF_LAM = 10.0
CLF_NEGATIVES = 100
# The classifiers travel in the model blob that every serving process loads: at most this many
# bytes of them (float16, D+modalities+1 per user), for the most active users; the others get
# none (their classifier input counts as average). 48 MiB: ~65k users with text alone, ~10k
# with four modalities.
CLF_MAX_BYTES = 48 * 1024 * 1024


def design(units: np.ndarray, present: np.ndarray, means: np.ndarray,
           widths: Sequence[int]) -> np.ndarray:
    """z_i: each modality block minus that modality's catalog mean, renormalised (the centred
    content the taste vectors use), zero where the item lacks the modality; then one presence
    bit per modality and a constant 1. float64 (the CG sums over every user-item pair)."""
    x = np.asarray(units, dtype=np.float64) - np.asarray(means, dtype=np.float64)
    start = 0
    for k, w in enumerate(widths):
        block = x[:, start : start + w]
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        block /= np.maximum(norms, 1e-6)
        block *= present[:, k : k + 1]
        start += w
    return np.hstack([x, present.astype(np.float64), np.ones((len(x), 1))])


@dataclass
class Cals(LinearMap):
    """z(item) @ weights -> [CALS factors..., predicted audience]; user vectors beside."""

    layout: list[tuple[str, int]]  # (modality, width) of the content blocks, in order
    means: np.ndarray  # (D,) the catalog means the blocks were centred on
    weights: np.ndarray  # (D + modalities + 1, f + 1): A, then A·mean(x_u)
    user_factors: np.ndarray  # (users, f) float32, rows as the model's user_ids
    gram: np.ndarray  # (f, f) YᵀY over the items it was fitted on, for fold-in
    regularization: float  # the user step's (ALS's)
    # (users, D + modalities + 1) float16: each training user's taste classifier weights over
    # z (`classifiers`), rows as user_factors; None: not learned.
    uclf: np.ndarray | None = None

    # predict() -> (CALS factors, predicted audience)
    design = staticmethod(design)

    def fold_in(self, factors: np.ndarray, confidence: np.ndarray) -> np.ndarray | None:
        """The ALS user step against CALS item factors of the user's positives (`factors`,
        with their confidences): a user the model has not seen."""
        if not len(factors):
            return None
        y = factors.astype(np.float64)
        c = np.asarray(confidence, dtype=np.float64)
        a = self.gram + (y.T * (c - 1.0)) @ y + self.regularization * np.eye(y.shape[1])
        return np.linalg.solve(a, (y.T * c).sum(axis=1)).astype(np.float32)

    def classify(self, units: np.ndarray, present: np.ndarray, weights: np.ndarray
                 ) -> np.ndarray:
        """A user's taste classifier (`weights`, a row of `uclf`) over these items."""
        return design(units, present, self.means, self.widths) @ weights.astype(np.float64)

    def without(self, keep_users: Sequence[int]) -> Cals:
        keep = list(keep_users)
        return Cals(self.layout, self.means, self.weights, self.user_factors[keep],
                    self.gram, self.regularization,
                    self.uclf[keep] if self.uclf is not None else None)


def a_step(z: np.ndarray, x: np.ndarray, conf: sp.csr_matrix, lam: float,
           a0: np.ndarray | None = None, iters: int = CG_ITERS) -> np.ndarray:
    """argmin_A Σ_ui c_ui (p_ui - x_uᵀ Aᵀ z_i)² + λ·s·‖A‖² over all pairs (c = 1 and p = 0
    where the user never touched the item; c = the confidence, p = 1 where they did), s the
    mean eigenvalue of the normal matrix. The normal operator is applied as ZᵀZ A XᵀX plus a
    sparse correction over the observed pairs, so one CG step costs O(N·D·f + nnz·f)."""
    d, f = z.shape[1], x.shape[1]
    ztz, xtx = z.T @ z, x.T @ x
    coo = conf.tocoo()
    uu, ii, cc = coo.row, coo.col, coo.data.astype(np.float64)
    scale = float(np.trace(ztz) * np.trace(xtx)) / (d * f)
    n_items, n_users = z.shape[0], x.shape[0]
    rhs = z.T @ (sp.csr_matrix((cc, (ii, uu)), shape=(n_items, n_users)) @ x)
    order = np.lexsort((uu, ii))  # item-major, then user: the layout of `pattern` below
    ii_s, uu_s, cc_s = ii[order], uu[order], cc[order] - 1.0
    indptr = np.concatenate([[0], np.cumsum(np.bincount(ii_s, minlength=n_items))])
    pattern = sp.csr_matrix((np.zeros(len(ii_s)), uu_s, indptr), shape=(n_items, n_users))

    def matvec(flat: np.ndarray) -> np.ndarray:
        a = flat.reshape(d, f)
        za = z @ a
        s = np.einsum("nf,nf->n", za[ii_s], x[uu_s]) * cc_s
        pattern.data = s
        out = ztz @ a @ xtx + z.T @ (pattern @ x) + lam * scale * a
        return out.ravel()

    op = LinearOperator((d * f, d * f), matvec=matvec, dtype=np.float64)
    sol, _ = cg(op, rhs.ravel(), x0=None if a0 is None else a0.ravel(), maxiter=iters)
    return np.asarray(sol).reshape(d, f)


def user_step(y: np.ndarray, conf: sp.csr_matrix, reg: float) -> np.ndarray:
    """The implicit-ALS user step for every user against item factors `y`."""
    gram = y.T @ y
    f = y.shape[1]
    out = np.zeros((conf.shape[0], f))
    eye = reg * np.eye(f)
    for u in range(conf.shape[0]):
        s, e = conf.indptr[u], conf.indptr[u + 1]
        if s == e:
            continue
        idx, c = conf.indices[s:e], conf.data[s:e].astype(np.float64)
        yu = y[idx]
        out[u] = np.linalg.solve(gram + (yu.T * (c - 1.0)) @ yu + eye, (yu.T * c).sum(axis=1))
    return out


def fit(layout: Sequence[tuple[str, int]], units: np.ndarray, present: np.ndarray,
        means: np.ndarray, conf: sp.csr_matrix, user_factors: np.ndarray, reg: float, *,
        touched: sp.csr_matrix | None = None, liked: sp.csr_matrix | None = None,
        lam: float = LAM, outer: int = OUTER, iters: int = CG_ITERS) -> Cals | None:
    """Fit on the model's items (rows of `units`/`present`, columns of `conf`) and users (rows
    of `conf` and of the ALS `user_factors` it starts from); with `touched` and `liked` (same
    shape as `conf`), each user's taste classifier too. None when there is too little to
    learn from: fewer than MIN_ITEMS items with content or MIN_USERS users."""
    has = present.any(axis=1)
    if len(layout) == 0 or has.sum() < MIN_ITEMS or conf.shape[0] < MIN_USERS:
        return None
    z = design(units, present, means, [w for _, w in layout])
    x = np.asarray(user_factors, dtype=np.float64)
    a = None
    for _ in range(outer):
        a = a_step(z, x, conf, lam, a, iters)
        x = user_step(z @ a, conf, reg)
    assert a is not None
    y = z @ a
    weights = np.hstack([a, (a @ x.mean(axis=0))[:, None]])
    uclf = classifiers(z, touched, liked) if touched is not None and liked is not None \
        else None
    return Cals([(m, int(w)) for m, w in layout], np.asarray(means, dtype=np.float32),
                weights.astype(np.float32), x.astype(np.float32), y.T @ y, float(reg), uclf)


def classifiers(z: np.ndarray, touched: sp.csr_matrix, liked: sp.csr_matrix,
                lam: float = CLF_LAM, negatives: int = CLF_NEGATIVES) -> np.ndarray:
    """Per user (rows of `touched`/`liked`, users x items over the rows of `z`), ridge weights
    w with z_i·w ≈ liked (1) or not (0) over the items they touched plus the `negatives` items
    most users touched that they did not: a taste boundary in content space, which a mean
    taste vector cannot draw (it sees no dislikes, nor what the user passed over). Solved in
    whichever space is smaller (items or dimensions: the same answer)."""
    n_users, d = touched.shape[0], z.shape[1]
    audience = np.asarray((touched > 0).sum(axis=0)).ravel()
    popular = np.argsort(-audience, kind="stable")[: 3 * negatives]
    out = np.zeros((n_users, d), dtype=np.float16)
    eye_d = lam * np.eye(d)
    activity = np.diff(touched.indptr)
    most = max(1, CLF_MAX_BYTES // (2 * d))
    users = np.arange(n_users) if n_users <= most else \
        np.sort(np.argsort(-activity, kind="stable")[:most])
    for u in users:
        s, e = touched.indptr[u], touched.indptr[u + 1]
        mine = touched.indices[s:e]
        if not len(mine):
            continue
        good = set(liked.indices[liked.indptr[u] : liked.indptr[u + 1]].tolist())
        seen = set(mine.tolist())
        neg = [int(i) for i in popular if int(i) not in seen][:negatives]
        idx = np.concatenate([mine, np.asarray(neg, dtype=mine.dtype)])
        y = np.array([1.0 if int(i) in good else 0.0 for i in mine] + [0.0] * len(neg))
        x = z[idx]
        y = y - y.mean()
        if len(idx) < d:
            w = x.T @ np.linalg.solve(x @ x.T + lam * np.eye(len(idx)), y)
        else:
            w = np.linalg.solve(x.T @ x + eye_d, x.T @ y)
        out[u] = w
    return out
