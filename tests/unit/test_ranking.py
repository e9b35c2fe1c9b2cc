"""Ranking maths: the behaviour/content blend and the re-ranking steps (diversity, exploration
slots, editorial pins), checked by where items end up."""

from __future__ import annotations

import numpy as np
import pytest

from medley.recs.ranking import (
    BlendWeights,
    behaviour_weight,
    blend,
    interleave,
    mmr,
    neighbour_mean,
    place_pins,
    scale_jointly,
)

NAN = float("nan")


def _arr(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


# --- behaviour_weight -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "k", "expected"),
    [
        (0, 10.0, 0.0),  # nobody touched it: all prior
        (10, 10.0, 0.5),  # n = k: behaviour and prior weigh equally
        (1e9, 10.0, 1.0),  # overwhelming evidence: all behaviour
        (0, 0.0, 0.0),  # k = 0: no evidence still means no behaviour weight
        (1, 0.0, 1.0),  # k = 0: any evidence is full trust (and no division by zero)
    ],
)
def test_behaviour_weight(n: float, k: float, expected: float) -> None:
    assert float(behaviour_weight(_arr(n), k)[0]) == pytest.approx(expected, abs=1e-6)


def test_behaviour_weight_grows_with_evidence() -> None:
    a = behaviour_weight(_arr(0, 1, 5, 10, 100, 1000), 10.0)
    assert np.all(np.diff(a) > 0)
    assert np.all((a >= 0) & (a < 1))


# --- scale_jointly ----------------------------------------------------------------------------
def test_scale_jointly_uses_one_range_for_all_arrays() -> None:
    observed, predicted = scale_jointly(_arr(0.0, 5.0), _arr(10.0, 2.5))
    np.testing.assert_allclose(observed, [0.0, 0.5])
    np.testing.assert_allclose(predicted, [1.0, 0.25])


def test_scale_jointly_nan_becomes_zero() -> None:
    (out,) = scale_jointly(_arr(NAN, 2.0, 4.0))
    np.testing.assert_allclose(out, [0.0, 0.0, 1.0])


@pytest.mark.parametrize(
    "arrays",
    [
        (_arr(3.0, 3.0, 3.0),),  # constant range
        (_arr(3.0, NAN), _arr(3.0)),  # constant once NaN is ignored
        (_arr(NAN, NAN), _arr(NAN)),  # nothing finite at all
    ],
)
def test_scale_jointly_without_a_range_maps_to_zero(arrays: tuple[np.ndarray, ...]) -> None:
    for out, a in zip(scale_jointly(*arrays), arrays, strict=True):
        assert out.shape == a.shape
        assert np.all(out == 0.0)


# --- blend ------------------------------------------------------------------------------------
W = BlendWeights(content=1.0, collab=1.0, popularity=0.5, confidence=10.0)


def _blend(content: np.ndarray, collab: np.ndarray, pop: np.ndarray, collab_prior: np.ndarray,
           pop_prior: np.ndarray, n: np.ndarray) -> np.ndarray:
    return blend(content, collab, pop, collab_prior, pop_prior, n, W)


def test_new_item_is_scored_on_content_and_prior_only() -> None:
    # item 0 is established and anchors both signal ranges at [0, 1]; item 1 is new (n = 0)
    content = _arr(0.2, 0.4)
    collab_prior = _arr(1.0, 0.6)
    pop_prior = _arr(1.0, 0.3)
    n = _arr(1e9, 0)
    base = _blend(content, _arr(0.0, 0.5), _arr(0.0, 0.5), collab_prior, pop_prior, n)
    # its score is exactly (scaled) content + the predicted signals ...
    assert base[1] == pytest.approx(1.0 + 1.0 * 0.6 + 0.5 * 0.3)
    # ... and its own collab/pop readings (within the established range) do not move it
    for collab_new, pop_new in [(0.0, 0.0), (1.0, 1.0), (NAN, NAN), (0.9, 0.1)]:
        got = _blend(content, _arr(0.0, collab_new), _arr(0.0, pop_new), collab_prior,
                     pop_prior, n)
        assert got[1] == pytest.approx(base[1])


def test_new_item_with_better_prior_outranks_one_with_worse_prior() -> None:
    n = _arr(0, 0, 1e9)
    scores = _blend(_arr(0.5, 0.5, 0.5), _arr(NAN, NAN, 0.5), _arr(0.0, 0.0, 0.5),
                    _arr(0.9, 0.1, 0.0), _arr(0.8, 0.2, 1.0), n)
    assert scores[0] > scores[1]


def test_established_item_is_scored_on_observed_signals() -> None:
    content = _arr(0.3, 0.3)
    n = _arr(1e12, 0)  # item 0 has overwhelming evidence
    collab, pop = _arr(0.8, 0.0), _arr(0.6, 1.0)
    a = _blend(content, collab, pop, _arr(0.0, 1.0), _arr(0.0, 0.0), n)
    b = _blend(content, collab, pop, _arr(1.0, 1.0), _arr(1.0, 0.0), n)  # its prior changes
    assert a[0] == pytest.approx(b[0], abs=1e-9)
    assert a[0] == pytest.approx(0.0 + 1.0 * 0.8 + 0.5 * 0.6, abs=1e-9)  # equal content: 0


def test_half_evidence_mixes_observed_and_prior_equally() -> None:
    score = _blend(_arr(0.0, 0.0), _arr(1.0, 0.0), _arr(NAN, NAN), _arr(0.0, 0.0),
                   _arr(NAN, NAN), _arr(10, 1e12))
    assert score[0] == pytest.approx(0.5)


def test_unknown_signals_count_as_the_pools_median_not_the_worst() -> None:
    # items 0..2 differ only in content; item 3's content is unknown
    same = _arr(0.5, 0.5, 0.5, 0.5)
    scores = _blend(_arr(0.1, 0.5, 0.9, NAN), same, same, same, same, _arr(5, 5, 5, 5))
    assert scores[0] < scores[3] < scores[2] and scores[3] == pytest.approx(scores[1])
    # an item the collaborative model has not seen yet (NaN) is not ranked below every other
    collab = _arr(0.1, 0.5, 0.9, NAN)
    scores = _blend(same, collab, same, collab, same, _arr(1e9, 1e9, 1e9, 1e9))
    assert scores[0] < scores[3] < scores[2]
    assert np.all(np.isfinite(scores))


def test_no_collab_model_at_all_still_ranks_by_content() -> None:
    none = np.full(3, NAN)
    scores = _blend(_arr(0.1, 0.9, 0.5), none, np.zeros(3), none, np.zeros(3), np.zeros(3))
    assert list(np.argsort(-scores)) == [1, 2, 0]


# --- neighbour_mean ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sims", "values", "expected"),
    [
        ([0.5, 0.5], [1.0, 3.0], 2.0),  # equal weights: plain mean
        ([0.9, 0.1], [1.0, 3.0], 1.2),  # closer neighbour counts more
        ([0.8, -0.9], [1.0, 100.0], 1.0),  # a dissimilar (negative) neighbour is ignored
        ([0.5, 0.5], [NAN, 4.0], 4.0),  # a neighbour without a value is ignored
        ([0.0, 0.0], [1.0, 2.0], NAN),  # no usable neighbour
        ([0.7, 0.3], [NAN, NAN], NAN),  # neighbours, but none with a value
        ([-0.2, -0.5], [1.0, 2.0], NAN),  # only negative similarities
    ],
)
def test_neighbour_mean(sims: list[float], values: list[float], expected: float) -> None:
    got = float(neighbour_mean(np.array([sims]), np.array([values]))[0])
    if np.isnan(expected):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(expected)


def test_neighbour_mean_is_per_row() -> None:
    sims = np.array([[1.0, 0.0], [0.0, 0.0], [0.25, 0.75]])
    values = np.array([[2.0, 9.0], [5.0, 5.0], [0.0, 4.0]])
    got = neighbour_mean(sims, values)
    assert got[0] == pytest.approx(2.0)
    assert np.isnan(got[1])
    assert got[2] == pytest.approx(3.0)


# --- mmr --------------------------------------------------------------------------------------
def _unit(deg: float) -> list[float]:
    rad = np.deg2rad(deg)
    return [float(np.cos(rad)), float(np.sin(rad))]


SCORES = _arr(1.0, 0.95, 0.6, 0.5)
VECS = np.array([_unit(0), _unit(5), _unit(90), _unit(45)])  # item 1 near-duplicates item 0


def test_mmr_with_lambda_one_is_score_order() -> None:
    assert mmr(SCORES, VECS, lam=1.0, k=4) == [0, 1, 2, 3]
    assert mmr(_arr(0.1, 0.7, 0.3), np.eye(3), lam=1.0, k=3) == [1, 2, 0]


def test_mmr_pushes_a_near_duplicate_below_a_dissimilar_item() -> None:
    order = mmr(SCORES, VECS, lam=0.3, k=4)
    assert order[0] == 0  # the best item still leads
    assert order.index(2) < order.index(1)  # the dissimilar item beats the near-duplicate
    assert sorted(order) == [0, 1, 2, 3]


@pytest.mark.parametrize(("k", "expected_len"), [(0, 0), (2, 2), (10, 4)])
def test_mmr_length(k: int, expected_len: int) -> None:
    order = mmr(SCORES, VECS, lam=0.5, k=k)
    assert len(order) == expected_len
    assert len(set(order)) == expected_len


# --- interleave -------------------------------------------------------------------------------
RANKED = [f"r{i}" for i in range(20)]


def test_interleave_puts_explorers_at_the_spread_positions() -> None:
    out = interleave(RANKED, ["e0", "e1", "e2"], n=10, share=0.2)
    # two slots (0.2 x 10), the first at 1/(2·share) = 2.5 -> 2, the next 5 positions later
    assert out == ["r0", "r1", "e0", "r2", "r3", "r4", "r5", "e1", "r6", "r7"]


def test_interleave_gives_unused_slots_back_to_the_ranked_list() -> None:
    out = interleave(RANKED, ["e0"], n=10, share=0.2)
    assert len(out) == 10
    assert out.count("e0") == 1
    assert [x for x in out if x != "e0"] == RANKED[:9]


def test_interleave_without_explorers_is_the_ranked_top() -> None:
    assert interleave(RANKED, [], n=10, share=0.2) == RANKED[:10]


def test_interleave_does_not_duplicate_an_explorer_already_in_the_top() -> None:
    out = interleave(RANKED, ["r1", "e0", "e1"], n=10, share=0.2)
    assert len(out) == len(set(out)) == 10
    assert out.count("r1") == 1
    assert out.index("r1") == 1  # kept where ranking put it
    assert {"e0", "e1"} <= set(out)  # the slots go to the next explorers


def test_interleave_promotes_an_explorer_ranked_below_the_cut() -> None:
    out = interleave(RANKED, ["r15"], n=10, share=0.2)
    assert out.count("r15") == 1
    assert out.index("r15") < 10


@pytest.mark.parametrize(
    ("ranked", "explore", "n", "share"),
    [
        (RANKED, ["e0", "e1", "e2"], 10, 0.2),
        (RANKED[:3], ["e0", "e1"], 10, 0.2),  # short ranked list
        (RANKED[:3], ["e0", "r0", "e1", "r2"], 10, 0.5),
        ([], ["e0", "e1"], 5, 0.4),
        (RANKED, ["r3", "r12", "e0", "e1", "e2", "e3"], 7, 0.3),
        (RANKED, ["e0"], 0, 0.2),
    ],
)
def test_interleave_has_no_duplicates_and_respects_n(
    ranked: list[str], explore: list[str], n: int, share: float
) -> None:
    out = interleave(ranked, explore, n, share)
    assert len(out) == len(set(out))
    assert len(out) <= n
    assert set(out) <= set(ranked) | set(explore)


# --- place_pins -------------------------------------------------------------------------------
def test_place_pins_puts_items_at_their_positions() -> None:
    out = place_pins(["a", "b", "c", "d", "e"], [("x", 0), ("y", 3)], n=5)
    assert out == ["x", "a", "b", "y", "c"]


def test_place_pins_moves_a_pinned_item_from_its_old_place() -> None:
    out = place_pins(["a", "b", "c", "d"], [("d", 1)], n=4)
    assert out == ["a", "d", "b", "c"]


@pytest.mark.parametrize(
    ("pos", "expected"),
    [
        (-3, ["x", "a", "b"]),  # before the start: first
        (1, ["a", "x", "b"]),
        (99, ["a", "b", "x"]),  # past the end: last
    ],
)
def test_place_pins_clamps_positions(pos: int, expected: list[str]) -> None:
    assert place_pins(["a", "b"], [("x", pos)], n=10) == expected


def test_place_pins_keeps_n_and_has_no_duplicates() -> None:
    out = place_pins(["a", "b", "c", "d"], [("c", 0), ("z", 2)], n=3)
    assert out == ["c", "a", "z"]
    assert len(set(out)) == len(out)
