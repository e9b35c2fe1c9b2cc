"""A serving process builds its recommendation state while the index opens: the state is
ready before the index answers, and the loop that searches the index waits for it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from medley.config import Settings
from medley.domain import Modality
from medley.recs import store
from medley.recs.behavior import Behavior
from medley.recs.engine import Recommender
from medley.recs.events import Event, EventType
from medley.recs.items import ItemTable
from medley.recs.sync import RecSync
from tests.conftest import database_with_items


def test_the_state_builds_before_the_index_answers_and_the_ticks_wait_for_it(
        tmp_path: Path) -> None:
    with database_with_items(f"sqlite:///{tmp_path / 'm.db'}", 3) as db:
        with db.session() as s:
            store.insert_events(s, [Event("e1", "u", "item-0", EventType.LIKE, None,
                                          time.time() - 60)])
        settings = Settings(data_dir=tmp_path, events_poll_interval_s=0.01)
        searches: list[object] = []
        rec = Recommender(settings, ItemTable({Modality.TEXT: 4}),
                          Behavior(86400.0, 3600.0), lambda *a: searches.append(a) or [])
        sync = RecSync(settings, db, rec)
        stop, index_up = threading.Event(), threading.Event()
        loop = threading.Thread(target=sync.run, args=(stop, index_up), daemon=True)
        loop.start()
        try:
            assert sync.ready.wait(10)  # built with the index still closed
            assert sync.behavior.last_seq == 1 and len(sync.table) == 3
            with db.session() as s:
                store.insert_events(s, [Event("e2", "u", "item-1", EventType.LIKE, None,
                                              time.time() - 30)])
            time.sleep(0.3)
            assert sync.behavior.last_seq == 1 and not searches  # no tick yet
            index_up.set()
            deadline = time.monotonic() + 10
            while sync.behavior.last_seq < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert sync.behavior.last_seq == 2  # ticking once the index answers
        finally:
            stop.set()
            sync.wake.set()
            loop.join(5)


def test_readiness_does_not_wait_for_the_content_map_predictions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At start-up the model is served at once and every item's predictions are warmed beside
    the first requests (at 100k items they took 4.6 s, most of a restart's model step)."""
    import numpy as np

    from medley.recs.collab import CollabModel
    from medley.recs.predicted import Predicted

    ready_when_warming: list[bool] = []
    warmed = threading.Event()
    sync: RecSync | None = None

    def slow_warm(self: Predicted, table: ItemTable) -> int:
        assert sync is not None
        ready_when_warming.append(sync.ready.is_set())
        warmed.set()
        return 0

    monkeypatch.setattr(Predicted, "warm", slow_warm)
    with database_with_items(f"sqlite:///{tmp_path / 'm.db'}", 3) as db:
        rng = np.random.default_rng(0)
        model = CollabModel(["u"], ["item-0", "item-1"], rng.random((1, 3), dtype=np.float32),
                            rng.random((2, 3), dtype=np.float32), 1.0, 0)
        with db.session() as s:
            store.save_model(s, model.to_bytes(), 0, 0)
        settings = Settings(data_dir=tmp_path)
        rec = Recommender(settings.ranking, ItemTable({Modality.TEXT: 4}),
                          Behavior(86400.0, 3600.0), lambda *_: [])
        sync = RecSync(settings, db, rec)
        sync.catch_up()
        assert warmed.wait(5)
        assert ready_when_warming == [True]  # served first, warmed beside
        assert rec.collab is not None
