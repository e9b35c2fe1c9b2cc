"""A serving process builds its recommendation state while the index opens: the state is
ready before the index answers, and the loop that searches the index waits for it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

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
