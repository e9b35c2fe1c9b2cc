"""Nearline neighbour lists: `similar` reads each item's list instead of searching the index,
answers as the search did, sees an item added later, honours filters, and drops lists found
under another fusion view; the collaborative model's lists match its per-request scan."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from index.base import Where
from medley.config import Settings
from medley.domain import Modality
from medley.recs import neighbours
from medley.recs.behavior import Behavior
from medley.recs.collab import CollabModel
from medley.recs.engine import Recommender
from medley.recs.items import FusionView, ItemInfo, ItemTable
from medley.recs.neighbours import NeighbourLists

DIM = 8
NOW = 1.8e9


def catalog(n: int, seed: int = 0, order: list[int] | None = None) -> ItemTable:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, DIM)).astype(np.float32)
    table = ItemTable({Modality.TEXT: DIM})
    for k in order if order is not None else range(n):
        table.upsert(f"i{k}", ItemInfo(f"i{k}", (f"t{k % 3}",), 0, None, NOW), vecs[k])
    return table


class Counting:
    """The table's exact search, counting calls (the index's place)."""

    def __init__(self, table: ItemTable) -> None:
        self.table, self.calls = table, 0

    def __call__(self, using: str, v: np.ndarray, k: int, w: Where | None
                 ) -> list[tuple[str, float]]:
        self.calls += 1
        return self.table.nearest(using, v, k, w)


def engine(tmp: Path, table: ItemTable, k: int = 10) -> tuple[Recommender, Counting]:
    search = Counting(table)
    rec = Recommender(Settings(data_dir=tmp, candidates_per_source=k).ranking, table,
                      Behavior(30 * 86400.0, 86400.0), search, clock=lambda: NOW)
    return rec, search


def ids(answer: object) -> list[str]:
    return [s.item_id for s in answer.items]  # type: ignore[attr-defined]


def test_similar_reads_the_list_and_answers_as_the_search_did(tmp_path: Path) -> None:
    table = catalog(60)
    rec, search = engine(tmp_path, table)
    live = {f"i{k}": ids(rec.similar(f"i{k}", 5, None)) for k in range(0, 60, 7)}
    assert search.calls == len(live)
    assert neighbours.fill(rec.neighbours, table, search, 1000) == 60
    search.calls = 0
    assert {i: ids(rec.similar(i, 5, None)) for i in live} == live
    assert search.calls == 0  # nothing searched on the request path


def test_an_item_added_later_enters_its_neighbours_lists(tmp_path: Path) -> None:
    table = catalog(40)
    rec, search = engine(tmp_path, table, k=5)
    neighbours.fill(rec.neighbours, table, search, 1000)
    target = table.units[table.row["i3"]].astype(np.float32)
    table.upsert("twin", ItemInfo("twin", (), 0, None, NOW), target + 0.01)
    rec.neighbours.changed([table.row["twin"]])
    assert neighbours.fill(rec.neighbours, table, search, 1) == 1  # the new item goes first
    assert ids(rec.similar("i3", 3, None))[0] == "twin"
    assert ids(rec.similar("twin", 3, None))[0] == "i3"


def test_a_removed_item_leaves_the_answers_at_once(tmp_path: Path) -> None:
    table = catalog(40)
    rec, search = engine(tmp_path, table)
    neighbours.fill(rec.neighbours, table, search, 1000)
    first = ids(rec.similar("i0", 3, None))[0]
    table.remove(first)
    assert first not in ids(rec.similar("i0", 10, None))


def test_a_business_filter_searches_with_the_filter(tmp_path: Path) -> None:
    table = catalog(60)
    rec, search = engine(tmp_path, table, k=5)
    neighbours.fill(rec.neighbours, table, search, 1000)
    search.calls = 0
    got = ids(rec.similar("i0", 5, Where(include_tags=frozenset({"t1"}))))
    assert search.calls == 1 and len(got) == 5  # a list of 5 would pass too few of them
    assert all(table.get(i).tags == ("t1",) for i in got)  # type: ignore[union-attr]


def test_another_fusion_view_drops_the_lists(tmp_path: Path) -> None:
    table = catalog(30)
    rec, search = engine(tmp_path, table)
    neighbours.fill(rec.neighbours, table, search, 1000)
    table.view = FusionView({Modality.TEXT: 1.0}, {}, "fused_b", 2)
    search.calls = 0
    rec.similar("i0", 5, None)
    assert search.calls == 1  # the old lists are not read under the new view
    neighbours.fill(rec.neighbours, table, search, 1000)
    assert len(rec.neighbours) == 30 and rec.neighbours.key == (2, "fused_b")


@pytest.mark.parametrize(("best", "offered", "enters"), [
    ([0.9, 0.8], 0.85, True),   # beats the weakest of a full list
    ([0.9, 0.8], 0.7, False),   # weaker than all of it
    ([0.9], 0.1, True),         # a list with room takes anything
])
def test_an_offer_enters_a_list_only_when_it_beats_the_weakest(
        best: list[float], offered: float, enters: bool) -> None:
    lists = NeighbourLists(k=2)
    lists.put(0, np.arange(1, 1 + len(best), dtype=np.int32), np.array(best, dtype=np.float32))
    lists.put(9, np.array([0], dtype=np.int32), np.array([offered], dtype=np.float32))
    got = lists.get(0)
    assert got is not None
    assert (9 in got.tolist()) is enters
    assert list(lists.scores[0][: len(got)]) == sorted(lists.scores[0][: len(got)], reverse=True)


def test_lists_survive_a_restart_by_item_id(tmp_path: Path) -> None:
    table = catalog(30)
    rec, search = engine(tmp_path, table)
    neighbours.fill(rec.neighbours, table, search, 1000)
    before = {f"i{k}": ids(rec.similar(f"i{k}", 6, None)) for k in range(30)}
    path = tmp_path / "neighbours.npz"
    stamps = {f"i{k}": "v1" for k in range(30)}
    neighbours.write(neighbours.capture(rec.neighbours, table, stamps), path)
    # The same catalog loaded in another order (rows differ), one item gone since the save,
    # one changed (its list is searched again, first).
    again = catalog(30, order=list(reversed(range(30))))
    again.remove("i7")
    rec2, search2 = engine(tmp_path, again)
    rec2.neighbours.changed(range(30))  # a start loads every item: all marked changed
    assert neighbours.load(rec2.neighbours, again, path, {**stamps, "i9": "v2"}) == 28
    assert rec2.neighbours.get(again.row["i9"]) is None
    after = {i: ids(rec2.similar(i, 5, None)) for i in before if i not in ("i7", "i9")}
    assert search2.calls == 0
    assert after == {i: [x for x in v if x != "i7"][:5] for i, v in before.items()
                     if i not in ("i7", "i9")}
    assert neighbours.fill(rec2.neighbours, again, search2, 100) == 1  # i9 alone


@pytest.mark.parametrize("damage", [b"", b"not a numpy file"])
def test_a_damaged_file_restores_nothing(tmp_path: Path, damage: bytes) -> None:
    path = tmp_path / "neighbours.npz"
    path.write_bytes(damage)
    table = catalog(5)
    assert neighbours.load(NeighbourLists(3), table, path, {}) == 0


def test_collab_lists_match_the_per_request_scan() -> None:
    rng = np.random.default_rng(3)
    model = CollabModel([], [f"i{k}" for k in range(300)], np.zeros((0, 8), np.float32),
                        rng.standard_normal((300, 8)).astype(np.float32), 1.0)
    scanned = {f"i{k}": model.similar_items(f"i{k}", 20) for k in range(0, 300, 13)}
    model.find_neighbours(50, block=64)
    for item, want in scanned.items():
        got = model.similar_items(item, 20)
        assert [i for i, _ in got] == [i for i, _ in want]
        assert np.allclose([s for _, s in got], [s for _, s in want], atol=2e-3)  # float16


WHERES: list[Where] = [
    Where(), Where(max_age=12), Where(include_tags=frozenset({"t1", "t2"})),
    Where(exclude_tags=frozenset({"t0"})), Where(exclude_ids=frozenset({"i3", "i4", "nope"})),
    Where(published_from=NOW - 1, published_to=NOW + 1), Where(published_from=NOW + 1),
    Where(created_from=NOW),
]


@pytest.mark.parametrize("where", WHERES)
def test_admits_is_the_mask_at_those_rows(where: Where) -> None:
    table = catalog(20)
    table.remove("i5")
    rows = np.array([-1, 0, 3, 4, 5, 7, 19, 25])
    mask: Callable[[], np.ndarray] = lambda: table.mask(where, need_vector=True)  # noqa: E731
    m = mask()
    want = np.array([0 <= r < len(m) and bool(m[r]) for r in rows])
    assert table.admits(rows, where, need_vector=True).tolist() == want.tolist()


def test_an_item_the_index_cannot_search_for_is_skipped_and_an_outage_waits(
        tmp_path: Path) -> None:
    from index.base import IndexUnavailable

    table = catalog(10)
    rec, search = engine(tmp_path, table)
    bad = table.units[table.row["i2"]].astype(np.float32)

    def flaky(using: str, v: np.ndarray, k: int, w: Where | None) -> list[tuple[str, float]]:
        if np.allclose(v, bad, atol=1e-3):
            raise ValueError("this one item breaks the search")
        return search(using, v, k, w)

    assert neighbours.fill(rec.neighbours, table, flaky, 100) == 9  # the rest go on
    assert rec.neighbours.get(table.row["i2"]) is None

    def down(*_: object) -> list[tuple[str, float]]:
        raise IndexUnavailable("index down")

    rec.neighbours.changed([table.row["i5"], table.row["i6"]])
    with pytest.raises(IndexUnavailable):
        neighbours.fill(rec.neighbours, table, down, 100)
    # Neither is lost: both are searched once the index answers.
    assert rec.neighbours.next_rows(table, 2) == [table.row["i5"], table.row["i6"]]


@pytest.mark.parametrize(("saved_k", "now_k", "taken"), [(10, 5, 30), (5, 10, 0)])
def test_lists_saved_at_another_length_are_cut_or_searched_again(
        tmp_path: Path, saved_k: int, now_k: int, taken: int) -> None:
    """Another MEDLEY_CANDIDATES_PER_SOURCE: longer saved lists are cut (best first), shorter
    ones would hold fewer candidates than wanted and are searched again."""
    table = catalog(30)
    rec, search = engine(tmp_path, table, k=saved_k)
    neighbours.fill(rec.neighbours, table, search, 1000)
    stamps = {i: "v" for i in table.ids}
    path = tmp_path / "neighbours.npz"
    neighbours.write(neighbours.capture(rec.neighbours, table, stamps), path)
    rec2, _ = engine(tmp_path, table, k=now_k)
    assert neighbours.load(rec2.neighbours, table, path, stamps) == taken
    if taken:
        got = rec2.neighbours.get(0)
        assert got is not None and got.tolist() == rec.neighbours.rows[0, :now_k].tolist()


def test_an_arm_asking_for_fewer_candidates_reads_the_best_of_the_list(tmp_path: Path) -> None:
    import copy

    table = catalog(60)
    rec, search = engine(tmp_path, table, k=20)
    neighbours.fill(rec.neighbours, table, search, 1000)
    fewer, _ = engine(tmp_path, table, k=5)  # what the arm would search without the lists
    live = {f"i{k}": ids(fewer.similar(f"i{k}", 5, None)) for k in range(0, 60, 9)}
    arm = copy.copy(rec)  # as `ArmRecommenders` makes an arm: the live lists shared
    arm.s = Settings(data_dir=tmp_path, candidates_per_source=5).ranking
    search.calls = 0
    assert {i: ids(arm.similar(i, 5, None)) for i in live} == live
    assert search.calls == 0


def test_the_backfill_takes_each_row_without_a_list_once_in_order() -> None:
    table = catalog(12)
    lists = NeighbourLists(k=3, capacity=4)  # fewer slots than rows: the rest are unfound
    for r in (0, 2, 3):
        lists.put(r, np.array([1], dtype=np.int32), np.array([0.5], dtype=np.float32))
    got = [lists.next_rows(table, 4) for _ in range(3)]
    assert got == [[1, 4, 5, 6], [7, 8, 9, 10], [11]]
    assert lists.next_rows(table, 4) == []


def test_a_row_the_index_does_not_hold_yet_is_searched_only_once_it_does() -> None:
    table = catalog(6)
    lists = NeighbourLists(k=3, capacity=8)
    lists.not_indexed([1, 4])
    assert lists.next_rows(table, 10) == [0, 2, 3, 5]  # the backfill passes them over
    lists.changed([4])  # its index write landed
    assert lists.next_rows(table, 10) == [4]
    assert lists.get(1) is None  # its requests search the index meanwhile
