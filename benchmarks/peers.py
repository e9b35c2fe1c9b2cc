"""The stronger peers of `python -m benchmarks eval` (issue 11): centred content, a z-score
blend of ALS and content tuned on validation, and LightFM with item features.

They read the same fitted state as Medley (split, item table, behaviour, ALS model) and are
scored by the same metric code (`medley.recs.evaluation.measure`), so every number comes from
the same run.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from medley.config import Settings
from medley.recs import evaluation
from medley.recs.behavior import Behavior
from medley.recs.collab import CollabModel
from medley.recs.evaluation import K, Split, ndcg_at_k
from medley.recs.items import ItemTable
from medley.recs.signals import TASTE_HALF_LIFE_S

PEER_SYSTEMS = ("content_centred", "zblend", "lightfm")
# Ranked here: the new peers, and content-only on raw vectors (Medley's own taste vector is
# centred now, so it no longer stands for plain content similarity).
RANKED_HERE = ("content", *PEER_SYSTEMS)
# Peers that rank new items by content alone: zblend too, since ALS knows none of them.
CONTENT_ONLY = ("content", "content_centred", "zblend")
VARIANTS = ("raw", "centred")
BLEND_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
# Content's share of the blend never quite reaches 0: where ALS ties (items it has never seen
# get the candidates' mean), content still orders them, so w = 0 is "ALS, then content".
TIE = 1e-6
LIGHTFM_EPOCHS = 30
# One thread: LightFM's threads update shared weights without locks, so two give a different
# model each run; one is as fast here (~7-9 s on ml-latest-small) and reproducible.
LIGHTFM_THREADS = 1
LIGHTFM_PARAMS: dict[str, Any] = {"no_components": 64, "loss": "warp", "learning_rate": 0.05,
                                  "random_state": 0}


def have_lightfm() -> bool:
    return importlib.util.find_spec("lightfm") is not None


class Fitted(Protocol):
    """What a peer reads from a fitted world (`medley.recs.evaluation.World` is one)."""

    split: Split
    table: ItemTable
    behavior: Behavior
    collab: CollabModel | None


@dataclass
class _Fitted:
    split: Split
    table: ItemTable
    behavior: Behavior
    collab: CollabModel | None


# --- the maths ------------------------------------------------------------------------------
def unit_rows(m: np.ndarray) -> np.ndarray:
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-9)


def centre(matrix: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
    """Rows minus the mean row (over rows that have a vector), renormalised. Sentence vectors
    share one large common direction, which makes short, generic texts close to everything;
    taking the catalog mean out leaves what tells items apart. Rows without a vector stay 0."""
    present = np.ones(len(matrix), dtype=bool) if present is None else present
    out = np.zeros_like(matrix, dtype=np.float32)
    if present.any():
        out[present] = unit_rows(matrix[present] - matrix[present].mean(axis=0))
    return out


def taste(matrix: np.ndarray, table: ItemTable, positives: Iterable[tuple[str, float, float]],
          now: float) -> np.ndarray | None:
    """Unit recency-weighted mean of the liked items' rows of `matrix`, weighted as Medley's
    own taste vector is (event weight, halved every TASTE_HALF_LIFE_S); None without any."""
    pos = list(positives)
    rows = table.rows([i for i, _, _ in pos])
    weights = np.array([w * 0.5 ** (max(now - ts, 0.0) / TASTE_HALF_LIFE_S) for _, w, ts in pos])
    ok = rows >= 0
    if not ok.any():
        return None
    v = weights[ok] @ matrix[rows[ok]]
    n = float(np.linalg.norm(v))
    # float32 like the item matrix: a float64 query would upcast the whole matrix per call
    return (v / n).astype(np.float32) if n > 0 else None


def zscore(scores: np.ndarray) -> np.ndarray:
    """(s - mean) / sd over the finite scores; NaN (an item the model has never seen) and a
    constant score get 0, the candidates' mean, so they neither win nor lose on this term."""
    out = np.zeros(len(scores), dtype=np.float64)
    ok = np.isfinite(scores)
    if ok.sum() > 1:
        s = scores[ok].astype(np.float64)
        sd = float(s.std())
        if sd > 0:
            out[ok] = (s - s.mean()) / sd
    return out


def blend(z_als: np.ndarray, z_content: np.ndarray, weight: float) -> np.ndarray:
    return z_als + (weight + TIE) * z_content


def top_ids(ids: Sequence[str], rows: np.ndarray, scores: np.ndarray, k: int = K) -> list[str]:
    """The `ids` of the `rows` with the k highest `scores` (one per row), best first."""
    k = min(k, len(scores))
    if k <= 0:
        return []
    part = np.argpartition(-scores, k - 1)[:k]
    return [ids[rows[i]] for i in part[np.argsort(-scores[part], kind="stable")]]


# --- the peers' state ---------------------------------------------------------------------
@dataclass
class BlendChoice:
    variant: str = "centred"
    weight: float = 0.5
    # [variant, weight, validation NDCG@10 overall, validation NDCG@10 on its new items]
    trail: list[list[Any]] = field(default_factory=list)


@dataclass
class LightFMPeer:
    users: dict[str, int]
    user_vecs: np.ndarray  # per training user: [embedding, 1]
    item_vecs: np.ndarray  # per table row: [embedding, item bias]

    def scores(self, user: str) -> np.ndarray | None:
        r = self.users.get(user)
        return None if r is None else self.item_vecs @ self.user_vecs[r]


@dataclass
class PeerState:
    content: dict[str, np.ndarray]  # variant -> unit item vectors, one row per table row
    als_rows: np.ndarray  # per table row: its ALS row, -1 where ALS has never seen it
    candidates: np.ndarray  # per table row: an overall candidate of the split (not held out)
    blend: BlendChoice
    lightfm: LightFMPeer | None = None
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"zblend": {"variant": self.blend.variant, "weight": self.blend.weight,
                           "trail [variant, weight, val ndcg@10, val new-items ndcg@10]":
                           self.blend.trail},
                "lightfm": {**LIGHTFM_PARAMS, "epochs": LIGHTFM_EPOCHS,
                            "threads": LIGHTFM_THREADS} if self.lightfm
                else None, "notes": self.notes}


def content_spaces(table: ItemTable) -> dict[str, np.ndarray]:
    rows = np.arange(len(table.ids))
    raw = table.vectors_of(rows).astype(np.float32)
    present = np.asarray(table.has_vector(rows), dtype=bool)
    return {"raw": unit_rows(raw), "centred": centre(raw, present)}


def _state(f: Fitted, content: dict[str, np.ndarray]) -> PeerState:
    als_rows = np.array([-1 if f.collab is None else f.collab.item_row.get(i, -1)
                         for i in f.table.ids], dtype=np.int64)
    candidates = np.isin(np.array(f.table.ids, dtype=object), list(f.split.candidates))
    return PeerState(content, als_rows, candidates, BlendChoice())


def prepare(w: Fitted, settings: Settings,
            train_als: Callable[[Split], CollabModel | None] | None = None, *,
            with_lightfm: bool = True) -> PeerState:
    """Everything the peers need on `w`: content spaces, the blend chosen on a validation
    split of `w`'s training ratings (when `train_als` is given; else the defaults), LightFM."""
    state = _state(w, content_spaces(w.table))
    if train_als is not None:
        state.blend = choose_blend(validation(w, settings, train_als), state.content)
    if with_lightfm and have_lightfm():
        state.lightfm = fit_lightfm(w)
    elif with_lightfm:
        state.notes.append("LightFM skipped: `lightfm` is not installed (`make setup` builds it).")
    return state


# --- ranking ----------------------------------------------------------------------------------
def _user_z(state: PeerState, f: Fitted, user: str,
            rows: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Over the candidate `rows`: the user's ALS scores and content scores per variant, each
    z-scored. ALS: trained user factors, else folded in from the recent positives."""
    u = f.behavior.user(user)
    positives = list(u.positives) if u else []
    als = np.full(len(rows), np.nan)
    if f.collab is not None:
        r = f.collab.user_row.get(user)
        uv = (f.collab.user_factors[r] if r is not None
              else f.collab.fold_in((i, wt) for i, wt, _ in positives))
        ar = state.als_rows[rows]
        if uv is not None and (ar >= 0).any():  # all items, then pick: cheaper than a gather
            als[ar >= 0] = (f.collab.item_factors @ uv)[ar[ar >= 0]]
    zc = {}
    for variant, m in state.content.items():
        t = taste(m, f.table, positives, f.split.now)
        zc[variant] = zscore((m @ t)[rows]) if t is not None else np.zeros(len(rows))
    return zscore(als), zc


def candidate_rows(state: PeerState, f: Fitted, skip: Iterable[str]) -> np.ndarray:
    """Table rows of the split's overall candidates (not held out) less `skip`."""
    keep = state.candidates.copy()
    gone = f.table.rows(list(skip))
    keep[gone[gone >= 0]] = False
    return np.flatnonzero(keep)


def peer_scores(state: PeerState, f: Fitted, system: str, user: str,
                rows: np.ndarray) -> np.ndarray | None:
    """`system`'s score for each of the table `rows` (None: no opinion on this user)."""
    if system == "lightfm":
        s = state.lightfm.scores(user) if state.lightfm is not None else None
        return None if s is None else s[rows]
    if system in ("content", "content_centred"):
        u = f.behavior.user(user)
        m = state.content["raw" if system == "content" else "centred"]
        t = taste(m, f.table, u.positives if u else [], f.split.now)
        return None if t is None else (m @ t)[rows]
    z_als, zc = _user_z(state, f, user, rows)
    return blend(z_als, zc[state.blend.variant], state.blend.weight)


def rank(state: PeerState, f: Fitted, system: str, user: str, skip: Iterable[str]) -> list[str]:
    """`system`'s top K of the overall candidates, less `skip`."""
    rows = candidate_rows(state, f, skip)
    s = peer_scores(state, f, system, user, rows)
    return [] if s is None else top_ids(f.table.ids, rows, s)


# --- the blend's validation ---------------------------------------------------------------------
def validation(w: Fitted, settings: Settings,
               train_als: Callable[[Split], CollabModel | None]) -> _Fitted:
    """`w`'s training ratings re-split as `evaluate.tune` does (each user's history 90/10, a
    share of items held out, seed 1), with behaviour and ALS fitted on its training part."""
    val = evaluation.split(w.split.train, w.split.candidates, test_share=0.1, seed=1)
    stream = evaluation.events(val.train)
    behavior = Behavior(settings.popularity_half_life_days * 86400,
                        settings.trending_half_life_hours * 3600)
    behavior.reset_cooc(len(stream))
    behavior.apply(stream)
    return _Fitted(val, w.table, behavior, train_als(val))


def choose_blend(val: _Fitted, content: dict[str, np.ndarray]) -> BlendChoice:
    """The (variant, weight) with the best validation NDCG@10 overall plus NDCG@10 on its
    new items (the weight only moves the first; the variant moves both)."""
    state = _state(val, content)
    combos = [(v, wt) for v in VARIANTS for wt in BLEND_WEIGHTS]
    overall: dict[tuple[str, float], list[float]] = {c: [] for c in combos}
    new: dict[tuple[str, float], list[float]] = {c: [] for c in combos}
    held = val.table.rows(sorted(val.split.held_out))
    for found, relevant, new_items in ((overall, val.split.relevant(), False),
                                       (new, val.split.relevant_new(), True)):
        for user, liked in relevant.items():
            u = val.behavior.user(user)
            rows = held if new_items else candidate_rows(state, val, u.consumed if u else ())
            z_als, zc = _user_z(state, val, user, rows)
            for v, wt in combos:
                top = top_ids(val.table.ids, rows, blend(z_als, zc[v], wt))
                found[(v, wt)].append(ndcg_at_k(top, liked))
    value = {c: (float(np.mean(overall[c] or [0.0])), float(np.mean(new[c] or [0.0])))
             for c in combos}
    best = max(combos, key=lambda c: sum(value[c]))
    trail = [[v, wt, round(a, 4), round(b, 4)] for (v, wt), (a, b) in value.items()]
    return BlendChoice(best[0], best[1], trail)


# --- LightFM --------------------------------------------------------------------------------------
def item_features(table: ItemTable, held_out: frozenset[str]) -> Any:
    """One identity column per item (none for held-out items: nothing could have trained it,
    as for an item that arrives after training), then one column per genre tag; each row
    normalised to sum 1, as LightFM's own `Dataset` does."""
    import scipy.sparse as sp

    n = len(table.ids)
    infos = [table.get(i) for i in table.ids]
    tags = sorted({t for info in infos if info for t in info.tags})
    col = {t: n + k for k, t in enumerate(tags)}
    rows, cols = [], []
    for r, (item, info) in enumerate(zip(table.ids, infos, strict=True)):
        mine = ([] if item in held_out else [r]) + [col[t] for t in (info.tags if info else ())]
        rows += [r] * len(mine)
        cols += mine
    m = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                      shape=(n, n + len(tags)))
    sums = np.asarray(m.sum(axis=1)).ravel()
    return sp.diags(1.0 / np.maximum(sums, 1.0)).astype(np.float32) @ m


def fit_lightfm(f: Fitted, epochs: int = LIGHTFM_EPOCHS) -> LightFMPeer:
    """LightFM (WARP) on the training events, weighted as ALS is (view 1, like 3, summed per
    user-item); users by identity, items by `item_features`."""
    import scipy.sparse as sp
    from lightfm import LightFM

    totals: dict[tuple[str, str], float] = {}
    for _, e in evaluation.events(f.split.train):
        totals[(e.user_id, e.item_id)] = totals.get((e.user_id, e.item_id), 0.0) + e.weight
    users = {u: k for k, u in enumerate(sorted({u for u, _ in totals}))}
    row_of = dict(zip(f.table.ids, range(len(f.table.ids)), strict=True))
    pairs = [(users[u], row_of[i], wt) for (u, i), wt in totals.items() if i in row_of]
    ur, ir, wts = (np.array(x) for x in zip(*pairs, strict=True))
    shape = (len(users), len(f.table.ids))
    interactions = sp.coo_matrix((np.ones(len(ur), dtype=np.float32), (ur, ir)), shape=shape)
    weights = sp.coo_matrix((wts.astype(np.float32), (ur, ir)), shape=shape)
    features = item_features(f.table, f.split.held_out)
    model = LightFM(**LIGHTFM_PARAMS)
    model.fit(interactions, item_features=features, sample_weight=weights, epochs=epochs,
              num_threads=LIGHTFM_THREADS)
    item_bias, item_emb = model.get_item_representations(features)
    _, user_emb = model.get_user_representations()
    return LightFMPeer(users, np.hstack([user_emb, np.ones((len(users), 1))]).astype(np.float32),
                       np.hstack([item_emb, item_bias[:, None]]).astype(np.float32))
