"""The item-to-item feature (`medley.recs.knn`), the cuts the ranker trains on, and the
ranker's groups from earlier cuts."""

from __future__ import annotations

import numpy as np

from medley.recs import knn, ranker
from medley.recs.events import Event, EventType
from medley.recs.learn import split_at_time, split_by_user


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
