"""One record the serving sync cannot read never stops the catalog from updating, and a sync
that keeps failing says so instead of serving a stale catalog as ready."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update

from medley.config import Settings
from medley.db import Database
from medley.db.models import Item
from medley.domain import Modality
from medley.recs.behavior import Behavior
from medley.recs.engine import Recommender
from medley.recs.items import ItemTable
from medley.recs.sync import RecSync
from tests.api.conftest import wait_until
from tests.conftest import database_with_items


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with database_with_items(f"sqlite:///{tmp_path / 'medley.db'}", 6) as d:
        yield d


def sync_of(db: Database, tmp_path: Path, **overrides: Any) -> RecSync:
    s = Settings(data_dir=tmp_path, behavior_snapshot_interval_s=0, **overrides)
    rec = Recommender(s, ItemTable({Modality.TEXT: 4}), Behavior(86400.0, 3600.0),
                      lambda *_: [])
    return RecSync(s, db, rec)


def set_tags(db: Database, item_id: str, tags: Any) -> None:
    # Another writer (an older version, a manual fix) can store what the API would refuse:
    # the JSON column takes any JSON.
    with db.session() as s:
        s.execute(update(Item).where(Item.id == item_id)
                  .values(tags=tags, updated_at=datetime.utcnow()))


def test_an_unreadable_item_is_set_aside_and_the_rest_load(db: Database,
                                                           tmp_path: Path) -> None:
    set_tags(db, "item-2", 5)  # tags that are not a list: the row cannot become an item
    sync = sync_of(db, tmp_path)
    sync.catch_up()
    assert sync.ready.is_set()
    assert sorted(sync.table.row) == ["item-0", "item-1", "item-3", "item-4", "item-5"]
    assert list(sync.set_aside) == ["item-2"]
    assert "TypeError" in sync.set_aside["item-2"]

    # The loop goes on: an item written after the bad one still arrives.
    with db.session() as s:
        s.add(Item(id="item-9", title="Later", description="", tags=[], attributes={},
                   status="ready"))
    sync.load_items()
    assert sync.table.get("item-9") is not None

    # Fixing the record brings it back and clears it from the set-aside list.
    set_tags(db, "item-2", ["fixed"])
    sync.load_items()
    assert sync.table.get("item-2") is not None
    assert sync.set_aside == {}


def test_an_item_changed_into_an_unreadable_one_leaves_serving(db: Database,
                                                               tmp_path: Path) -> None:
    sync = sync_of(db, tmp_path)
    sync.catch_up()
    assert sync.table.get("item-4") is not None
    set_tags(db, "item-4", 7)
    sync.load_items()
    assert sync.table.get("item-4") is None  # its stored state is not what answers would show
    assert "item-4" in sync.set_aside


def test_a_failing_sync_reports_how_long_and_why_then_recovers(db: Database,
                                                               tmp_path: Path) -> None:
    sync = sync_of(db, tmp_path, events_poll_interval_s=0.05)
    stop = threading.Event()
    loop = threading.Thread(target=sync.run, args=(stop,), daemon=True)
    loop.start()
    try:
        wait_until(sync.ready.is_set, timeout=10)
        assert sync.stale_for() == 0.0 and sync.failing_why is None
        with db.session() as s:  # every pass now fails: its tables are gone
            s.execute(text("ALTER TABLE events RENAME TO events_away"))
        wait_until(lambda: sync.stale_for() > 0.3, timeout=10)
        assert "events" in (sync.failing_why or "")
        with db.session() as s:
            s.execute(text("ALTER TABLE events_away RENAME TO events"))
        wait_until(lambda: sync.failing_why is None, timeout=10)
        assert sync.stale_for() == 0.0
    finally:
        stop.set()
        sync.wake.set()
        loop.join(5)


def test_an_unreadable_event_is_skipped_once_and_the_tail_goes_on(
        db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medley.recs import store
    from medley.recs.events import Event, EventType

    now = datetime.utcnow().timestamp()
    evs = [Event(f"ev-{k}", "u1", f"item-{k}", EventType.LIKE, None, now - 60 + k)
           for k in range(3)]
    with db.session() as s:
        store.insert_events(s, evs)
        # Another writer (a newer version) stored a type this one does not know.
        s.execute(text("UPDATE events SET type = 'teleport' WHERE event_id = 'ev-1'"))
    sync = sync_of(db, tmp_path)
    sync.catch_up()
    state = sync.behavior.user("u1")
    assert state is not None and sorted(i for i, _, _ in state.positives) == ["item-0", "item-2"]
    bad = next(q for q, why in store.skipped_events.items() if "teleport" in why)
    assert bad in sync._applied  # done with: the next polls do not read from it again
    reads: list[int] = []
    real = store.events_after

    def counted(s: Any, seq: int, **kw: Any) -> Any:
        reads.append(seq)
        return real(s, seq, **kw)

    monkeypatch.setattr(store, "events_after", counted)
    assert sync.tail_events() == 0 and reads == []


def test_a_model_whose_ranker_cannot_load_is_served_with_the_hand_blend(db: Database,
                                                                        tmp_path: Path) -> None:
    """A stored model whose ranker cannot be read still arrives (ALS, the hand blend), once:
    the sync does not retry it on every tick."""
    from medley.recs import collab, store
    from medley.recs.ranker import Ranker

    model = collab.train([(f"u{u}", f"i{i}", 1.0) for u in range(6) for i in range(4)],
                         factors=2, iterations=2, regularization=1.0, last_seq=1)
    assert model is not None
    model.ranker = Ranker(["collab"], "not a LightGBM model")
    with db.session() as s:
        store.save_model(s, model.to_bytes(), 1, 1)
    sync = sync_of(db, tmp_path)
    assert sync.check_model()
    served = sync.rec.collab
    assert served is not None and served.ranker is None
    assert not sync.check_model()  # served: nothing new to load
