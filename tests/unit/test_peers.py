"""The stronger peers of `python -m benchmarks eval`: z-score blend maths, centred content, the
blend's choice on validation and LightFM's item features, on tiny controlled catalogs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import movielens as ml
from benchmarks import peers
from benchmarks.evaluate import build_table
from medley.config import Settings
from medley.domain import Modality
from medley.recs import evaluation as ev
from medley.recs.behavior import Behavior
from medley.recs.evaluation import train_collab
from medley.recs.events import Event, EventType
from medley.recs.items import ItemInfo, ItemTable
from tests.unit.test_evaluate import stub_embed, write_dataset

NAN = float("nan")


@pytest.mark.parametrize(("scores", "expected"), [
    ([1.0, 2.0, 3.0], [-1.2247, 0.0, 1.2247]),
    ([NAN, 1.0, 3.0], [0.0, -1.0, 1.0]),  # an item the model never saw gets the mean
    ([2.0, 2.0, 2.0], [0.0, 0.0, 0.0]),  # no spread: no opinion
    ([NAN, 5.0, NAN], [0.0, 0.0, 0.0]),  # one score alone says nothing relative
    ([NAN, NAN], [0.0, 0.0]),
])
def test_zscore(scores: list[float], expected: list[float]) -> None:
    assert np.allclose(peers.zscore(np.array(scores)), expected, atol=1e-4)


@pytest.mark.parametrize(("als", "content", "weight", "order"), [
    ([3.0, 1.0, 2.0], [1.0, 3.0, 2.0], 0.0, [0, 2, 1]),  # w = 0: ALS alone
    ([3.0, 1.0, 2.0], [1.0, 3.0, 2.0], 2.0, [1, 2, 0]),  # content outweighs ALS
    ([3.0, 1.0, 2.0], [1.0, 3.0, 2.0], 1.0, [1, 2, 0]),  # equal weights tie: content decides
    ([300.0, 100.0, 200.0], [1.0, 3.0, 2.0], 0.5, [0, 2, 1]),  # the scale of ALS is irrelevant
    ([3.0, 100.0, 200.0], [1.0, 3.0, 2.0], 0.5, [2, 1, 0]),  # ...only its spread
    ([NAN, NAN, NAN], [1.0, 3.0, 2.0], 0.0, [1, 2, 0]),  # unseen by ALS: content alone
    ([NAN, 1.0, 2.0], [5.0, 0.0, 1.0], 1.0, [0, 2, 1]),  # unseen: mean ALS + content
    ([NAN, 1.0, 2.0], [5.0, 0.0, 1.0], 0.25, [2, 0, 1]),  # ...which must beat ALS's best
])
def test_blend_ranks_by_zscored_als_plus_weighted_content(
        als: list[float], content: list[float], weight: float, order: list[int]) -> None:
    s = peers.blend(peers.zscore(np.array(als)), peers.zscore(np.array(content)), weight)
    assert list(np.argsort(-s, kind="stable")) == order


def test_centre_removes_the_common_direction() -> None:
    m = np.array([[5.0, 1.0, 0.0], [5.0, -1.0, 0.0], [5.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    c = peers.centre(m, np.array([True, True, True, False]))
    assert np.allclose(c[:3, 0], 0.0)  # the axis every item shares is gone
    assert np.allclose(np.linalg.norm(c[:3], axis=1), 1.0)
    assert np.allclose(c[3], 0.0)  # no vector: stays empty


# A catalog whose vectors share one large common direction (axis 0), as sentence vectors do.
# The user liked "liked"; "match" shares its distinctive axis; "hub" is almost pure common
# direction (a short, generic text), so raw cosine puts it first.
CATALOG = {
    "liked": [5.0, 1.0, 0.0, 0.0],
    "match": [1.0, 1.0, 0.0, 0.0],
    "hub": [6.0, 0.0, 0.2, 0.0],
    "other1": [5.0, 0.0, 1.0, 0.0],
    "other2": [5.0, 0.0, 0.0, 1.0],
    "other3": [5.0, 0.0, -1.0, 0.5],
}


def controlled_world(catalog: dict[str, list[float]], liked: list[str],
                     held_out: frozenset[str] = frozenset()) -> peers._Fitted:
    table = ItemTable({Modality.TEXT: 4}, capacity=len(catalog))
    for item, vec in catalog.items():
        table.upsert(item, ItemInfo(item, (), None, None, 0.0), np.array(vec, np.float32))
    behavior = Behavior(365 * 86400.0, 3600.0)
    behavior.apply([(k + 1, Event(f"e{k}", "u", item, EventType.LIKE, None, 100.0))
                    for k, item in enumerate(liked)])
    split = ev.Split([], [], held_out, [], 100.0, list(catalog))
    return peers._Fitted(split, table, behavior, None)


@pytest.mark.parametrize(("system", "first"), [
    ("content", "hub"),  # raw cosine is fooled by the common direction
    ("content_centred", "match"),  # centred: the item that shares what sets "liked" apart
    ("zblend", "match"),  # no ALS: the blend is its content variant alone (centred default)
])
def test_centred_content_ranks_the_real_match_first(system: str, first: str) -> None:
    w = controlled_world(CATALOG, ["liked"])
    state = peers.prepare(w, Settings(data_dir=Path("unused")), with_lightfm=False)
    assert peers.rank(state, w, system, "u", skip={"liked"})[0] == first


def test_new_items_compete_on_content_alone() -> None:
    w = controlled_world(CATALOG, ["liked"], held_out=frozenset({"match", "hub", "other1"}))
    state = peers.prepare(w, Settings(data_dir=Path("unused")), with_lightfm=False)
    rows = w.table.rows(["hub", "other1", "match"])
    for weight in peers.BLEND_WEIGHTS:
        state.blend = peers.BlendChoice("centred", weight)
        s = peers.peer_scores(state, w, "zblend", "u", rows)
        assert s is not None and int(np.argmax(s)) == 2  # "match", whatever the weight
    overall = peers.rank(state, w, "zblend", "u", skip={"liked"})
    assert not set(overall) & w.split.held_out


SETTINGS = Settings(data_dir=Path("unused"), collab_factors=8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> peers._Fitted:
    """The synthetic MovieLens of test_evaluate, with behaviour and ALS (no Recommender)."""
    ratings, movies = ml.load(write_dataset(tmp_path_factory.mktemp("ml")))
    split = ev.split(ratings, list(movies))
    vecs = stub_embed([movies[i].text for i in split.catalog])
    table = build_table(split, movies, dict(zip(split.catalog, vecs, strict=True)))
    behavior = Behavior(365 * 86400.0, 3600.0)
    behavior.apply(ev.events(split.train))
    return peers._Fitted(split, table, behavior, train_collab(split, SETTINGS))


def test_the_blend_is_chosen_on_validation(tiny: peers._Fitted) -> None:
    w, settings = tiny, SETTINGS
    state = peers.prepare(w, settings, lambda s: train_collab(s, settings), with_lightfm=False)
    trail = state.blend.trail
    assert len(trail) == len(peers.VARIANTS) * len(peers.BLEND_WEIGHTS)
    best = max(trail, key=lambda r: r[2] + r[3])
    assert [state.blend.variant, state.blend.weight] == best[:2]
    by_variant = {(r[0], r[3]) for r in trail}  # the weight does not move the new-items term
    assert len(by_variant) == len(peers.VARIANTS)


def test_lightfm_item_features_leave_held_out_items_their_genres_only() -> None:
    table = ItemTable({Modality.TEXT: 2}, capacity=3)
    for item, tags in (("a", ("Drama",)), ("b", ("Drama", "Comedy")), ("new", ("Comedy",))):
        table.upsert(item, ItemInfo(item, tags, None, None, 0.0), np.ones(2, np.float32))
    f = peers.item_features(table, frozenset({"new"})).toarray()
    assert f.shape == (3, 3 + 2)  # identity per item, then Comedy, Drama
    assert np.allclose(f.sum(axis=1), 1.0)
    assert f[0].tolist() == [0.5, 0, 0, 0, 0.5]
    assert f[2].tolist() == [0, 0, 0, 1.0, 0]  # no identity for the held-out item


def test_lightfm_scores_every_table_row(tiny: peers._Fitted) -> None:
    pytest.importorskip("lightfm")
    lf = peers.fit_lightfm(tiny, epochs=2)
    s = lf.scores(next(iter(tiny.split.relevant())))
    assert s is not None and s.shape == (len(tiny.table.ids),) and np.isfinite(s).all()
    assert lf.scores("nobody") is None


def test_without_lightfm_the_peer_is_skipped_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peers, "have_lightfm", lambda: False)
    state = peers.prepare(controlled_world(CATALOG, ["liked"]), SETTINGS)
    assert state.lightfm is None and "LightFM skipped" in state.notes[0]
    assert state.describe()["lightfm"] is None


def _results(scale: dict[str, tuple[float, float]]) -> dict[str, dict[str, Any]]:
    """Per system: every user's NDCG@10 overall and on new items set to the given pair."""
    users = [f"u{k}" for k in range(20)]
    return {s: {"ndcg@10": a, "new_items_ndcg@10": b, "new_items_recall@10": b,
                "per_user_ndcg@10": dict.fromkeys(users, a),
                "per_user_new_ndcg@10": dict.fromkeys(users, b)} for s, (a, b) in scale.items()}


@pytest.mark.parametrize(("medley", "targets"), [
    ((0.12, 0.31), {"best_peer": True, "best_content_only_new_items": True}),
    ((0.11, 0.31), {"best_peer": False, "best_content_only_new_items": True}),  # 1.1x only
    ((0.12, 0.25), {"best_peer": True, "best_content_only_new_items": False}),  # 1.25x only
])
def test_targets_compare_with_the_best_peers(medley: tuple[float, float],
                                             targets: dict[str, bool]) -> None:
    from benchmarks.eval_report import _verdict

    peers_now = {"popularity": (0.05, 0.02), "als": (0.09, 0.02), "als_recent": (0.08, 0.02),
                 "content": (0.01, 0.15), "content_centred": (0.02, 0.2), "zblend": (0.1, 0.2)}
    v = _verdict(_results({"medley": medley, **peers_now}), tuple(targets))  # no LightFM
    assert v["best_peer"]["peer"] == "zblend"
    assert v["best_content_only_new_items"]["peer"] in ("content_centred", "zblend")
    assert v["targets"] == targets
    assert "lightfm" not in v["ndcg_diff_ci95_vs"]
