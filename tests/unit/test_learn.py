"""What the recommender learns from history: the content -> factors map, the learned ranker, its
fallback, and that training twice on the same events gives the same model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from medley.config import Settings
from medley.domain import Modality
from medley.recs import content_map, features, knn, ranker
from medley.recs.behavior import Behavior
from medley.recs.collab import CollabModel
from medley.recs.engine import Recommender
from medley.recs.events import Event, EventType
from medley.recs.items import ItemInfo, ItemTable
from medley.recs.learn import learn
from medley.recs.predicted import Predicted

DIM, TOPICS = 16, 4


def test_content_map_predicts_factors_of_items_it_never_saw() -> None:
    """A controlled catalog where an item's factors are a linear function of its content:
    the map must recover them for held-back items, not just fit the ones it saw."""
    rng = np.random.default_rng(0)
    common = rng.normal(size=DIM) * 3  # the shared direction raw embeddings carry
    content = rng.normal(size=(400, DIM)) + common
    content /= np.linalg.norm(content, axis=1, keepdims=True)
    true_map = rng.normal(size=(DIM, 6))
    factors = (content - content.mean(axis=0)) @ true_map + 0.01 * rng.normal(size=(400, 6))
    seen, unseen = slice(0, 300), slice(300, 400)
    present = np.ones((400, 1), dtype=bool)
    means = content[seen].mean(axis=0)
    fitted = content_map.fit([("text", DIM)], content[seen], present[seen], means,
                             factors[seen], np.zeros(300))
    assert fitted is not None
    cmap, oof = fitted
    predicted, _ = cmap.predict(content[unseen], present[unseen])
    cos = (predicted * factors[unseen]).sum(axis=1) / (
        np.linalg.norm(predicted, axis=1) * np.linalg.norm(factors[unseen], axis=1))
    assert np.median(cos) > 0.95
    assert cmap.r2 > 0.9  # out of fold, on the items it learned from
    assert oof.shape == (300, 7)


@pytest.mark.parametrize(("items", "dims"), [(30, 50), (80, 20)])
def test_ridge_gives_the_same_answer_in_either_space(items: int, dims: int) -> None:
    """Small catalogs are solved over items, large ones over features: same weights, same
    out-of-fold predictions."""
    rng = np.random.default_rng(items)
    x, y = rng.normal(size=(items, dims)), rng.normal(size=(items, 3))
    folds = rng.integers(0, 5, size=items)
    w_items, oof_items = content_map._fit_folds(x, y, folds, content_map.ALPHAS, dual=True)
    w_feats, oof_feats = content_map._fit_folds(x, y, folds, content_map.ALPHAS, dual=False)
    np.testing.assert_allclose(w_items, w_feats, atol=1e-8)
    np.testing.assert_allclose(oof_items, oof_feats, atol=1e-8)


def test_content_map_needs_items_with_content() -> None:
    assert content_map.fit([("text", DIM)], np.zeros((3, DIM)), np.zeros((3, 1), dtype=bool),
                           np.zeros(DIM), np.zeros((3, 4)), np.zeros(3)) is None


# --- a small platform with history: users like the items of their own topic -------------------
def _catalog(n_items: int = 160, seed: int = 0) -> tuple[ItemTable, list[int]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(TOPICS, DIM)) * 2
    table = ItemTable({Modality.TEXT: DIM}, capacity=n_items)
    topics = []
    for k in range(n_items):
        t = k % TOPICS
        topics.append(t)
        vec = centres[t] + rng.normal(size=DIM) + 4.0  # + a common offset every item shares
        table.upsert(f"i{k}", ItemInfo(f"item {k}", (f"t{t}",), None, None, 0.0),
                     {Modality.TEXT: vec.astype(np.float32)})
    return table, topics


def _history(topics: list[int], users: int = 120, per_user: int = 15, seed: int = 0,
             cold: int = 40) -> list[tuple[int, Event]]:
    """Each user views then likes items of their topic over time; the last `cold` items of the
    catalog never get an event (brand new)."""
    rng = np.random.default_rng(seed)
    warm = len(topics) - cold
    out: list[tuple[int, Event]] = []
    ts = 1_000_000.0
    for u in range(users):
        mine = [k for k in range(warm) if topics[k] == u % TOPICS]
        for k in rng.choice(mine, per_user, replace=False):
            ts += 60.0
            for kind in (EventType.VIEW, EventType.LIKE):
                out.append((len(out) + 1, Event(f"e{len(out)}", f"u{u}", f"i{k}", kind, None,
                                                ts)))
    return out


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, collab_factors=8, collab_iterations=5,
                    candidates_per_source=30, popularity_half_life_days=365.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[ItemTable, list[int], list[tuple[int, Event]], CollabModel, dict]:
    table, topics = _catalog()
    stream = _history(topics)
    settings = _settings(tmp_path_factory.mktemp("learn"))
    model, report = learn(stream, table, settings, last_seq=len(stream))
    assert model is not None
    return table, topics, stream, model, report


def test_training_twice_on_the_same_events_gives_the_same_model(trained, tmp_path) -> None:
    table, _, stream, model, _ = trained
    again, _ = learn(stream, table, _settings(tmp_path), last_seq=len(stream))
    assert again is not None and again.ranker is not None and model.ranker is not None
    assert again.ranker.model == model.ranker.model
    np.testing.assert_array_equal(again.item_factors, model.item_factors)
    # and it survives the trip through storage, map and ranker included
    back = CollabModel.from_bytes(model.to_bytes())
    assert back.ranker is not None and back.ranker.model == model.ranker.model
    assert back.content_map is not None
    np.testing.assert_array_equal(back.content_map.weights, model.content_map.weights)


def test_a_new_item_reaches_the_audience_of_its_topic(trained) -> None:
    """Items nobody has engaged with, scored for a user through the learned model: those of
    the user's topic come first."""
    table, topics, stream, model, report = trained
    assert report["ranker"]["kept"], report
    behavior = Behavior(365 * 86400.0, 86400.0)
    behavior.apply(stream)
    rec = Recommender(_settings(Path("unused")), table, behavior, table.nearest,
                      clock=lambda: behavior.latest_ts)
    rec.collab = model
    new = [f"i{k}" for k in range(len(topics) - 40, len(topics))]
    for user in ("u0", "u1", "u2", "u3"):
        taste, _ = rec.user_taste(user, None)
        scores = rec.score(new, taste, None)
        top = [new[k] for k in np.argsort(-scores)[:5]]
        mine = int(user[1:]) % TOPICS
        assert all(topics[int(i[1:])] == mine for i in top), (user, top)


def test_items_that_follow_the_users_history_are_ranked_for_them(trained) -> None:
    """The ranker's item-to-item weights are a candidate source of their own: an item that
    people who engaged with this user's items went on to (here: one nobody's taste or ALS
    vector points at, of another topic) is among the candidates the ranker scores, and drops
    out when the model carries no such weights."""
    table, topics, stream, model, _ = trained
    assert model.ranker is not None
    behavior = Behavior(365 * 86400.0, 86400.0)
    behavior.apply(stream)
    rec = Recommender(_settings(Path("unused")), table, behavior, table.nearest,
                      clock=lambda: behavior.latest_ts)
    rec.collab = model
    liked = [i for i, _, _ in behavior.user("u0").positives]
    follow = next(f"i{k}" for k in range(len(topics) - 1, 0, -1) if topics[k] != 0)
    vocab = [*dict.fromkeys(liked), follow]
    weights = np.zeros((len(vocab), len(vocab)), dtype=np.float32)
    weights[:-1, -1] = 1.0  # every liked item leads to `follow`
    scored: list[list[str]] = []
    real = rec.score
    rec.score = lambda ids, *a: scored.append(list(ids)) or real(ids, *a)  # type: ignore
    kept = model.ranker.knn
    try:
        model.ranker.knn = knn.ItemKnn(vocab, sp.csr_matrix(weights))
        rec.for_user("u0", 10, None, None)
        model.ranker.knn = None
        rec.collab = model  # a ranker changes with its model: served anew (user lists refound)
        rec.for_user("u0", 10, None, None)
    finally:
        model.ranker.knn = kept
    assert follow in scored[0] and follow not in scored[1]


def test_a_users_kept_features_rank_as_the_request_would_find_them(trained) -> None:
    """A user's nearline entry keeps the ranker's personal features of its candidates: the
    request that reads them ranks and scores exactly as one that computes them all."""
    table, _, stream, model, _ = trained
    assert model.ranker is not None
    behavior = Behavior(365 * 86400.0, 86400.0)
    behavior.apply(stream)
    recs = [Recommender(_settings(Path("unused")).model_copy(update={"user_lists_size": size}),
                        table, behavior, table.nearest, clock=lambda: behavior.latest_ts)
            for size in (100, 0)]
    for rec in recs:
        rec.collab = model
    users = [u for u in list(behavior.users)[:6]]
    for k, user in enumerate(users):  # the entry found by a request, or ahead of one
        if k % 2:
            recs[0].for_user(user, 10, None, None)
        else:
            assert recs[0].personal.warm(user)
    for served_again in (False, True):  # and under a newer model: its part found again
        if served_again:
            for rec in recs:
                rec.collab = model
        for user in users:
            kept, plain = (rec.for_user(user, 10, None, None) for rec in recs)
            assert [s.item_id for s in kept.items] == [s.item_id for s in plain.items]
            assert np.allclose([s.score for s in kept.items], [s.score for s in plain.items],
                               atol=1e-5)
    assert recs[0].user_lists.stats()["hits"] == 2 * len(users)
    entry = recs[0].user_lists.get(users[0], recs[0].personal.stamp(users[0]), table.version)
    assert entry is not None and entry.kept is not None and len(entry.kept[0]) > 0


def test_predictions_are_kept_per_model(trained) -> None:
    """Each item's predicted factors are computed once for the model they belong to; a
    request still holding another model gets the right numbers and leaves the cache alone."""
    table, _, _, model, _ = trained
    cache = Predicted(model)
    assert cache.warm(table) == len(table.ids)
    assert cache.warm(table) == 0  # nothing left to do
    rows = np.arange(5)
    want, _ = model.content_map.predict(table.units[rows], table.present[rows])
    # float32 products over a batch of all rows and over these five round differently (BLAS
    # blocks by batch size and thread count): equal to float32 precision, not bit for bit.
    got, _ = cache.get(table, model, rows)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    other = CollabModel.from_bytes(model.to_bytes())  # another model object, the same map
    got, _ = cache.get(table, other, rows)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert cache.model is model and cache.warm(table) == 0
    cache.forget(3)
    assert cache.warm(table) == 1  # a changed item is predicted again


def test_without_enough_users_the_hand_blend_serves(tmp_path) -> None:
    table, topics = _catalog()
    stream = _history(topics, users=20)
    model, report = learn(stream, table, _settings(tmp_path), last_seq=len(stream))
    assert model is not None and model.ranker is None
    assert "needs" in report["ranker"]["why"]
    behavior = Behavior(365 * 86400.0, 86400.0)
    behavior.apply(stream)
    rec = Recommender(_settings(tmp_path), table, behavior, table.nearest,
                      clock=lambda: behavior.latest_ts)
    rec.collab = model
    answer = rec.for_user("u0", 5, None, None)
    assert len(answer.items) == 5 and not answer.fallback
    assert sum(topics[int(s.item_id[1:])] == 0 for s in answer.items) >= 3  # mostly their topic


def test_a_ranker_that_cannot_be_trained_leaves_als_served(tmp_path, monkeypatch) -> None:
    table, topics = _catalog()
    stream = _history(topics)

    def broken(*_: object, **__: object) -> None:
        raise ValueError("lightgbm refused the data")

    monkeypatch.setattr(ranker, "train", broken)
    model, report = learn(stream, table, _settings(tmp_path), last_seq=len(stream))
    assert model is not None and model.ranker is None and model.content_map is not None
    assert "lightgbm refused" in report["ranker"]["why"]


def test_the_cold_order_survives_ties_in_the_trees() -> None:
    """Trees often give every new item the same value; the cold scorer's order must still
    decide among them, while established items keep their own scores."""
    names = features.NAMES
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, len(names))).astype(np.float32)
    y = (x[:, names.index("collab")] > 1.0).astype(float)
    groups = [ranker.Group(x[k : k + 30], y[k : k + 30]) for k in range(0, 300, 30)]
    import lightgbm as lgb

    booster = lgb.train({"objective": "lambdarank", "verbose": -1, "min_data_in_leaf": 5},
                        lgb.Dataset(x, y, group=[30] * 10), 5)
    r = ranker.Ranker(list(names), booster.model_to_string(), {"cold": {"weight": 0.0}})
    q = np.zeros((4, len(names)), dtype=np.float32)  # four brand-new items, identical to trees
    q[:, names.index("collab_mapped")] = [0.1, 0.9, 0.5, 0.3]
    order = np.argsort(-r.score(q))
    assert list(order) == [1, 2, 3, 0]
    assert len(groups) == 10


def test_a_kept_ranker_is_refitted_on_every_group(monkeypatch) -> None:
    """The users it was checked on are learnt from too, with the trees the check chose, and
    the ranker scores with the refitted model, not the checked one it had loaded."""
    names = features.NAMES
    rng = np.random.default_rng(1)
    groups = []
    for u in range(80):
        x = rng.normal(size=(30, len(names))).astype(np.float32)
        y = (x[:, names.index("collab")] + x[:, names.index("content")] > 1.5).astype(float)
        y[0] = 1.0
        groups.append(ranker.Group(x, y, user=str(u), extra=u >= 60))
    kept, report = ranker.train(groups, names)
    assert kept is not None and report["kept"]
    assert report["refit_groups"] == 80 and report["train_groups"] < 80
    assert kept.meta["cascade"] == {}  # 30 candidates a user: no shortlist to cut
    monkeypatch.setattr(ranker, "REFIT", False)
    checked, _ = ranker.train(groups, names)
    assert checked is not None and checked.model != kept.model
    import lightgbm as lgb

    x = groups[0].x
    own = lgb.Booster(model_str=kept.model).predict(x)
    assert np.allclose(kept.score(x), own)
    assert not np.allclose(kept.score(x), checked.score(x))


def _counting_cuts(monkeypatch, groups_per_cut: int) -> list[tuple[str, float]]:
    """Stand in for each cut's group building (the expensive part): record the cut, return
    that many groups."""
    from medley.recs import learn as learn_mod

    seen: list[tuple[str, float]] = []

    def fake(stream, table, settings, kind, cut, rng, seed):
        seen.append((kind, cut))
        return [ranker.Group(np.zeros((2, len(features.NAMES))), np.array([1.0, 0.0]),
                             user=f"u{len(seen)}-{k}") for k in range(groups_per_cut)]

    monkeypatch.setattr(learn_mod, "_cut_groups", fake)
    monkeypatch.setattr(ranker, "train", lambda *a, **k: (None, {"kept": False}))
    return seen


def test_earlier_cuts_are_skipped_once_the_groups_suffice(monkeypatch) -> None:
    """A large platform trains on its latest cut (and a second while the groups fall short):
    every cut replays the whole event log, and five took the task 44 minutes at 1M events."""
    from medley.recs import learn as learn_mod

    seen = _counting_cuts(monkeypatch, learn_mod.MAX_USERS)
    learn_mod.train_ranker([], ItemTable({Modality.TEXT: 4}), Settings())
    assert seen == [("user", learn_mod.CUTS[0]), ("time", learn_mod.TIME_CUTS[0])]


def test_a_small_platform_trains_on_every_cut(monkeypatch) -> None:
    from medley.recs import learn as learn_mod

    seen = _counting_cuts(monkeypatch, 400)  # MovieLens-sized: ~400 users per cut
    learn_mod.train_ranker([], ItemTable({Modality.TEXT: 4}), Settings())
    assert sorted(seen) == sorted([("user", c) for c in learn_mod.CUTS]
                                  + [("time", c) for c in learn_mod.TIME_CUTS])


def test_cals_fitted_on_the_most_engaged_items_still_places_new_items(monkeypatch,
                                                                      tmp_path) -> None:
    """A catalog larger than MAX_CALS_ITEMS fits CALS's content map on its most engaged items
    only: brand-new items of a user's topic still score first through it."""
    import scipy.sparse as sp

    from medley.recs import fitting

    conf = sp.csr_matrix(np.array([[1, 0, 1, 1], [1, 0, 0, 1], [0, 0, 1, 1]], dtype=float))
    assert list(fitting.most_engaged(conf, 2)) == [0, 3]  # audiences 2, 0, 2, 3
    assert fitting.most_engaged(conf, 4) is None
    assert list(fitting.most_engaged(conf, 4, min_audience=2)) == [0, 2, 3]
    assert list(fitting.most_engaged(conf, 2, min_audience=3)) == [3]

    monkeypatch.setattr(fitting, "MAX_CALS_ITEMS", 40)  # of the 120 items with events
    table, topics = _catalog()
    stream = _history(topics)
    model, _ = learn(stream, table, _settings(tmp_path), last_seq=len(stream))
    assert model is not None and model.cals is not None
    new = [f"i{k}" for k in range(len(topics) - 40, len(topics))]
    factors, _ = Predicted(model).get_cals(table, model, table.rows(new))
    assert factors is not None
    for user in ("u0", "u1", "u2", "u3"):
        vector = model.cals_user(user)
        assert vector is not None
        top = [new[k] for k in np.argsort(-(factors @ vector))[:5]]
        assert all(topics[int(i[1:])] == int(user[1:]) % TOPICS for i in top), (user, top)
