"""The ranker's compiled tree walk gives LightGBM's own scores, and the cascade scores its
shortlist exactly."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from medley.recs import ranker as ranker_mod
from medley.recs.ranker import Group, Ranker, cascade, fit_cascade
from medley.recs.trees import Forest, Unsupported

NAN = float("nan")


def _split(rule: str, default_left: bool, threshold: float = 0.5) -> dict:
    """A one-split model: left leaf 1.0, right leaf 2.0."""
    return {"max_feature_idx": 0, "tree_info": [{"num_cat": 0, "tree_structure": {
        "split_feature": 0, "threshold": threshold, "decision_type": "<=",
        "default_left": default_left, "missing_type": rule,
        "left_child": {"leaf_value": 1.0}, "right_child": {"leaf_value": 2.0}}}]}


# (missing rule, default_left, value, leaf): LightGBM's NumericalDecision (tree.h).
CASES = [
    ("None", True, NAN, 1.0),    # NaN reads as 0 under "None": 0 <= 0.5
    ("None", False, 0.7, 2.0),
    ("NaN", False, NAN, 2.0),    # NaN goes the default way
    ("NaN", True, NAN, 1.0),
    ("NaN", False, 0.0, 1.0),    # zero is a value under "NaN"
    ("Zero", False, 0.0, 2.0),   # zero is missing under "Zero": the default way
    ("Zero", False, NAN, 2.0),   # NaN reads as 0, then missing
    ("Zero", True, 0.9, 2.0),
    ("None", False, 0.5, 1.0),   # <= goes left
]


@pytest.mark.parametrize(("rule", "default_left", "value", "leaf"), CASES)
def test_each_missing_value_rule_goes_where_lightgbm_sends_it(rule, default_left, value,
                                                               leaf) -> None:
    forest = Forest.of(_split(rule, default_left))
    assert forest.predict(np.array([[value]]))[0] == leaf


@pytest.mark.parametrize("params", [
    {},                          # NaN in the data: the "NaN" rule
    {"zero_as_missing": True},   # the "Zero" rule
    {"use_missing": False},      # the "None" rule
])
def test_a_trained_model_scores_as_lightgbm_does(params) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 6))
    x[rng.random(x.shape) < 0.15] = np.nan
    x[rng.random(x.shape) < 0.1] = 0.0
    y = (np.nan_to_num(x[:, 0]) + rng.normal(size=3000) > 1).astype(int)
    booster = lgb.train({"objective": "lambdarank", "num_leaves": 15, "min_data_in_leaf": 20,
                         "verbose": -1, **params},
                        lgb.Dataset(x, y, group=[100] * 30), 40)
    forest = Forest.of(booster.dump_model())
    assert forest.trees == 40
    assert np.array_equal(forest.predict(x), booster.predict(x))
    assert np.array_equal(forest.predict(x, stop=10), booster.predict(x, num_iteration=10))


def test_categorical_splits_are_refused() -> None:
    dump = _split("None", False)
    dump["tree_info"][0]["tree_structure"]["decision_type"] = "=="
    with pytest.raises(Unsupported):
        Forest.of(dump)


def _forest(trees: int = 60) -> tuple[Forest, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=4000) > 1.5).astype(int)
    booster = lgb.train({"objective": "lambdarank", "num_leaves": 7, "verbose": -1},
                        lgb.Dataset(x, y, group=[200] * 20), trees)
    return Forest.of(booster.dump_model()), x, y


def test_the_cascade_scores_its_shortlist_exactly_and_the_rest_below() -> None:
    forest, x, _ = _forest()
    pool = x[:400]
    full = forest.predict(pool)
    first = forest.predict(pool, stop=6)
    got = cascade(forest, pool, 6, 50)
    short = np.argsort(-first)[:50]
    rest = np.setdiff1d(np.arange(400), short)
    assert np.allclose(got[short], full[short])
    assert got[rest].max() < got[short].min()
    assert list(np.argsort(-got[rest])) == list(np.argsort(-first[rest]))
    assert np.allclose(cascade(forest, pool[:40], 6, 50), full[:40])  # pool <= shortlist


def test_the_cascade_keeps_the_cheapest_first_stage_that_ranks_as_well(monkeypatch) -> None:
    forest, x, y = _forest()
    groups = [Group(x[k:k + 200], y[k:k + 200]) for k in range(0, 4000, 200)]
    monkeypatch.setattr(ranker_mod, "CASCADE_LOSS", 1.0)  # anything goes: the cheapest
    chosen = fit_cascade(forest, groups, shortlists=(20, 40))
    assert chosen["share"] == ranker_mod.CASCADE_SHARES[0]
    assert chosen["trees"] == round(ranker_mod.CASCADE_SHARES[0] * 60)
    assert chosen["shortlist"] == 20  # the shorter list walks fewer trees
    assert chosen["walks"] == 200 * chosen["trees"] + 20 * (60 - chosen["trees"])
    assert chosen["walks"] < chosen["whole_walks"] == 200 * 60
    monkeypatch.setattr(ranker_mod, "CASCADE_LOSS", -1.0)  # nothing is good enough
    assert fit_cascade(forest, groups, shortlists=(20,)) == {}
    monkeypatch.setattr(ranker_mod, "CASCADE_LOSS", 1.0)
    assert fit_cascade(forest, groups, shortlists=(200,)) == {}  # pools no longer: unchecked


def test_the_cascade_takes_a_longer_shortlist_when_the_short_one_ranks_worse(
        monkeypatch) -> None:
    """Cost decides only among cascades that rank as well as the whole forest: a shortlist
    that loses NDCG@10 is passed over for a longer one that does not."""
    forest, x, y = _forest()
    groups = [Group(x[k:k + 200], y[k:k + 200]) for k in range(0, 4000, 200)]
    real = ranker_mod.cascade

    def lossy(f, rows, first, shortlist):  # the 20-long list drops every positive
        got = real(f, rows, first, shortlist)
        return -got if shortlist == 20 else got

    monkeypatch.setattr(ranker_mod, "cascade", lossy)
    monkeypatch.setattr(ranker_mod, "CASCADE_LOSS", 0.0)
    chosen = fit_cascade(forest, groups, shortlists=(20, 199))
    assert chosen["shortlist"] == 199


def test_a_ranker_serves_through_its_cascade() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 4))
    booster = lgb.train({"objective": "lambdarank", "num_leaves": 7, "verbose": -1},
                        lgb.Dataset(x, (x[:, 0] > 1).astype(int), group=[100] * 3), 30)
    plain = Ranker(["a", "b", "c", "d"], booster.model_to_string())
    staged = Ranker(["a", "b", "c", "d"], booster.model_to_string(),
                    {"cascade": {"trees": 5, "shortlist": 30}})
    full, got = plain._predict(x), staged._predict(x)
    assert np.allclose(full, booster.predict(x))
    top = np.argsort(-booster.predict(x, num_iteration=5))[:30]
    assert np.allclose(got[top], full[top])


def test_a_walk_that_cannot_compile_leaves_lightgbm_scoring(monkeypatch) -> None:
    from medley.recs import trees

    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 4))
    booster = lgb.train({"objective": "lambdarank", "num_leaves": 7, "verbose": -1},
                        lgb.Dataset(x, (x[:, 0] > 1).astype(int), group=[100] * 2), 10)

    def broken() -> None:
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(trees, "_kernel", broken)
    ranker = Ranker(["a", "b", "c", "d"], booster.model_to_string(),
                    {"cascade": {"trees": 2, "shortlist": 50}})
    assert np.allclose(ranker._predict(x), booster.predict(x))


_RISE = [0.10 + 0.01 * k for k in range(10)]  # rounds 1-10 climb to 0.19


@pytest.mark.parametrize(("curve", "window", "want"), [
    ([], 5, 0),
    ([0.3], 5, 1),
    # a plateau after the climb: the first round at the top, not the plateau's last
    (_RISE + [0.19] * 30, 1, 10),
    # one lucky spike at round 3 of an otherwise rising curve: smoothed away, the climb kept
    ([0.10, 0.11, 0.30, 0.12, 0.13, 0.14, 0.15, 0.16, 0.17, 0.18, 0.18, 0.18], 5, 12),
    # the same curve, unsmoothed, keeps the spike (what plain early stopping did)
    ([0.10, 0.11, 0.30, 0.12, 0.13, 0.14, 0.15, 0.16, 0.17, 0.18, 0.18, 0.18], 1, 3),
    # noise around a plateau: the fewest trees within the loss of the smoothed best (the
    # average reaches the plateau half a window after the curve does), not the noisy argmax
    (_RISE + [0.19, 0.1895, 0.1902, 0.1898, 0.1903] * 6 + [0.1906], 5, 12),
])
def test_rounds_kept_are_the_fewest_near_the_smoothed_best(curve, window, want) -> None:
    assert ranker_mod.rounds_to_keep(curve, window, loss=0.001) == want


def test_a_ranker_keeps_no_more_rounds_than_trees_that_grew(monkeypatch) -> None:
    """LightGBM stops adding trees once no leaf can split, while the validation curve goes on
    (flat) until early stopping: the rounds kept, and the refit's forest, stop at the trees
    the held-out users actually checked."""
    rng = np.random.default_rng(0)
    groups = []
    for k in range(80):
        x = rng.normal(size=(100, 3))
        y = (x[:, 0] + rng.normal(size=100) > 1).astype(float)
        groups.append(Group(x, y, user=f"u{k}"))
    monkeypatch.setitem(ranker_mod.PARAMS, "min_data_in_leaf", 400)  # few splits possible
    monkeypatch.setattr(ranker_mod, "SINGLE", ("c",))  # noise: a bar any ranker clears
    monkeypatch.setattr(ranker_mod, "ROUNDS", 120)
    monkeypatch.setattr(ranker_mod, "PATIENCE", 60)
    rk, report = ranker_mod.train(groups, ["a", "b", "c"])
    assert rk is not None, report
    rk.load()
    assert rk._forest is not None
    assert report["trees_grown"] < ranker_mod.ROUNDS  # it did stop growing early
    assert 0 < report["rounds"] == rk._forest.trees <= report["trees_grown"]
