"""The saved item table (`medley.recs.table_file`): a restarted serving process maps it and
serves the same catalog as one that read every item from the database, with the items that
changed, arrived or were deleted meanwhile as the database has them now; a damaged or foreign
file costs a full load, never a failed start."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, update

from medley.config import Settings
from medley.db import Database
from medley.db.models import Item, ModalityRecord
from medley.domain import Modality
from medley.recs import table_file
from medley.recs.behavior import Behavior
from medley.recs.engine import Recommender
from medley.recs.items import ItemInfo, ItemTable
from medley.recs.sync import RecSync
from tests.conftest import database_with_items

DIMS = {Modality.TEXT: 4, Modality.IMAGE: 3}


def _vector(k: int, m: Modality) -> np.ndarray:
    return np.random.default_rng(k * 7 + len(m.value)).normal(size=DIMS[m]).astype(np.float32)


def _give_vectors(db: Database, ids: list[str], version: int = 0) -> None:
    with db.session() as s:
        for item_id in ids:
            k = int(item_id.split("-")[1]) + 100 * version
            for m in DIMS:
                s.merge(ModalityRecord(item_id=item_id, modality=m.value, status="ready",
                                       vector=_vector(k, m).tobytes()))
        # and written to the index (the tests' searches read the table itself), as a served
        # catalog's items are: neighbour lists are searched only for those
        s.execute(update(Item).where(Item.id.in_(ids)).values(indexed=True))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with database_with_items(f"sqlite:///{tmp_path / 'medley.db'}", 6,
                             tags=lambda k: [f"t{k % 2}"]) as d:
        _give_vectors(d, [f"item-{k}" for k in range(6)])
        yield d


def serving(db: Database, data_dir: Path, **overrides: Any) -> RecSync:
    s = Settings(data_dir=data_dir, **overrides)
    rec = Recommender(s, ItemTable(DIMS), Behavior(30 * 86400.0, 86400.0), lambda *_: [])
    sync = RecSync(s, db, rec)
    sync.catch_up()
    if sync._table_writer is not None:
        sync._table_writer.join()
    return sync


def catalog(t: ItemTable) -> dict[str, Any]:
    """What answers read of the table, per live item."""
    live = [i for i in t.ids if t.get(i) is not None]
    rows = t.rows(live)
    return {"items": {i: (t.get(i), t.units[r].tolist(), t.present[r].tolist())
                      for i, r in zip(live, rows.tolist(), strict=True)},
            "tags": {tag: sorted(t.ids[r] for r in rs if t.alive[r])
                     for tag, rs in t.tag_rows.items()},
            "means": t.means().tolist()}


def test_a_restart_maps_the_saved_table_and_catches_up_with_the_database(
        db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "shared" / "items.table"
    first = serving(db, tmp_path / "a", items_snapshot_path=path)
    assert path.exists()

    time.sleep(0.01)  # later updated_at stamps than the save's
    with db.session() as s:  # meanwhile: one retitled, one re-embedded, one deleted, one new
        s.execute(update(Item).where(Item.id == "item-1").values(title="Renamed"))
        s.execute(delete(ModalityRecord).where(ModalityRecord.item_id == "item-2"))
        s.execute(delete(Item).where(Item.id == "item-2"))
        s.add(Item(id="item-9", title="Item 9", description="", tags=["t1"], attributes={},
                   status="ready"))
    _give_vectors(db, ["item-3"], version=1)
    _give_vectors(db, ["item-9"])
    with db.session() as s:
        s.execute(update(Item).where(Item.id == "item-3").values(title="Item 3"))  # touched

    caplog.set_level(logging.INFO, logger="medley.recs.sync")
    restarted = serving(db, tmp_path / "b", items_snapshot_path=path)
    assert "6 items, 3 reloaded from the database" in caplog.text
    full = serving(db, tmp_path / "c", behavior_snapshot_interval_s=0)  # read it all
    assert catalog(restarted.table) == catalog(full.table)
    assert restarted.table.get("item-1").title == "Renamed"
    assert restarted.table.get("item-2") is None and restarted.table.get("item-9") is not None
    assert first.table.get("item-2") is not None  # the first process still had it
    # The mapped file is never written through: a change lands in this process only.
    restarted.table.upsert("item-0", ItemInfo("Local", (), None, None, 0.0),
                           {Modality.TEXT: np.ones(4, dtype=np.float32)})
    again = serving(db, tmp_path / "d", items_snapshot_path=path)
    assert again.table.get("item-0").title == "Item 0"


def test_items_added_after_a_restore_fill_spare_rows(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "items.table"
    serving(db, tmp_path / "a", items_snapshot_path=path)
    restarted = serving(db, tmp_path / "b", items_snapshot_path=path)
    units = restarted.table.units
    assert isinstance(units, np.memmap) and len(units) > len(restarted.table.ids)
    restarted.table.upsert("new", ItemInfo("New", (), None, None, 0.0),
                           {Modality.IMAGE: np.ones(3, dtype=np.float32)})
    assert restarted.table.units is units  # no private copy of every row


@pytest.mark.parametrize("damage", ["pointer", "meta", "array", "layout"])
def test_a_damaged_or_foreign_save_is_ignored_and_start_up_reads_the_database(
        db: Database, tmp_path: Path, damage: str) -> None:
    path = tmp_path / "items.table"
    serving(db, tmp_path / "a", items_snapshot_path=path)
    folder = path.parent / __import__("json").loads(path.read_text())["folder"]
    if damage == "pointer":
        path.write_text("{not json")
    elif damage == "meta":
        (folder / "meta.json").write_text('{"format": 99}')
    elif damage == "array":
        (folder / "units.npy").write_bytes(b"garbage")
    assert table_file.load(path, ItemTable(DIMS if damage != "layout"
                                           else {Modality.TEXT: 5})) is None
    if damage != "layout":
        started = serving(db, tmp_path / "b", items_snapshot_path=path)
        assert catalog(started.table) == catalog(serving(db, tmp_path / "c").table)


def test_only_the_owner_saves_and_an_empty_path_turns_it_off(db: Database,
                                                              tmp_path: Path) -> None:
    off = serving(db, tmp_path / "a", items_snapshot_path="")
    assert off.settings.items_snapshot_file is None and not list(tmp_path.glob("a/items*"))
    s = Settings(data_dir=tmp_path / "b")
    peer = RecSync(s, db, Recommender(s, ItemTable(DIMS), Behavior(1.0, 1.0), lambda *_: []))
    peer.saves_snapshots = False
    peer.catch_up()
    assert not (tmp_path / "b" / "items.table").exists()


def test_a_save_that_fails_leaves_the_loop_serving(db: Database, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    sync = serving(db, tmp_path / "a", items_snapshot_path=tmp_path / "items.table")
    sync.table.remove("item-0")  # a change to save

    def broken(*_: object) -> None:
        raise MemoryError("no room for the copy")

    monkeypatch.setattr(table_file, "capture", broken)
    assert not sync.save_items()
    assert "could not be copied" in caplog.text
    with db.session() as s:
        s.execute(update(Item).where(Item.id == "item-1").values(title="Still served"))
    sync._table_saved_at = 0.0  # the interval is up: the tick tries to save, then goes on
    sync._last_slow_tick = 0.0
    sync.tick()
    assert sync.table.get("item-1").title == "Still served"


def test_a_restore_that_fails_half_way_reads_everything_on_the_next_try(
        db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "items.table"
    serving(db, tmp_path / "a", items_snapshot_path=path)
    time.sleep(0.01)
    with db.session() as s:  # two items changed since the save
        s.execute(update(Item).where(Item.id.in_(["item-1", "item-4"]))
                  .values(title="Changed"))
    s_ = Settings(data_dir=tmp_path / "b", items_snapshot_path=path)
    sync = RecSync(s_, db, Recommender(s_.ranking, ItemTable(DIMS), Behavior(1.0, 1.0),
                                       lambda *_: []))
    real = sync.load_items
    calls = {"n": 0}

    def flaky(ids: object = None) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("database went away")
        return real(ids)  # type: ignore[arg-type]

    monkeypatch.setattr(sync, "load_items", flaky)
    # No overlap re-read: only a watermark reset can bring the changed items back.
    monkeypatch.setattr("medley.dates.WATERMARK_OVERLAP_S", 0.0)
    with pytest.raises(OSError):
        sync.catch_up()
    sync.catch_up()  # as the loop retries
    assert sync.table.get("item-1").title == "Changed"
    assert sync.table.get("item-4").title == "Changed"


def test_a_restart_takes_the_saved_neighbour_lists_of_unchanged_items(
        db: Database, tmp_path: Path) -> None:
    """The lists `similar` reads are saved beside the table; a restart takes those of the items
    that did not change since and searches the index only for the rest (the sync's ticks)."""
    from medley.recs import neighbours

    path = tmp_path / "items.table"
    searched: list[str] = []

    def start(data_dir: Path) -> RecSync:
        s = Settings(data_dir=data_dir, items_snapshot_path=path)
        table = ItemTable(DIMS)

        def search(using: str, v: np.ndarray, k: int, w: Any) -> list[tuple[str, float]]:
            searched.append(using)
            return table.nearest(using, v, k, w)

        sync = RecSync(s, db, Recommender(s.ranking, table, Behavior(1.0, 1.0), search))
        sync.catch_up()
        return sync

    first = start(tmp_path / "a")
    assert neighbours.fill(first.rec.neighbours, first.table, first.rec.search, 100) == 6
    assert first.save_neighbours()
    assert first._lists_writer is not None
    first._lists_writer.join()
    answer = [s.item_id for s in first.rec.similar("item-0", 3, None).items]
    time.sleep(0.01)
    with db.session() as s:  # changed meanwhile: its list is searched again
        s.execute(update(Item).where(Item.id == "item-4").values(title="Changed"))

    searched.clear()
    again = start(tmp_path / "b")
    assert again.rec.neighbours.get(again.table.row["item-4"]) is None
    assert [s.item_id for s in again.rec.similar("item-0", 3, None).items] == answer
    assert not searched  # read from the restored list
    assert not again.save_neighbours()  # nothing found since the restore
    assert neighbours.fill(again.rec.neighbours, again.table, again.rec.search, 100) == 1
    assert again.save_neighbours()  # the re-searched list: the next start need not search it


def test_lists_that_cannot_be_restored_never_fail_a_start(
        db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medley.recs import neighbours

    def broken(*_: object) -> int:
        raise ValueError("could not broadcast input array from shape (100,) into shape (50,)")

    monkeypatch.setattr(neighbours, "load", broken)
    sync = serving(db, tmp_path / "a", items_snapshot_path=tmp_path / "items.table")
    assert sync.ready.is_set() and len(sync.table) == 6
    assert len(sync.rec.neighbours) == 0  # the ticks search them instead


def test_lists_being_filled_are_saved_once_per_interval(db: Database, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Lists change on every tick while they are filled; the file (95 MB at 100k items) is
    written at most once per snapshot interval, whatever the item table does."""
    from medley.recs import neighbours

    sync = serving(db, tmp_path / "a", items_snapshot_path=tmp_path / "items.table")
    table = sync.table
    sync.rec.search = lambda u, v, k, w: table.nearest(u, v, k, w)
    writes: list[Path] = []
    monkeypatch.setattr(neighbours, "write", lambda captured, path: writes.append(path))
    for tick in range(3):
        sync.rec.neighbours.changed([tick])  # something new to save on every tick
        sync._last_slow_tick = 0.0
        sync.tick()
        if sync._lists_writer is not None:
            sync._lists_writer.join()
        if tick == 0:
            assert not writes  # the interval (300 s) has not passed since the start
            sync._lists_saved_at = 0.0  # now it has
    assert writes == [tmp_path / "neighbours.npz"]  # once, not on every later tick
