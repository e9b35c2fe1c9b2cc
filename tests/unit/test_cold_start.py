"""Cold start through CALS (content-constrained implicit ALS, `medley.recs.cals`): on a catalog
where an item's collaborative factors are a function of its content, a brand-new item's
predicted factors land it with its audience; too little data leaves the model without CALS
and the cold scorer without its inputs; training twice gives the same model."""

from __future__ import annotations

import numpy as np
import pytest

from medley.domain import Modality
from medley.recs import cals, collab, features, ranker
from medley.recs.behavior import Behavior
from medley.recs.collab import CollabModel
from medley.recs.engine import Recommender
from medley.recs.items import ItemInfo, ItemTable
from medley.recs.learn import learn
from medley.recs.predicted import Predicted
from tests.unit.test_learn import TOPICS, _catalog, _history, _settings

DIM, F = 16, 4


def _world(n_items: int = 300, n_new: int = 50, n_users: int = 200, seed: int = 0):
    """Items' true factors are a linear function of their content; each user touches the
    15 established items they score highest (and likes the top 8)."""
    rng = np.random.default_rng(seed)
    content = rng.normal(size=(n_items, DIM)) + 3.0  # a common offset every item shares
    mix = rng.normal(size=(DIM, F))
    true_items = (content - 3.0) @ mix
    true_users = rng.normal(size=(n_users, F))
    warm = n_items - n_new
    triples = []
    for u in range(n_users):
        best = np.argsort(-(true_items[:warm] @ true_users[u]))[:15]
        for rank, i in enumerate(best):
            triples.append((f"u{u:03d}", f"i{i:03d}", 4.0 if rank < 8 else 1.0))
    return content, true_items, true_users, warm, triples


def _fit(content: np.ndarray, triples, warm: int) -> tuple[CollabModel, cals.Cals]:
    model = collab.train(triples, factors=F, iterations=10, regularization=1.0, seed=0)
    assert model is not None
    found = collab.confidences(triples)
    assert found is not None
    _, items, conf = found
    rows = [int(i[1:]) for i in items]
    units = content[rows].astype(np.float32)
    present = np.ones((len(rows), 1), dtype=bool)
    fitted = cals.fit([("text", DIM)], units, present, content[:warm].mean(axis=0), conf,
                      model.user_factors, 1.0)
    assert fitted is not None
    return model, fitted


def test_cals_predicts_the_factors_of_items_it_never_saw() -> None:
    """For brand-new items, y_i·x_u (content-predicted factors, the user's CALS vector)
    orders them as the users' true tastes do: the items a user would engage with come first."""
    content, true_items, true_users, warm, triples = _world()
    model, fitted = _fit(content, triples, warm)
    new = np.arange(warm, len(content))
    factors, audience = fitted.predict(content[new].astype(np.float32),
                                       np.ones((len(new), 1), dtype=bool))
    assert factors.shape == (len(new), F) and audience.shape == (len(new),)
    hits, corr = [], []
    for u, name in enumerate(model.user_ids):
        k = int(name[1:])
        pred = factors @ fitted.user_factors[u]
        true = true_items[new] @ true_users[k]
        corr.append(np.corrcoef(pred, true)[0, 1])
        hits.append(len(set(np.argsort(-pred)[:5]) & set(np.argsort(-true)[:10])) / 5)
    assert np.mean(corr) > 0.8, np.mean(corr)
    assert np.mean(hits) > 0.6, np.mean(hits)  # chance: 10 of 50 = 0.2
    # A user the model never saw, folded in from a few positives, gets the same order.
    u = 0
    liked = [model.item_row[i] for uu, i, w in triples if uu == model.user_ids[u] and w > 1]
    rows = [int(model.item_ids[r][1:]) for r in liked]
    y, _ = fitted.predict(content[rows].astype(np.float32), np.ones((len(rows), 1), bool))
    folded = fitted.fold_in(y, np.full(len(rows), collab.CONFIDENCE_SCALE * 4.0))
    assert folded is not None
    a, b = factors @ folded, factors @ fitted.user_factors[u]
    assert np.corrcoef(a, b)[0, 1] > 0.9


def test_the_a_step_minimises_the_implicit_als_objective() -> None:
    """A (item factors ZA) from the CG A-step is the minimiser of the implicit-ALS loss plus
    its ridge: any nudge of it costs more, and so does A = 0."""
    content, _, _, warm, triples = _world(seed=1)
    found = collab.confidences(triples)
    assert found is not None
    users, items, conf = found
    z = cals.design(content[[int(i[1:]) for i in items]].astype(np.float32),
                    np.ones((len(items), 1), dtype=bool), content[:warm].mean(axis=0), [DIM])
    x = np.random.default_rng(0).normal(size=(len(users), F))
    dense = conf.toarray()
    c, p = np.where(dense > 0, dense, 1.0), (dense > 0) * 1.0
    lam = 0.1
    scale = np.trace(z.T @ z) * np.trace(x.T @ x) / (z.shape[1] * F)

    def objective(a: np.ndarray) -> float:
        return float((c * (p - x @ (z @ a).T) ** 2).sum() + lam * scale * (a * a).sum())

    a = cals.a_step(z, x, conf, lam, iters=500)
    best = objective(a)
    assert best < objective(np.zeros_like(a))
    rng = np.random.default_rng(1)
    for _ in range(5):
        assert best < objective(a + 1e-3 * rng.normal(size=a.shape))


def test_too_little_data_means_no_cals_and_the_cold_scorer_without_it(tmp_path) -> None:
    # Too few items with content, or too few users: no map.
    conf = collab.confidences([("u1", "a", 1.0), ("u2", "b", 1.0)])
    assert conf is not None
    assert cals.fit([("text", DIM)], np.zeros((2, DIM)), np.ones((2, 1), bool), np.zeros(DIM),
                    conf[2], np.zeros((2, F)), 1.0) is None
    content, _, _, _, triples = _world(n_users=4)
    found = collab.confidences(triples)
    assert found is not None
    _, items, conf4 = found
    rows = [int(i[1:]) for i in items]
    assert cals.fit([("text", DIM)], content[rows], np.ones((len(rows), 1), bool),
                    np.zeros(DIM), conf4, np.zeros((4, F)), 1.0) is None
    # The cold scorer tries only what it has inputs for.
    names = features.NAMES
    rng = np.random.default_rng(0)
    groups = [ranker.Group(rng.normal(size=(20, len(names))), (rng.random(20) < 0.2) * 1.0)
              for _ in range(10)]
    chosen = ranker.fit_cold(groups, names)
    assert not any(k in chosen["weights"] for k in ranker.COLD_EXTRA)
    assert all("cals" not in k and "uclf" not in k for k in chosen["ndcg@10"])
    # A learned model on a catalog without content vectors has no CALS, and serves.
    table = ItemTable({Modality.TEXT: DIM}, capacity=16)
    for k in range(12):
        table.upsert(f"i{k}", ItemInfo(f"item {k}", (), None, None, 0.0), None)
    stream = _history([k % TOPICS for k in range(12)], users=10, per_user=3, cold=0)
    model, report = learn(stream, table, _settings(tmp_path), last_seq=len(stream))
    assert model is not None and model.cals is None and not report.get("cals")


@pytest.fixture(scope="module")
def topical(tmp_path_factory: pytest.TempPathFactory):
    table, topics = _catalog()
    stream = _history(topics)
    settings = _settings(tmp_path_factory.mktemp("cold"))
    model, report = learn(stream, table, settings, last_seq=len(stream))
    assert model is not None
    return table, topics, stream, settings, model, report


def test_training_is_idempotent_and_cals_travels_with_the_model(topical, tmp_path) -> None:
    table, _, stream, _, model, report = topical
    assert model.cals is not None and model.cals.uclf is not None and report["cals"]
    again, _ = learn(stream, table, _settings(tmp_path), last_seq=len(stream))
    assert again is not None and again.cals is not None and again.cals.uclf is not None
    np.testing.assert_array_equal(again.cals.weights, model.cals.weights)
    np.testing.assert_array_equal(again.cals.user_factors, model.cals.user_factors)
    np.testing.assert_array_equal(again.cals.uclf, model.cals.uclf)
    assert again.ranker is not None and model.ranker is not None
    assert again.ranker.meta["cold"] == model.ranker.meta["cold"]
    back = CollabModel.from_bytes(model.to_bytes())
    assert back.cals is not None and back.cals.uclf is not None
    np.testing.assert_array_equal(back.cals.weights, model.cals.weights)
    np.testing.assert_array_equal(back.cals.user_factors, model.cals.user_factors)
    np.testing.assert_array_equal(back.cals.gram, model.cals.gram)
    np.testing.assert_array_equal(back.cals.uclf, model.cals.uclf)
    assert back.cals.layout == model.cals.layout
    # A blob stored before CALS existed still loads, without it.
    old = CollabModel(model.user_ids, model.item_ids, model.user_factors, model.item_factors,
                      model.regularization, model.last_seq, model.content_map, model.ranker)
    assert CollabModel.from_bytes(old.to_bytes()).cals is None
    # Erasing a user drops their CALS vector and classifier with their ALS factors.
    gone = model.without(model.user_ids[0])
    assert gone.cals is not None and gone.cals.uclf is not None
    assert len(gone.cals.user_factors) == len(gone.user_ids) == len(gone.cals.uclf)
    np.testing.assert_array_equal(gone.cals.user_factors, model.cals.user_factors[1:])


def test_serving_scores_new_items_through_cals(topical) -> None:
    """A brand-new item is scored for a user from factors predicted once per model and the
    user's stored CALS vector; those of the user's topic come first, for a known user and
    for one who arrived after training (folded in)."""
    table, topics, stream, settings, model, _ = topical
    behavior = Behavior(365 * 86400.0, 86400.0)
    behavior.apply(stream)
    rec = Recommender(settings, table, behavior, table.nearest, clock=lambda: behavior.latest_ts)
    predicted = Predicted(model)
    assert predicted.warm(table) == len(table.ids)
    rec.use_model(model, predicted)
    new = [f"i{k}" for k in range(len(topics) - 40, len(topics))]
    rows = table.rows(new)
    got, audience = predicted.get_cals(table, model, rows)
    want, want_aud = model.cals.predict(table.units[rows], table.present[rows])
    assert got is not None
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(audience, want_aud, rtol=1e-4, atol=1e-5)
    for user in ("u0", "u1", "u2"):
        taste, _ = rec.user_taste(user, None)
        vec = features.cals_vector(table, model, predicted, user, taste.positives)
        np.testing.assert_array_equal(vec, model.cals_user(user))
        signals = features.UserSignals(taste.vector, None, taste.liked_rows, taste.events, vec,
                                       features.uclf_of(model, user))
        cold = features.cold(table, model, predicted, signals, new)
        assert np.isfinite(cold).all()
        mine = int(user[1:]) % TOPICS
        for col in (0, 2):  # CALS, and the user's taste classifier
            top = [new[k] for k in np.argsort(-cold[:, col])[:5]]
            assert all(topics[int(i[1:])] == mine for i in top), (user, col, top)
        scores = rec.score(new, taste, None)
        top = [new[k] for k in np.argsort(-scores)[:5]]
        assert all(topics[int(i[1:])] == mine for i in top), (user, top)
    # A newcomer (not in the model) is folded in from their positives.
    taste, _ = rec.user_taste("u1", None)
    vec = features.cals_vector(table, model, predicted, "newcomer", taste.positives)
    assert vec is not None and features.uclf_of(model, "newcomer") is None
    signals = features.UserSignals(taste.vector, None, taste.liked_rows, taste.events, vec)
    cold = features.cold(table, model, predicted, signals, new)
    top = [new[k] for k in np.argsort(-cold[:, 0])[:5]]
    assert all(topics[int(i[1:])] == 1 % TOPICS for i in top), top


def test_the_cold_scorer_reads_old_and_new_weights() -> None:
    names = list(features.NAMES)
    x = np.zeros((3, len(names)))
    x[:, names.index("collab_mapped")] = [0.0, 1.0, 2.0]
    extra = np.zeros((3, len(features.COLD)))
    extra[:, features.COLD.index("cals")] = [2.0, 1.0, 0.0]
    old = ranker.cold_scores(x, names, {"weight": 0.0, "engagement": 0.0}, extra)
    assert list(np.argsort(-old)) == [2, 1, 0]
    new = ranker.cold_scores(x, names, {"weights": {"cals": 1.0}}, extra)
    assert list(np.argsort(-new)) == [0, 1, 2]
    # without its inputs, a weight on them counts every item as average
    assert not ranker.cold_scores(x, names, {"weights": {"cals": 1.0}}, None).any()



def test_classifiers_stay_within_their_byte_budget_most_active_users_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    z = rng.standard_normal((30, 8))
    # User k touched k + 1 items; the first item of each is liked.
    rows = [u for u in range(10) for _ in range(u + 1)]
    cols = [i for u in range(10) for i in range(u + 1)]
    touched = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(10, 30))
    liked = sp.csr_matrix((np.ones(10), (range(10), [0] * 10)), shape=(10, 30))
    monkeypatch.setattr(cals, "CLF_MAX_BYTES", 3 * 2 * 8)  # room for three users
    weights = cals.classifiers(z, touched, liked)
    learned = sorted(np.flatnonzero(np.abs(weights).sum(axis=1) > 0).tolist())
    assert learned == [7, 8, 9]  # the three most active; the rest count as average
