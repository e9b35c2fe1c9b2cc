"""Collaborative filtering: the fold-in of a new user, item scoring, storage, and ALS training
on a small dataset with two obvious communities."""

from __future__ import annotations

import numpy as np
import pytest

from medley.recs.collab import CONFIDENCE_SCALE, CollabModel, train

REG = 0.1
# implicit nags about OpenBLAS threads; irrelevant at this size
pytestmark = pytest.mark.filterwarnings("ignore:OpenBLAS is configured:RuntimeWarning")


def _model() -> CollabModel:
    """Four items in a 2-d taste space: a1/a2 point one way, b1 the other, m between."""
    items = np.array([[1.0, 0.1], [0.9, 0.0], [0.0, 1.0], [0.6, 0.6]], dtype=np.float32)
    users = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    return CollabModel(["ua", "ub"], ["a1", "a2", "b1", "m"], users, items, REG, last_seq=17)


def _normal_equations(model: CollabModel, positives: dict[str, float]) -> np.ndarray:
    """x = (YᵀCY + λI)⁻¹ YᵀCp over all items, C = 1 + (scale·w - 1) on touched items."""
    y = model.item_factors.astype(np.float64)
    c = np.ones(len(model.item_ids))
    p = np.zeros(len(model.item_ids))
    for item, w in positives.items():
        r = model.item_ids.index(item)
        c[r], p[r] = CONFIDENCE_SCALE * w, 1.0
    a = y.T @ np.diag(c) @ y + REG * np.eye(y.shape[1])
    return np.linalg.solve(a, y.T @ (c * p))


@pytest.mark.parametrize(
    "positives",
    [
        {"a1": 1.0},
        {"a1": 3.0, "a2": 1.0},
        {"b1": 2.0, "m": 0.5},
        {"a1": 1.0, "a2": 1.0, "b1": 1.0, "m": 1.0},
    ],
)
def test_fold_in_solves_the_als_normal_equations(positives: dict[str, float]) -> None:
    model = _model()
    x = model.fold_in(positives.items())
    assert x is not None
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, _normal_equations(model, positives), rtol=1e-4, atol=1e-5)


def test_fold_in_ignores_unknown_items_and_non_positive_weights() -> None:
    model = _model()
    x = model.fold_in([("a1", 2.0), ("new-item", 5.0), ("b1", -3.0), ("m", 0.0)])
    assert x is not None
    np.testing.assert_allclose(x, _normal_equations(model, {"a1": 2.0}), rtol=1e-4, atol=1e-5)
    assert model.fold_in([("new-item", 1.0), ("b1", -1.0)]) is None
    assert model.fold_in([]) is None


def test_fold_in_sums_repeated_engagement_like_training() -> None:
    model = _model()
    repeated = model.fold_in([("a1", 1.0), ("b1", 1.0), ("a1", 3.0), ("a1", 2.0)])
    summed = model.fold_in([("a1", 6.0), ("b1", 1.0)])
    assert repeated is not None and summed is not None
    np.testing.assert_allclose(repeated, summed, rtol=1e-4)


def test_fold_in_user_prefers_what_they_engaged_with() -> None:
    model = _model()
    x = model.fold_in([("a1", 3.0)])
    assert x is not None
    assert model.top_for_user(x, 2) == ["a1", "a2"]
    assert model.top_for_user(x, 4)[-1] == "b1"


def test_user_vector_uses_trained_factors_for_a_known_user() -> None:
    model = _model()
    np.testing.assert_array_equal(model.user_vector("ua", [("b1", 5.0)]), [1.0, 0.0])
    folded = model.user_vector("newcomer", [("b1", 5.0)])
    assert folded is not None
    assert model.top_for_user(folded, 1) == ["b1"]


def test_scores_are_nan_for_unknown_items() -> None:
    model = _model()
    s = model.scores(np.array([1.0, 0.0], dtype=np.float32), ["b1", "nope", "a1", "m"])
    assert np.isnan(s[1])
    np.testing.assert_allclose(s[[0, 2, 3]], [0.0, 1.0, 0.6], atol=1e-6)
    assert np.isnan(model.scores(np.ones(2, dtype=np.float32), ["x", "y"])).all()
    assert model.scores(np.ones(2, dtype=np.float32), []).shape == (0,)


@pytest.mark.parametrize(
    ("user", "n", "expected"),
    [
        ([1.0, 0.0], 4, ["a1", "a2", "m", "b1"]),
        ([0.0, 1.0], 4, ["b1", "m", "a1", "a2"]),
        ([0.0, 1.0], 2, ["b1", "m"]),
        ([1.0, 0.0], 10, ["a1", "a2", "m", "b1"]),  # n larger than the catalog
        ([1.0, 0.0], 0, []),
    ],
)
def test_top_for_user_order(user: list[float], n: int, expected: list[str]) -> None:
    assert _model().top_for_user(np.array(user, dtype=np.float32), n) == expected


def test_similar_items_excludes_the_item_itself() -> None:
    model = _model()
    sims = model.similar_items("a1", 3)
    assert [i for i, _ in sims] == ["a2", "m", "b1"]
    assert all(-1.0 <= s <= 1.0 for _, s in sims)
    assert sims[0][1] > sims[1][1] > sims[2][1]
    assert [i for i, _ in model.similar_items("b1", 10)] == ["m", "a1", "a2"]
    assert model.similar_items("unknown", 3) == []
    assert model.similar_items("a1", 0) == []


def test_bytes_round_trip() -> None:
    model = _model()
    back = CollabModel.from_bytes(model.to_bytes())
    assert back.user_ids == model.user_ids
    assert back.item_ids == model.item_ids
    assert back.regularization == model.regularization
    assert back.last_seq == 17
    np.testing.assert_array_equal(back.user_factors, model.user_factors)
    np.testing.assert_array_equal(back.item_factors, model.item_factors)
    x = np.array([0.3, 0.7], dtype=np.float32)
    assert back.top_for_user(x, 4) == model.top_for_user(x, 4)
    np.testing.assert_array_equal(back.fold_in([("m", 1.0)]), model.fold_in([("m", 1.0)]))


# --- training ---------------------------------------------------------------------------------
A_ITEMS = [f"a{j}" for j in range(10)]
B_ITEMS = [f"b{j}" for j in range(10)]


def _communities() -> list[tuple[str, str, float]]:
    """Users 0-19 like the A items, users 20-39 the B items, with varying strength."""
    out = []
    for u in range(40):
        items = A_ITEMS if u < 20 else B_ITEMS
        out += [(f"u{u}", item, 1.0 + (u + j) % 3) for j, item in enumerate(items)]
    out.append(("u0", "b0", -1.0))  # a lone negative is not a pair
    return out


@pytest.fixture(scope="module")
def trained() -> CollabModel:
    model = train(_communities(), factors=8, iterations=10, regularization=0.01, last_seq=99)
    assert model is not None
    return model


def test_train_recovers_communities(trained: CollabModel) -> None:
    assert set(trained.item_ids) == set(A_ITEMS) | set(B_ITEMS)
    assert len(trained.user_ids) == 40
    assert trained.last_seq == 99
    for user, community in [("u3", A_ITEMS), ("u7", A_ITEMS), ("u25", B_ITEMS), ("u38", B_ITEMS)]:
        vec = trained.user_vector(user, [])
        assert vec is not None
        assert set(trained.top_for_user(vec, 10)) == set(community), user


def test_trained_model_ranks_unseen_community_items_for_a_newcomer(
    trained: CollabModel,
) -> None:
    vec = trained.fold_in([("a1", 3.0), ("a2", 1.0), ("a5", 2.0)])
    assert vec is not None
    s = trained.scores(vec, [*A_ITEMS, *B_ITEMS])
    unseen_a = s[[0, 3, 4, 6, 7, 8, 9]]
    assert unseen_a.min() > s[10:].max()  # every untouched A item beats every B item


def test_trained_model_folds_in_a_newcomer(trained: CollabModel) -> None:
    vec = trained.fold_in([("b1", 3.0), ("b4", 1.0)])
    assert vec is not None
    assert set(trained.top_for_user(vec, 10)) == set(B_ITEMS)


def test_trained_item_neighbours_stay_in_their_community(trained: CollabModel) -> None:
    assert {i for i, _ in trained.similar_items("a3", 5)} <= set(A_ITEMS)
    assert {i for i, _ in trained.similar_items("b8", 5)} <= set(B_ITEMS)


@pytest.mark.parametrize(
    "interactions",
    [
        [],
        [("u1", "a1", -1.0)],  # only negatives
        [("u1", "a1", 2.0), ("u1", "a1", -3.0)],  # a negative cancels the positive
    ],
)
def test_train_without_positive_pairs_returns_none(
    interactions: list[tuple[str, str, float]]
) -> None:
    assert train(interactions, factors=4, iterations=2, regularization=0.01) is None
