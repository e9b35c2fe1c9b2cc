"""Behavioural state folded from events: decayed counters, per-user taste inputs, trending and
co-engagement."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable

import pytest

from medley.recs.behavior import Behavior, DecayedCounter
from medley.recs.events import Event, EventType

DAY = 86400.0
T0 = 1.7e9  # a realistic epoch timestamp


_IDS = itertools.count(1)


def _ev(user: str, item: str, kind: EventType, ts: float = T0,
        context: dict[str, str] | None = None) -> Event:
    return Event(f"e{next(_IDS)}", user, item, kind, None, ts, context or {})


def _seq(events: Iterable[Event], start: int = 1) -> list[tuple[int, Event]]:
    return list(enumerate(events, start=start))


def _behavior() -> Behavior:
    return Behavior(popularity_half_life_s=7 * DAY, trending_half_life_s=DAY)


# --- DecayedCounter ---------------------------------------------------------------------------
def test_value_halves_after_one_half_life() -> None:
    c = DecayedCounter(half_life_s=DAY)
    c.add("a", 4.0, T0)
    assert c.value("a", T0) == pytest.approx(4.0)
    assert c.value("a", T0 + DAY) == pytest.approx(2.0)
    assert c.value("a", T0 + 3 * DAY) == pytest.approx(0.5)


def test_unknown_key_and_non_positive_weights_count_nothing() -> None:
    c = DecayedCounter(half_life_s=DAY)
    c.add("a", 0.0, T0)
    c.add("a", -2.0, T0)
    assert c.value("a", T0) == 0.0
    assert c.value("never", T0) == 0.0
    assert c.top(5) == []


def test_order_of_adds_does_not_matter() -> None:
    adds = [(1.0, T0), (3.0, T0 + 3600), (0.5, T0 - 7200), (2.0, T0 + 86000)]
    values = set()
    for perm in itertools.permutations(adds):
        c = DecayedCounter(half_life_s=DAY)
        for w, t in perm:
            c.add("a", w, t)
        values.add(round(c.value("a", T0 + DAY), 9))
    assert len(values) == 1
    expected = sum(w * 0.5 ** ((T0 + DAY - t) / DAY) for w, t in adds)
    assert values.pop() == pytest.approx(expected)


@pytest.mark.parametrize("t", [2e9, 4e9])
def test_huge_timestamps_do_not_overflow(t: float) -> None:
    c = DecayedCounter(half_life_s=DAY)
    for _ in range(1000):
        c.add("a", 1.0, t)
    c.add("b", 1.0, t - 30 * DAY)
    assert c.value("a", t) == pytest.approx(1000.0)
    assert c.value("a", t + DAY) == pytest.approx(500.0)
    assert c.value("b", t) == pytest.approx(0.5**30)
    assert all(math.isfinite(v) for v in c.log.values())


def test_top_ranks_by_decayed_weight() -> None:
    c = DecayedCounter(half_life_s=DAY)
    c.add("old_big", 4.0, T0 - 3 * DAY)  # worth 0.5 now
    c.add("fresh_small", 1.0, T0)  # worth 1.0 now
    c.add("mid", 1.5, T0 - DAY)  # worth 0.75 now
    assert c.top(3) == ["fresh_small", "mid", "old_big"]
    assert c.top(1) == ["fresh_small"]
    # the order is the same whenever it is read: no clock needed
    assert [c.value(k, T0 + 10 * DAY) for k in c.top(3)] == sorted(
        (c.value(k, T0 + 10 * DAY) for k in c.log), reverse=True)


# --- Behavior.apply ---------------------------------------------------------------------------
def test_impressions_are_not_interactions() -> None:
    b = _behavior()
    n = b.apply(_seq([_ev("u", "a", EventType.IMPRESSION), _ev("u", "a", EventType.IMPRESSION)]))
    assert n == 2
    assert b.counts(["a"]) == [0]
    assert b.impressions["a"] == 2
    assert b.popularity_log(["a"], T0) == [0.0]
    assert b.user("u") is None  # being shown something is not engaging with it
    assert b.trending_top(5) == []


@pytest.mark.parametrize(
    "kind", [EventType.VIEW, EventType.LIKE, EventType.COMPLETE, EventType.SHARE]
)
def test_positive_events_raise_popularity_and_feed_taste(kind: EventType) -> None:
    b = _behavior()
    b.apply(_seq([_ev("u", "a", kind)]))
    assert b.popularity_log(["a", "other"], T0)[0] > 0.0
    assert b.popularity_log(["a", "other"], T0)[1] == 0.0
    assert b.counts(["a"]) == [1]
    user = b.user("u")
    assert user is not None
    assert [i for i, _, _ in user.positives] == ["a"]
    assert user.negatives == {}
    assert b.trending_top(5) == ["a"]


@pytest.mark.parametrize("kind", [EventType.SKIP, EventType.DISLIKE])
def test_negative_events_go_to_negatives_not_popularity(kind: EventType) -> None:
    b = _behavior()
    b.apply(_seq([_ev("u", "a", kind), _ev("u", "a", kind)]))
    assert b.popularity_log(["a"], T0) == [0.0]
    assert b.trending_top(5) == []
    assert b.counts(["a"]) == [2]  # still evidence that people saw it
    user = b.user("u")
    assert user is not None
    assert list(user.positives) == []
    assert user.negatives["a"] < 0


def test_stronger_engagement_makes_an_item_more_popular() -> None:
    b = _behavior()
    b.apply(_seq([_ev("u1", "liked", EventType.LIKE), _ev("u1", "viewed", EventType.VIEW)]))
    liked, viewed = b.popularity_log(["liked", "viewed"], T0)
    assert liked > viewed > 0


@pytest.mark.parametrize(
    ("kind", "consumed"),
    [
        (EventType.VIEW, True),
        (EventType.LIKE, True),
        (EventType.DISLIKE, True),
        (EventType.COMPLETE, True),
        (EventType.SHARE, True),
        (EventType.SKIP, False),
        (EventType.IMPRESSION, False),
    ],
)
def test_consumed_items(kind: EventType, consumed: bool) -> None:
    b = _behavior()
    b.apply(_seq([_ev("u", "seen-before", EventType.VIEW), _ev("u", "a", kind)]))
    user = b.user("u")
    assert user is not None
    assert ("a" in user.consumed) is consumed


def test_trending_by_context_comes_first() -> None:
    b = _behavior()
    b.apply(_seq([
        *[_ev(f"u{i}", "global_hit", EventType.SHARE) for i in range(5)],
        _ev("v", "home_pick", EventType.VIEW, context={"surface": "home"}),
        _ev("w", "tv_pick", EventType.VIEW, context={"device": "tv"}),
    ]))
    assert b.trending_top(3, {"surface": "home"})[0] == "home_pick"
    assert b.trending_top(3, {"device": "tv"})[0] == "tv_pick"
    assert b.trending_top(3)[0] == "global_hit"
    assert b.trending_top(3, {"surface": "search"})[0] == "global_hit"  # unseen context value
    home = b.trending_top(3, {"surface": "home"})
    assert len(home) == len(set(home))
    assert "global_hit" in home  # overall trending still follows


def test_trending_prefers_recent_engagement() -> None:
    b = _behavior()
    b.apply(_seq([
        *[_ev(f"u{i}", "last_month", EventType.LIKE, ts=T0 - 30 * DAY) for i in range(10)],
        _ev("x", "today", EventType.VIEW, ts=T0),
    ]))
    assert b.trending_top(2)[0] == "today"
    assert b.latest_ts == T0


def test_co_engagement_between_consecutive_positives() -> None:
    b = _behavior()
    b.apply(_seq([
        _ev("u1", "a", EventType.LIKE),
        _ev("u1", "b", EventType.VIEW),
        _ev("u1", "x", EventType.SKIP),  # negatives do not pair
        _ev("u2", "a", EventType.LIKE),
        _ev("u2", "b", EventType.COMPLETE),
        _ev("u2", "c", EventType.LIKE),
        _ev("u3", "z", EventType.LIKE),  # another user's item does not pair with u2's
    ]))
    assert b.co_engagement("a", 5)[0] == ("b", 2)
    assert dict(b.co_engagement("c", 5)) == {"a": 1, "b": 1}
    assert b.co_engagement("x", 5) == []
    assert "z" not in dict(b.co_engagement("c", 5))
    assert b.co_engagement("z", 5) == []


def test_repeat_engagement_with_one_item_does_not_pair_it_with_itself() -> None:
    b = _behavior()
    b.apply(_seq([_ev("u", "a", EventType.VIEW), _ev("u", "a", EventType.LIKE)]))
    assert b.co_engagement("a", 5) == []


def _user_stream() -> list[tuple[int, Event]]:
    return _seq([
        _ev("u", "a", EventType.LIKE),  # seq 1  (the model covers seq <= 2)
        _ev("u", "b", EventType.LIKE),  # seq 2
        _ev("u", "c", EventType.LIKE),  # seq 3
        _ev("u", "d", EventType.LIKE),  # seq 4
    ])


def test_reset_and_add_cooc_recount_only_events_after_the_model() -> None:
    b = _behavior()
    rows = _user_stream()
    b.apply(rows)
    assert dict(b.co_engagement("a", 5)) == {"b": 1, "c": 1, "d": 1}
    b.reset_cooc(2)
    assert b.co_engagement("c", 5) == []
    b.add_cooc(rows)
    assert b.co_engagement("c", 5) == [("d", 1)]
    assert b.co_engagement("d", 5) == [("c", 1)]
    assert b.co_engagement("a", 5) == []
    assert b.co_engagement("b", 5) == []


def test_live_apply_after_reset_ignores_events_the_model_covers() -> None:
    b = _behavior()
    b.reset_cooc(2)
    b.apply(_user_stream()[:2])
    assert b.co_engagement("a", 5) == []
    assert b.last_seq == 2


def test_live_and_replayed_co_engagement_agree() -> None:
    rows = _user_stream()
    live = _behavior()  # had the model (covering seq <= 2) loaded before events 3 and 4
    live.reset_cooc(2)
    live.apply(rows)
    replayed = _behavior()  # restarted afterwards: replays the events, then loads the model
    replayed.apply(rows)
    replayed.reset_cooc(2)
    replayed.add_cooc(rows)
    assert live.cooc == replayed.cooc


# --- audience -------------------------------------------------------------------------------
def test_audience_counts_distinct_users_with_a_positive_event() -> None:
    b = _behavior()
    b.apply(_seq([
        _ev("u1", "a", EventType.VIEW), _ev("u1", "a", EventType.LIKE),  # one user, twice
        _ev("u2", "a", EventType.COMPLETE),
        _ev("u3", "a", EventType.IMPRESSION),  # shown is not engaged
        _ev("u4", "a", EventType.SKIP), _ev("u5", "a", EventType.DISLIKE),  # nor is refusing
        _ev("u1", "b", EventType.SHARE),
    ]))
    assert (b.audience["a"], b.audience["b"], b.audience["c"]) == (2, 1, 0)
    assert b.within_audience(["a", "b", "c"], 1) == ["b", "c"]
    assert b.within_audience(["a", "b", "c"], 0) == ["c"]


def test_audience_by_row_follows_engagement_and_a_rebuild_after_erasure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from medley.recs import behavior

    b = _behavior()
    rows = {"a": 0, "b": 1, "c": 2}
    b.apply(_seq([_ev("u1", "a", EventType.LIKE), _ev("u2", "a", EventType.LIKE)]))
    assert b.audience_by_row(rows, 3).tolist() == [2, 0, 0]
    b.apply(_seq([_ev("u1", "c", EventType.LIKE)], start=3))
    # Requests read the last build (rebuilding costs ~13 ms at 50k engaged items); the sync
    # thread refreshes it, at most every TOP_REFRESH_S while engagement arrives.
    assert b.audience_by_row(rows, 3).tolist() == [2, 0, 0]
    assert b.audience_by_row(rows, 3, refresh=True).tolist() == [2, 0, 0]  # just built
    monkeypatch.setattr(behavior, "TOP_REFRESH_S", 0.0)
    assert b.audience_by_row(rows, 3, refresh=True).tolist() == [2, 0, 1]
    assert b.audience_by_row(rows, 3).tolist() == [2, 0, 1]
    assert b.audience_by_row({**rows, "d": 3}, 4).tolist() == [2, 0, 1, 0]  # catalog grew

    rebuilt = b.empty()  # u2 erased: replay what is left
    rebuilt.apply(_seq([_ev("u1", "a", EventType.LIKE), _ev("u1", "c", EventType.LIKE)]))
    b.replace(rebuilt)
    assert b.audience["a"] == 1 and b.audience_by_row(rows, 3).tolist() == [1, 0, 1]
