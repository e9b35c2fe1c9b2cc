"""Nearline per-user candidates (`medley.recs.user_lists`): a for-you request without filters of
its own reads the user's entry instead of searching; a like, a new model or a fusion switch
makes the next request search again; a filtered request searches and keeps nothing; an erased
user's entry goes; the background fill finds entries for users with new events first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index.base import IndexUnavailable, Where
from medley.recs import collab, user_lists
from medley.recs.events import EventType
from medley.recs.user_lists import UserLists
from tests.unit.test_engine import World


class Counted(World):
    """The engine's world, with the index searches counted."""

    def __init__(self, tmp: Path, **overrides: object) -> None:
        super().__init__(tmp, **overrides)
        self.rec.prior_budget = 0  # as served: only the request's own searches are counted
        self.searches = 0
        inner = self.rec.search

        def search(*args: Any) -> Any:
            self.searches += 1
            return inner(*args)

        self.rec.search = search

    def for_you(self, user: str, where: Where | None = None) -> list[str]:
        return [s.item_id for s in self.rec.for_user(user, 10, where, None).items]


def liked_topic(w: Counted, user: str, t: int) -> None:
    for k in range(3):
        w.act(user, f"old-{t}-{k}")


def test_a_second_request_reads_the_users_candidates_instead_of_searching(
        tmp_path: Path) -> None:
    w = Counted(tmp_path)
    liked_topic(w, "ann", 0)
    first = w.for_you("ann")
    searched = w.searches
    assert searched >= 1  # the content search (and the new-item search, when there are any)
    assert w.for_you("ann") == first
    assert w.searches - searched < searched  # the content search was read, not run again
    assert w.rec.user_lists.stats()["hits"] == 1


def test_the_answer_is_the_one_found_without_them(tmp_path: Path) -> None:
    kept, plain = Counted(tmp_path / "a"), Counted(tmp_path / "b", user_lists_size=0)
    for w in (kept, plain):
        liked_topic(w, "ann", 1)
        w.act("bob", "old-1-5")
    for _ in range(2):
        assert kept.for_you("ann") == plain.for_you("ann")
    assert kept.rec.user_lists.stats()["hits"] == 1
    assert plain.rec.user_lists.stats()["users"] == 0


def test_a_like_reshapes_the_next_answer(tmp_path: Path) -> None:
    w = Counted(tmp_path)
    liked_topic(w, "ann", 0)
    before = w.for_you("ann")
    assert all(i.startswith("old-0") for i in before[:5])
    for k in range(3, 10):  # a change of taste
        w.act("ann", f"old-1-{k}", n=3)
    after = w.for_you("ann")
    assert sum(i.startswith("old-1") for i in after[:3]) >= 2
    assert w.rec.user_lists.stats()["hits"] == 0  # the like made the entry stale


def test_a_new_model_finds_only_the_model_part_again(tmp_path: Path) -> None:
    kept, plain = Counted(tmp_path / "a"), Counted(tmp_path / "b", user_lists_size=0)
    model = collab.train([(f"u{k % 3}", f"old-{k % 2}-{k}", 1.0) for k in range(10)]
                         + [("ann", "old-1-3", 1.0)], factors=2, iterations=2,
                         regularization=0.1)
    assert model is not None
    for w in (kept, plain):
        liked_topic(w, "ann", 0)
    kept.for_you("ann")
    for w in (kept, plain):
        w.rec.use_model(model)
    searched = kept.searches
    assert kept.for_you("ann") == plain.for_you("ann")  # its answer, the new model's
    assert kept.searches - searched <= 1  # at most the new-item search: content was read
    entry = kept.rec.user_lists.get("ann", kept.rec.personal.stamp("ann"), kept.table.version)
    assert entry is not None and entry.user_vector is not None and len(entry.collab)


def test_a_filtered_request_searches_and_keeps_nothing(tmp_path: Path) -> None:
    w = Counted(tmp_path)
    liked_topic(w, "ann", 0)
    only = Where(include_tags=frozenset({"topic-1"}))
    got = w.for_you("ann", only)
    assert got and all(i.startswith("old-1") for i in got)
    assert w.rec.user_lists.stats()["users"] == 0
    assert all(i.startswith("old-1") for i in w.for_you("ann", only))


def test_an_item_added_later_joins_once_the_entry_ages_out(tmp_path: Path) -> None:
    w = Counted(tmp_path, new_item_max_age_days=0.0)  # nothing counts as new here
    clock = [0.0]
    w.rec.user_lists = UserLists(100, 60.0, clock=lambda: clock[0])
    liked_topic(w, "ann", 0)
    w.for_you("ann")
    w.add("back-catalog", 0, age_days=3000)  # imported now, released long ago
    assert "back-catalog" not in w.for_you("ann")  # the entry found before it serves
    clock[0] = 61.0
    assert "back-catalog" in w.for_you("ann")


def test_an_erased_user_leaves_nothing_behind(tmp_path: Path) -> None:
    w = Counted(tmp_path)
    for user in ("ann", "bob"):
        liked_topic(w, user, 0)
        w.for_you(user)
    assert w.rec.user_lists.forget(lambda u: u == "ann") == 1
    stamp = w.rec.personal.stamp("bob")
    assert w.rec.user_lists.get("ann", w.rec.personal.stamp("ann"), w.table.version) is None
    assert w.rec.user_lists.get("bob", stamp, w.table.version) is not None


def test_the_fill_finds_users_with_new_events_first_then_walks_the_rest(tmp_path: Path) -> None:
    w = Counted(tmp_path)
    for user in ("ann", "bob", "cat"):
        liked_topic(w, user, 0)
    lists = w.rec.user_lists
    lists.changed(["bob"])
    order: list[str] = []

    def warm(u: str) -> bool:
        order.append(u)
        return w.rec.personal.warm(u)

    known = lambda: list(w.behavior.users)  # noqa: E731
    key = w.rec.personal.walk_key()
    assert user_lists.fill(lists, known, warm, 1.0, key, batch=2) == 3
    assert order[0] == "bob" and sorted(order) == ["ann", "bob", "bob", "cat"]
    searched = w.searches
    w.for_you("cat")
    assert w.searches - searched <= 1  # at most the new-item search: content was read
    order.clear()
    assert user_lists.fill(lists, known, warm, 1.0, key) == 0  # nothing changed: no walk
    assert order == []


def test_one_user_who_cannot_be_found_does_not_stop_the_fill(tmp_path: Path) -> None:
    lists = UserLists(10, 60.0)
    lists.changed(["bad", "good"])
    found: list[str] = []

    def warm(u: str) -> bool:
        if u == "bad":
            raise ValueError("no vector")
        found.append(u)
        return True

    assert user_lists.fill(lists, lambda: [], warm, 1.0, "k") == 1
    assert found == ["good"]


def test_an_index_outage_keeps_the_users_for_later(tmp_path: Path) -> None:
    lists = UserLists(10, 60.0)
    lists.changed(["ann", "bob"])

    def warm(u: str) -> bool:
        raise IndexUnavailable("down")

    with pytest.raises(IndexUnavailable):
        user_lists.fill(lists, lambda: [], warm, 1.0, "k")
    assert lists.due(lambda: [], 10, "k") == ["ann", "bob"]


def test_the_least_recently_used_user_leaves_first() -> None:
    lists = UserLists(2, 60.0)
    entry = user_lists.UserCandidates(1, 0, 0.0, user_lists.EMPTY, user_lists.EMPTY,
                                      user_lists.EMPTY, np.zeros(2))
    for u in ("ann", "bob"):
        lists.put(u, entry)
    assert lists.get("ann", 1, 0) is not None  # ann used last
    lists.put("cat", entry)
    assert lists.get("bob", 1, 0) is None and lists.get("ann", 1, 0) is not None


def test_views_are_counted_as_events(tmp_path: Path) -> None:
    w = Counted(tmp_path)
    liked_topic(w, "ann", 0)
    w.for_you("ann")
    w.act("ann", "old-0-7", EventType.VIEW)  # consumed: must leave the candidates
    assert "old-0-7" not in w.for_you("ann")
    assert w.rec.user_lists.stats()["hits"] == 0


def test_a_new_item_joins_the_new_source_at_once_without_a_search(tmp_path: Path) -> None:
    kept, plain = Counted(tmp_path / "a"), Counted(tmp_path / "b", user_lists_size=0)
    for w in (kept, plain):
        liked_topic(w, "ann", 0)
        w.add("new-0-a", 0, age_days=1)
        w.for_you("ann")
        w.add("new-0-b", 0, age_days=0)  # indexed after ann's entry was found
    searched = kept.searches
    got = kept.rec.for_user("ann", 10, None, None).items
    assert kept.searches == searched  # every source read from the entry
    assert {"new-0-a", "new-0-b"} <= {s.item_id for s in got}
    assert "new" in next(s for s in got if s.item_id == "new-0-b").reasons
    assert [s.item_id for s in got] == plain.for_you("ann")  # as the searches find it


def test_a_scheduled_release_joins_the_new_source_when_it_comes_out(tmp_path: Path) -> None:
    w = Counted(tmp_path)
    liked_topic(w, "ann", 0)
    w.add("premiere", 0, age_days=0, published_days=-1)  # out tomorrow
    w.for_you("ann")

    def new_source() -> list[str]:
        entry = w.rec.user_lists.peek("ann", w.rec.personal.stamp("ann"), w.table.version)
        assert entry is not None  # nothing but the clock moved: the entry still holds
        taste, consumed = w.rec.user_taste("ann", None)
        flt = w.rec.filters(None, None, consumed)
        return w.rec.personal.young(entry, taste, w.rec.personal.window(flt, w.clock),
                                    w.table.mask(flt, need_vector=True), 10)

    assert "premiere" not in new_source()
    w.clock += 2 * 86400
    assert "premiere" in new_source()


def new_items(w: Counted, user: str, cap: int | None = None) -> list[str]:
    return [s.item_id for s in w.rec.for_user(user, 10, None, None, only_new=True,
                                              max_audience=cap).items]


def test_new_items_read_a_held_entry_and_search_when_the_cap_leaves_too_few(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medley.recs import behavior

    monkeypatch.setattr(behavior, "TOP_REFRESH_S", 0.0)  # the audience mask, rebuilt at once
    kept, plain = (Counted(tmp_path / "a", candidates_per_source=4),
                   Counted(tmp_path / "b", candidates_per_source=4, user_lists_size=0))
    for w in (kept, plain):
        liked_topic(w, "ann", 0)
        for k in range(7):
            w.add(f"new-{k}", 0, age_days=1)
        w.for_you("ann")  # ann's entry keeps her four best new matches
    searched = kept.searches
    assert new_items(kept, "ann") == new_items(plain, "ann")
    assert kept.searches == searched  # read from the entry
    entry = kept.rec.personal.held("ann", kept.rec.personal.stamp("ann"))
    assert entry is not None and entry.young is not None and len(entry.young) == 4
    for w in (kept, plain):  # three of those four find an audience
        for r in entry.young[:3].tolist():
            for u in range(3):
                w.act(f"fan-{u}", kept.table.ids[r])
        w.behavior.audience_by_row(w.table.row, len(w.table.ids), refresh=True)  # the sync's
    got = new_items(kept, "ann", cap=0)
    assert kept.searches > searched  # one of four passed the cap: searched under it
    assert got == new_items(plain, "ann", cap=0) and len(got) == 4  # 7 new, 3 capped
