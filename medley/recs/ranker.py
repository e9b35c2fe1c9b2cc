"""The learned blend: a LightGBM LambdaRank model over the candidates' features
(`medley.recs.features`), trained on the platform's own history (`medley.recs.learn`).

It is kept only when it earns its place: on users held out of its training it must rank better
(NDCG@10) than every one of its inputs used alone; otherwise, and until there is enough data,
serving uses the hand-set blend (`medley.recs.ranking.blend`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medley.recs.features import COLD
from medley.recs.knn import ItemKnn
from medley.recs.trees import Forest, Unsupported

log = logging.getLogger(__name__)

# "Enough data": users whose later events give the ranker something to learn, in all, and of
# those held out to check it. Below these the hand blend serves.
MIN_GROUPS = 50
MIN_VALIDATION_GROUPS = 20
VALIDATION_SHARE = 0.2
PARAMS: dict[str, Any] = {
    "objective": "lambdarank", "metric": "ndcg", "eval_at": [10],
    "lambdarank_truncation_level": 20, "learning_rate": 0.05, "num_leaves": 15,
    "min_data_in_leaf": 50, "monotone_constraints_method": "advanced",
    "feature_fraction": 0.9, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
    "verbose": -1, "num_threads": 2, "seed": 0, "deterministic": True, "force_row_wise": True,
}
# Early stopping only on clear overfitting: with a few hundred users the validation NDCG is
# noisy, and stopping at its first dip left the model underfit on the validation split.
ROUNDS, PATIENCE = 300, 100
# How many trees are kept: the validation curve (NDCG@10 after each round) is noisy with a few
# hundred users, and its argmax swung with small changes to the candidate pools (79, 241 and
# 3 trees on MovieLens 100K's global cut, the answers' NDCG@10 swinging with it). A centred
# moving average over SMOOTH rounds is what is maximised, and of the forests within ROUNDS_LOSS
# of that best the smallest is kept: trees it would add cost every request and buy nothing
# measurable.
SMOOTH = 21
ROUNDS_LOSS = 0.001
REFIT = True  # a kept ranker is refitted on all groups (`train`)
# The cascade (early exit; Cambazoglu et al., WSDM 2010): every candidate goes through the
# first trees of the ensemble, only the shortlist best of them through the rest, so a request
# pays for the whole forest on a few dozen rows instead of a pool of several hundred. The share
# of trees in the first stage and the shortlist's length are chosen on the validation users:
# of the pairs (CASCADE_SHARES x SHORTLISTS) whose NDCG@10 stays within CASCADE_LOSS of the
# whole forest's, the one that walks the fewest trees per group; none if none does. An answer
# of up to shortlist / 3 items draws its top 3n (MMR's pool) from the shortlist; a longer one
# takes the rest in the first stage's order. The trees were the largest part of what the
# ranker added to a request (0.78 of 2.0 ms at 100k items, `benchmarks.ranker_cost`).
SHORTLISTS = (50, 100)
CASCADE_SHARES = (0.1, 0.2, 0.35, 0.5)
CASCADE_LOSS = 0.001
# Signals where more can only mean better: constraining the trees to respect that keeps a
# model trained on a few hundred users from learning noise (on the validation split it ranked
# clearly better than the unconstrained one). Item age and user activity may go either way.
EITHER_WAY = frozenset({"age_days", "user_events", "newer_than_mean", "newer_than_newest"})
# Features that rank on their own (higher = better): the bar the ranker must clear.
SINGLE = ("collab", "collab_mapped", "content", "liked_max", "pop_long", "interactions", "knn",
          "knn_recent", "collab_user")


@dataclass
class Group:
    """One user's candidates at a past moment: features and labels (1 liked later, else 0)."""

    x: np.ndarray
    y: np.ndarray
    cold: np.ndarray | None = None  # the cold scorer's own inputs (`features.COLD`), if any
    user: str | None = None  # whose (groups of one user never straddle fit and validation)
    extra: bool = False  # from an earlier cut of the events: fitted on, never validated on


@dataclass
class Ranker:
    names: list[str]
    model: str  # LightGBM's own text format
    meta: dict[str, Any] = field(default_factory=dict)
    knn: ItemKnn | None = None  # the "knn" feature's item-to-item weights (`features`)
    _booster: Any = field(default=None, init=False, repr=False, compare=False)
    _forest: Forest | None = field(default=None, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False,
                                  compare=False)

    def score(self, x: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        """Scores for these candidates' features (`extra`: the cold scorer's own inputs,
        `features.COLD`, rows as x's; needed only on the rows of new items). Among items
        nobody has engaged with yet, the order is the cold scorer's (`cold_scores`): the
        trees place new items among established ones, but on their own they rank new items
        against each other worse than the predicted collaborative score does (the trees see
        few such rows)."""
        scores = self._predict(x)
        cold = self.meta.get("cold")
        if cold is None:
            return scores
        new = self.new_rows(x)
        if len(new) > 1:
            sub = extra[new] if extra is not None else None
            order = new[np.argsort(-cold_scores(x[new], self.names, cold, sub), kind="stable")]
            # The same places, in the cold order; the trees often give new items one value,
            # so a tie-break far below any gap between tree outputs keeps that order.
            scores[order] = np.sort(scores[new])[::-1] - 1e-9 * np.arange(len(new))
        return scores

    def new_rows(self, x: np.ndarray) -> np.ndarray:
        """Rows of items nobody has engaged with yet (those the cold scorer orders)."""
        return np.flatnonzero(x[:, self.names.index("interactions")] == 0)

    @property
    def cold_needs_extra(self) -> bool:
        """Whether the cold scorer kept reads inputs beyond the tree features."""
        weights = _cold_weights(self.meta.get("cold"))
        return any(weights.get(name, 0.0) for name in COLD_EXTRA)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        self.load()
        if self._forest is None:
            # One thread: a request's few hundred rows cost less than waking a second one.
            return np.asarray(self._booster.predict(x, num_threads=1), dtype=np.float64)
        stages = self.meta.get("cascade") or {}
        if not stages:
            return self._forest.predict(x)
        return cascade(self._forest, x, int(stages["trees"]), int(stages["shortlist"]))

    def load(self) -> None:
        """Parse the model once (the booster, and its trees as flat arrays, `trees.Forest`)
        and compile the tree walk: the sync calls it when a model arrives, so no request waits
        on it."""
        if self._booster is not None:
            return
        with self._lock:
            if self._booster is None:
                import lightgbm as lgb

                booster = lgb.Booster(model_str=self.model)
                forest: Forest | None = None
                try:
                    forest = Forest.of(booster.dump_model())
                    forest.predict(np.zeros((1, forest.features)))  # compiles the walk
                except Unsupported:
                    forest = None
                except Exception:  # the compiled walk is a speed-up: LightGBM still scores
                    log.warning("the ranker's trees cannot be compiled; LightGBM scores them",
                                exc_info=True)
                    forest = None
                self._forest, self._booster = forest, booster

    def to_bytes(self) -> bytes:
        d: dict[str, Any] = {"names": self.names, "model": self.model, "meta": self.meta}
        if self.knn is not None:
            d["knn"] = self.knn.to_json()
        return json.dumps(d).encode()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Ranker:
        d = json.loads(blob.decode())
        knn = ItemKnn.from_json(d["knn"]) if d.get("knn") else None
        return cls(list(d["names"]), str(d["model"]), dict(d["meta"]), knn)


# The cold scorer: a weighted sum of its inputs, each z-scored over the new items being
# ordered. Tree features it may read, and inputs of its own (`features.COLD`).
COLD_FEATURES = ("collab_mapped", "content", "engagement_mapped", "liked_max")
COLD_EXTRA = COLD
# The weights tried (`fit_cold`; chosen on items held out of training, never on test data):
# the ridge map's predicted ALS score with centred content and predicted engagement (the
# scorer before CALS, kept in the running), and CALS's score with its predicted audience,
# centred content and the user's taste classifier.
COLD_GRID: tuple[dict[str, float], ...] = (
    *({"collab_mapped": 1.0, "content": c, "engagement_mapped": e}
      for c in (0.0, 0.25, 0.5, 1.0, 2.0) for e in (0.0, 0.25, 0.5, 1.0)),
    *({"cals": 1.0, "content": c, "cals_pop": p, "uclf": k}
      for c in (0.0, 0.5) for p in (0.0, 0.5, 1.0) for k in (0.0, 0.5, 1.0, 2.0)),
    # and around the usual best of those, the item's closest match among the user's recent
    # items (centred content) and the ridge map's predicted ALS score beside them
    *({"cals": 1.0, "cals_pop": p, "uclf": k, "liked_max": m, "collab_mapped": c}
      for p in (0.25, 0.5, 1.0) for k in (0.5, 1.0, 1.5) for m in (0.25, 0.5)
      for c in (0.0, 0.25)),
)


def _z(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    known = np.isfinite(a)
    if known.sum() < 2:
        return np.zeros(len(a))
    z = (a - a[known].mean()) / (a[known].std() or 1.0)
    return np.where(known, z, 0.0)  # unknown counts as average


def _cold_weights(cold: dict[str, Any] | None) -> dict[str, float]:
    """The weight per input; rankers stored before CALS carried {"weight": content weight,
    "engagement": engagement weight} beside an implicit 1 on collab_mapped."""
    if not cold:
        return {}
    if "weights" in cold:
        return {k: float(v) for k, v in cold["weights"].items()}
    return {"collab_mapped": 1.0, "content": float(cold.get("weight", 0.0)),
            "engagement_mapped": float(cold.get("engagement", 0.0))}


def cold_scores(x: np.ndarray, names: Sequence[str], cold: dict[str, Any],
                extra: np.ndarray | None = None) -> np.ndarray:
    """Σ w_k · z(input_k), each input z-scored over the items being ordered: the user
    vector's length differs by user, so fixed scales would let one signal drown the others
    for heavy users and the reverse for light ones. Inputs come from the tree features `x`
    (columns `names`) or the cold scorer's own `extra` (columns `features.COLD`); a missing
    input counts as average for every item."""
    out = np.zeros(len(x))
    for name, w in _cold_weights(cold).items():
        if not w:
            continue
        if name in COLD_EXTRA:
            if extra is None:
                continue
            col = extra[:, COLD_EXTRA.index(name)]
        else:
            col = x[:, list(names).index(name)]
        out += w * _z(col)
    return out


def cascade(forest: Forest, x: np.ndarray, first: int, shortlist: int) -> np.ndarray:
    """Scores through the cascade: all rows through the first `first` trees, the `shortlist`
    best of them through the rest. The others rank below every shortlisted row, in the first
    stage's order, with its gaps."""
    scores = forest.predict(x, stop=first)
    if len(x) <= shortlist or first >= forest.trees:
        return forest.predict(x, start=first, out=scores) if first < forest.trees else scores
    top = np.argpartition(-scores, shortlist - 1)[:shortlist]
    partial = scores.copy()
    forest.predict(x, rows=top, start=first, out=scores)
    rest = np.ones(len(x), dtype=bool)
    rest[top] = False
    floor = scores[top].min() - 1e-6
    scores[rest] = floor - (partial[rest].max() - partial[rest])
    return scores


def fit_cascade(forest: Forest, groups: Sequence[Group],
                shortlists: Sequence[int] = SHORTLISTS) -> dict[str, Any]:
    """The cascade's first stage and shortlist: of the (share of CASCADE_SHARES, shortlist)
    pairs whose NDCG@10 on these (held-out) groups is within CASCADE_LOSS of the whole
    forest's, the one with the fewest tree walks per group; {} if none. A shortlist is tried
    only where most groups are longer than it (else the check would not exercise it)."""
    full = mean_ndcg(groups, lambda g: forest.predict(g.x))
    tried: dict[str, float] = {}
    best: dict[str, Any] = {}
    for shortlist in shortlists:
        if 2 * sum(len(g.y) > shortlist for g in groups) < len(groups):
            continue
        for share in CASCADE_SHARES:
            first = max(1, round(share * forest.trees))
            got = mean_ndcg(groups, lambda g, f=first, k=shortlist: cascade(forest, g.x, f, k))
            tried[f"{share:g}/{shortlist}"] = round(got, 4)
            walks = float(np.mean([len(g.y) * first + min(len(g.y), shortlist)
                                   * (forest.trees - first) for g in groups]))
            if got >= full - CASCADE_LOSS and (not best or walks < best["walks"]):
                best = {"share": share, "trees": first, "shortlist": shortlist,
                        "ndcg@10": round(got, 4), "full_ndcg@10": round(full, 4),
                        "walks": round(walks, 1),
                        "whole_walks": round(float(np.mean([len(g.y) for g in groups]))
                                             * forest.trees, 1)}
    return {**best, "tried": tried} if best else {}


def _label(weights: dict[str, float]) -> str:
    return " ".join(f"{k}={v:g}" for k, v in weights.items())


def fit_cold(groups: Sequence[Group], names: Sequence[str]) -> dict[str, Any]:
    """The cold scorer's weights with the best NDCG@10 on these groups (`learn`'s held-out
    items, each user's likes among them ranked as if just published). Weightings that read
    inputs the groups lack (no CALS: too little data) are not tried."""
    has_extra = any(g.cold is not None and np.isfinite(g.cold[:, 0]).any() for g in groups)
    grid = [w for w in COLD_GRID if has_extra or not any(w.get(k) for k in COLD_EXTRA)]
    tried = [(w, mean_ndcg(groups, lambda g, w=w: cold_scores(g.x, names, {"weights": w},
                                                               g.cold)))
             for w in grid]
    best = max(range(len(tried)), key=lambda k: tried[k][1])  # the first of equals
    return {"weights": tried[best][0],
            "ndcg@10": {_label(w): round(v, 4) for w, v in tried}}


def ndcg(scores: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """NDCG@k with gains 2^label - 1 (LightGBM's own); 0 for a group with no positive."""
    gains = 2.0 ** labels - 1.0
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    top = np.argsort(-scores, kind="stable")[:k]
    ideal = np.sort(gains)[::-1][:k]
    best = float((ideal * disc[: len(ideal)]).sum())
    return float((gains[top] * disc[: len(top)]).sum()) / best if best > 0 else 0.0


def mean_ndcg(groups: Sequence[Group], score: Any) -> float:
    return float(np.mean([ndcg(score(g), g.y) for g in groups])) if groups else 0.0


def rounds_to_keep(curve: Sequence[float], window: int = SMOOTH,
                   loss: float = ROUNDS_LOSS) -> int:
    """Trees to keep, from the validation score after each round (`curve`, round 1 first):
    the fewest whose centred moving average (over `window` rounds, fewer at the ends) is
    within `loss` of the average's best. 0 for an empty curve."""
    c = np.asarray(curve, dtype=np.float64)
    if not len(c):
        return 0
    box = np.ones(min(window, len(c)))
    smooth = np.convolve(c, box, mode="same") / np.convolve(np.ones_like(c), box, mode="same")
    return int(np.flatnonzero(smooth >= smooth.max() - loss)[0]) + 1


def train(groups: Sequence[Group], names: Sequence[str], seed: int = 0
          ) -> tuple[Ranker | None, dict[str, Any]]:
    """Fit on most groups, check on the rest (groups marked `extra` are only fitted on, and
    only those of users not checked on). Returns (ranker or None, a report of why)."""
    groups = [g for g in groups if len(g.y) and g.y.max() > 0]
    main = [g for g in groups if not g.extra]
    report: dict[str, Any] = {"groups": len(main)}
    if len(main) < MIN_GROUPS:
        report["kept"] = False
        report["why"] = f"{len(main)} users with later engagement; the ranker needs {MIN_GROUPS}"
        return None, report
    order = np.random.default_rng(seed).permutation(len(main))
    n_val = max(MIN_VALIDATION_GROUPS, int(VALIDATION_SHARE * len(main)))
    val = [main[k] for k in order[:n_val]]
    held = {g.user for g in val if g.user is not None}
    fit = [main[k] for k in order[n_val:]] + [g for g in groups
                                              if g.extra and g.user not in held]
    import lightgbm as lgb

    def dataset(gs: Sequence[Group], ref: Any = None) -> Any:
        return lgb.Dataset(np.vstack([g.x for g in gs]), np.concatenate([g.y for g in gs]),
                           group=[len(g.y) for g in gs], feature_name=list(names),
                           reference=ref, free_raw_data=True)

    train_set = dataset(fit)
    monotone = [0 if name in EITHER_WAY else 1 for name in names]
    curves: dict[str, Any] = {}
    booster = lgb.train({**PARAMS, "seed": seed, "monotone_constraints": monotone}, train_set,
                        ROUNDS,
                        valid_sets=[dataset(val, train_set)], valid_names=["val"],
                        callbacks=[lgb.early_stopping(PATIENCE, verbose=False),
                                   lgb.record_evaluation(curves)])
    # LightGBM stops growing trees once no leaf can split, yet early stopping records the
    # same score for every round left: never keep more rounds than there are trees, or the
    # refit below grows a forest the held-out users never checked.
    rounds = min(rounds_to_keep(curves["val"]["ndcg@10"]) or booster.best_iteration,
                 booster.num_trees())
    model = booster.model_to_string(num_iteration=rounds)
    ranker = Ranker(list(names), model)
    learned = mean_ndcg(val, lambda g: ranker.score(g.x))
    singles = {name: mean_ndcg(val, lambda g, k=list(names).index(name):
                               np.nan_to_num(g.x[:, k], nan=-np.inf))
               for name in SINGLE if name in names}
    best_single = max(singles, key=lambda k: singles[k])
    kept = learned > singles[best_single]
    if kept:
        try:
            checked = Forest.of(booster.dump_model(num_iteration=rounds))
            ranker.meta["cascade"] = fit_cascade(checked, val)
        except Exception:  # a speed-up only: without it the whole forest serves
            log.warning("no cascade for this ranker", exc_info=True)
    ranker.meta = {**ranker.meta, "validation_ndcg@10": round(learned, 4),
                   "rounds": rounds, "best_round": booster.best_iteration,
                   "trees_grown": booster.num_trees(),
                   "best_single": best_single, "single_ndcg@10":
                   {k: round(v, 4) for k, v in singles.items()},
                   "train_groups": len(fit), "validation_groups": len(val)}
    report.update(ranker.meta, kept=kept)
    if not kept:
        report["why"] = f"no better on held-out users than {best_single} alone"
        return None, report
    if REFIT and rounds > 0:
        # Kept: the same number of trees again on every group, the checked users' too (a
        # quarter more users to learn from); the verdict above stands for the procedure.
        everyone = main + [g for g in groups if g.extra]
        final = lgb.train({**PARAMS, "seed": seed, "monotone_constraints": monotone},
                          dataset(everyone), rounds)
        ranker.model, ranker._booster = final.model_to_string(), None  # not the checked one
        ranker._forest = None
        ranker.meta["refit_groups"] = len(everyone)
        report["refit_groups"] = len(everyone)
    return ranker, report
