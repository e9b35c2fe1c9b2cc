"""The item-to-item feature (`medley.recs.knn`) and its recent-items variant, the user's own
ALS score, the cuts the ranker trains on, and the ranker's groups from earlier cuts."""

from __future__ import annotations

import numpy as np
import pytest

from medley.domain import Modality
from medley.recs import features, knn, ranker
from medley.recs.behavior import Behavior
from medley.recs.collab import CollabModel
from medley.recs.events import Event, EventType
from medley.recs.items import ItemInfo, ItemTable
from medley.recs.learn import split_at_time, split_by_user
from medley.recs.predicted import Predicted


def _pairs() -> list[tuple[str, str]]:
    # Two camps: users 0-19 engage with a0..a4, users 20-39 with b0..b4.
    out = []
    for u in range(40):
        camp = "a" if u < 20 else "b"
        out += [(f"u{u}", f"{camp}{k}") for k in range(5) if (u + k) % 5]
    return out


def test_knn_scores_items_of_the_users_camp_above_the_others() -> None:
    model = knn.fit(_pairs(), lam=1.0)
    assert model is not None
    s = model.scores(["a0", "a1"], ["a2", "b2", "unknown"])
    assert s[0] > s[1]
    assert np.isnan(s[2])  # outside the vocabulary
    assert np.isnan(model.scores(["unknown"], ["a2"])).all()  # no history item known


def test_knn_top_is_the_history_camp_best_first_without_what_was_consumed() -> None:
    model = knn.fit(_pairs(), lam=1.0)
    assert model is not None
    top = model.top(["a0", "a1"], 3, skip={"a0", "a1"})
    assert len(top) == 3 and set(top) <= {"a2", "a3", "a4"}
    s = model.scores(["a0", "a1"], top)
    assert list(s) == sorted(s, reverse=True)  # best first
    assert "a2" not in model.top(["a0", "a1"], 10, skip={"a2"})
    assert model.top(["unknown"], 5) == [] and model.top(["a0"], 0) == []


def test_knn_keeps_a_bounded_vocabulary_and_row_width() -> None:
    model = knn.fit(_pairs(), vocab=6, keep=3, lam=1.0)
    assert model is not None
    assert len(model.ids) == 6
    assert np.diff(model.weights.indptr).max() <= 3


def test_knn_survives_the_ranker_blob() -> None:
    model = knn.fit(_pairs(), lam=1.0)
    assert model is not None
    rk = ranker.Ranker(["x"], "model", {"a": 1}, model)
    back = ranker.Ranker.from_bytes(rk.to_bytes())
    assert back.knn is not None and back.knn.ids == model.ids
    a = model.scores(["a0"], ["a1", "b1"])
    np.testing.assert_allclose(back.knn.scores(["a0"], ["a1", "b1"]), a, rtol=1e-2)
    assert ranker.Ranker.from_bytes(ranker.Ranker(["x"], "m").to_bytes()).knn is None


def test_each_cut_takes_its_window_of_every_users_events() -> None:
    stream = [(k + 1, Event(f"e{k}", "u", f"i{k}", EventType.VIEW, None, float(k)))
              for k in range(10)]
    history, later = split_by_user(stream, 0.6, 0.2)
    assert [e.item_id for _, e in history] == [f"i{k}" for k in range(6)]
    assert [e.item_id for e in later["u"]] == ["i6", "i7"]
    history, later = split_by_user(stream)  # the latest cut: the last 20% later
    assert len(history) == 8 and [e.item_id for e in later["u"]] == ["i8", "i9"]


def test_a_time_cut_is_one_moment_for_every_user() -> None:
    """Two users, one active early and one late: at a global cut the early user's events are
    all history and the late user's next events are what they did later, as serving sees
    both at one moment; impressions are never what a user did later."""
    early = [Event(f"a{k}", "early", f"i{k}", EventType.LIKE, None, float(k)) for k in range(6)]
    late = [Event(f"b{k}", "late", f"j{k}", EventType.LIKE, None, 10.0 + k) for k in range(4)]
    shown = Event("s", "late", "j9", EventType.IMPRESSION, None, 11.5)
    stream = list(enumerate([*late, shown, *early], start=1))  # stored out of time order
    history, later = split_at_time(stream, 0.6, 0.3)  # 11 events: 7 history, 3 later
    assert [e.event_id for _, e in history] == ["b0", "a0", "a1", "a2", "a3", "a4", "a5"]
    assert [seq for seq, _ in history] == list(range(1, 8))
    assert list(later) == ["late"]
    assert [e.event_id for e in later["late"]] == ["b1", "b2"]  # the impression is skipped


def test_groups_of_earlier_cuts_are_fitted_on_never_validated_on() -> None:
    rng = np.random.default_rng(0)
    names = ["collab", "content"]

    def g(user: str, extra: bool) -> ranker.Group:
        x = rng.normal(size=(30, 2))
        return ranker.Group(x, (x[:, 0] > 0.5) * 1.0, user=user, extra=extra)

    groups = [g(f"u{k}", False) for k in range(60)] + [g(f"u{k}", True) for k in range(60)]
    _, report = ranker.train(groups, names)
    assert report["groups"] == 60  # the users of the latest cut
    assert report["validation_groups"] == 20
    # fitted on the other 40 users' groups of both cuts
    assert report["train_groups"] == 80


# --- the ranker's recency and own-factor features ----------------------------------------------

def _camp_table() -> ItemTable:
    table = ItemTable({Modality.TEXT: 2})
    for camp in "ab":
        for k in range(5):
            table.upsert(f"{camp}{k}", ItemInfo(f"{camp}{k}", (), None, None, 0.0),
                         {Modality.TEXT: np.array([1.0, 0.1 * k])})
    return table


@pytest.mark.parametrize(("recent", "older", "wins"), [
    ("b", "a", "b"),  # a user who moved from camp a to camp b: the recent feature follows
    ("a", "b", "a"),
])
def test_knn_recent_reads_only_the_newest_liked_items(recent: str, older: str,
                                                      wins: str) -> None:
    model = knn.fit(_pairs(), lam=1.0)
    assert model is not None
    table = _camp_table()
    newest = features.LIKED_MAX_RECENT
    # liked_rows are newest first: a few recent items of one camp, then many of the other
    liked = [f"{recent}{k % 5}" for k in range(newest)] + [f"{older}{k % 5}" for k in range(20)]
    user = features.UserSignals(None, None, table.rows(liked), 25)
    ids = [f"{recent}0", f"{older}0"]
    x = features.compute(table, Behavior(86400.0, 3600.0), None, Predicted(None), 0.0, user,
                         ids, None, model)
    k = features.NAMES.index("knn_recent")
    assert (x[0, k] > x[1, k]) == (wins == recent)
    whole = x[:, features.NAMES.index("knn")]  # all liked items: the older camp dominates
    assert whole[1] > whole[0]


def test_collab_user_is_the_trained_users_own_score_and_unknown_otherwise() -> None:
    rng = np.random.default_rng(0)
    items = [f"{c}{k}" for c in "ab" for k in range(5)]
    model = CollabModel(["u0", "u1"], items, rng.normal(size=(2, 4)).astype(np.float32),
                        rng.normal(size=(10, 4)).astype(np.float32), 1.0)
    table = _camp_table()
    k = features.NAMES.index("collab_user")
    folded = rng.normal(size=4).astype(np.float32)  # "collab": from recent positives
    for user_id, known in (("u1", True), ("stranger", False), (None, False)):
        trained = features.trained_of(model, user_id)
        assert (trained is not None) == known
        for vector in (None, folded):
            user = features.UserSignals(None, vector, np.array([], dtype=np.int64), 3,
                                        trained=trained)
            x = features.compute(table, Behavior(86400.0, 3600.0), model, Predicted(model),
                                 0.0, user, items)
            if known:
                np.testing.assert_allclose(x[:, k], model.item_factors @ model.user_factors[1],
                                           rtol=1e-5)
            else:
                assert np.isnan(x[:, k]).all()
            if vector is not None:
                np.testing.assert_allclose(x[:, features.NAMES.index("collab")],
                                           model.item_factors @ folded, rtol=1e-5)


def test_a_row_shown_as_brand_new_loses_its_recency_and_own_factor_scores() -> None:
    x = np.ones((3, len(features.NAMES)), dtype=np.float32)
    masked = features.mask_behaviour(x, np.array([True, False, True]))
    for name in ("knn_recent", "collab_user"):
        col = masked[:, features.NAMES.index(name)]
        assert np.isnan(col[[0, 2]]).all() and col[1] == 1.0
