"""The answer cache's rules: an entry serves only under the stamp it was stored with, within its
time-to-live, and an erasure leaves nothing of the user behind."""

from __future__ import annotations

import pytest

from medley.recs.answers import Answer, Scored
from medley.recs.cache import AnswerCache, QueryVectorCache


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def answer(*ids: str, fallback: bool = False) -> Answer:
    return Answer([Scored(i, 1.0, ["why"]) for i in ids], fallback=fallback)


def test_a_hit_returns_the_same_items_under_a_fresh_recommendation_id() -> None:
    cache = AnswerCache(10, 30.0, Clock())
    stored = answer("a", "b")
    cache.put(("for-you", "u1", 10), (1, 3), stored)
    got = cache.get(("for-you", "u1", 10), (1, 3))
    assert got is not None and got.items == stored.items
    assert got.recommendation_id != stored.recommendation_id  # events credit each serving
    assert cache.stats()["hits"] == 1 and cache.stats()["hit_rate"] == 1.0


@pytest.mark.parametrize(("stamp", "advance_s", "hit"), [
    ((1, 3), 0.0, True),
    ((1, 3), 29.9, True),
    ((1, 3), 30.0, False),  # past its time-to-live: others' events may have moved popularity
    ((2, 3), 0.0, False),  # the catalog, fusion, model or editorial settings changed
    ((1, 4), 0.0, False),  # the user's own events changed
])
def test_an_entry_serves_only_under_its_stamp_and_within_its_lifetime(
        stamp: tuple[int, int], advance_s: float, hit: bool) -> None:
    clock = Clock()
    cache = AnswerCache(10, 30.0, clock)
    cache.put(("for-you", "u1"), (1, 3), answer("a"))
    clock.t += advance_s
    assert (cache.get(("for-you", "u1"), stamp) is not None) is hit
    if not hit:  # a stale entry is dropped, not kept beside the fresh one
        assert cache.stats()["entries"] == 0


def test_the_least_recently_used_entry_goes_first_when_full() -> None:
    cache = AnswerCache(2, 30.0, Clock())
    cache.put(("s", "a"), 0, answer("x"))
    cache.put(("s", "b"), 0, answer("y"))
    assert cache.get(("s", "a"), 0) is not None  # "a" is now the most recent
    cache.put(("s", "c"), 0, answer("z"))
    assert cache.get(("s", "b"), 0) is None
    assert cache.get(("s", "a"), 0) is not None and cache.get(("s", "c"), 0) is not None


def test_fallback_answers_are_not_kept_and_a_zero_size_or_lifetime_keeps_nothing() -> None:
    cache = AnswerCache(10, 30.0, Clock())
    cache.put(("s", "u"), 0, answer("x", fallback=True))  # an outage's answer: retry next time
    assert cache.get(("s", "u"), 0) is None
    for off in (AnswerCache(0, 30.0, Clock()), AnswerCache(10, 0.0, Clock())):
        off.put(("s", "u"), 0, answer("x"))
        assert off.get(("s", "u"), 0) is None


def test_forgetting_a_user_drops_every_surface_of_theirs_and_nothing_else() -> None:
    cache = AnswerCache(10, 30.0, Clock())
    for surface in ("recommendations", "new-items"):
        cache.put((surface, "gone", 10), 0, answer("a"))
        cache.put((surface, "stays", 10), 0, answer("a"))
    assert cache.count(lambda u: u == "gone") == 2
    assert cache.forget(lambda u: u == "gone") == 2
    assert cache.count(lambda u: u == "gone") == 0
    assert cache.get(("new-items", "stays", 10), 0) is not None


def test_a_repeated_query_is_embedded_once() -> None:
    calls: list[str] = []
    cache = QueryVectorCache(2)

    def embed(text: str) -> list[float]:
        calls.append(text)
        return [float(len(text))]

    for text in ("space", "space", "cooking", "space"):
        assert cache.get_or_embed("text", text, lambda t=text: embed(t)) == [float(len(text))]
    assert calls == ["space", "cooking"]
    assert cache.get_or_embed("clip", "space", lambda: embed("space")) == [5.0]  # per family
    assert calls == ["space", "cooking", "space"]
