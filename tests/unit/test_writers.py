"""Writers to one SQLite file from the threads of one process: they take turns without
SQLite's sleeping poll, and a request thread's write goes before the background tasks' that
were waiting first (what keeps uploads quick while an import's extractions commit)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from medley.db import Database
from medley.db.writers import OneWriter, mark_background

GOT: dict[str, float] = {}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database(f"sqlite:///{tmp_path / 'w.db'}")
    with d.session() as s:
        s.execute(text("CREATE TABLE log (who TEXT)"))
    yield d
    d.dispose()


def _writer(db: Database, who: str, background: bool, started: threading.Event | None = None,
            hold: threading.Event | None = None) -> threading.Thread:
    """A thread writing one row (rowids keep the order the writes got the lock in), and when
    its write got the lock."""
    def run() -> None:
        mark_background(background)
        with db.session() as s:
            s.execute(text("INSERT INTO log (who) VALUES (:w)"), {"w": who})
            GOT[who] = time.monotonic()
            if started is not None:
                started.set()
            if hold is not None:
                assert hold.wait(10)

    t = threading.Thread(target=run)
    t.start()
    return t


def _count(name: str, role: str) -> float:
    return REGISTRY.get_sample_value(f"medley_db_write_{name}_seconds_count", {"role": role}) or 0


def test_a_request_write_goes_before_background_writes_waiting_longer(db: Database) -> None:
    waits = _count("wait", "request"), _count("wait", "background")
    started, hold = threading.Event(), threading.Event()
    first = _writer(db, "task holding the lock", True, started, hold)
    assert started.wait(5)
    waiting = [_writer(db, f"task {k}", True) for k in range(3)]
    time.sleep(0.05)  # the tasks queue first
    upload = _writer(db, "upload", False)
    time.sleep(0.05)  # and it waits too
    hold.set()
    for t in (first, *waiting, upload):
        t.join(10)
    with db.session() as s:
        order = [w for (w,) in s.execute(text("SELECT who FROM log ORDER BY rowid"))]
    assert order[:2] == ["task holding the lock", "upload"], order
    assert sorted(order[2:]) == ["task 0", "task 1", "task 2"]
    # What operators see on /metrics: each turn's wait, by who asked.
    assert _count("wait", "request") - waits[0] == 1
    assert _count("wait", "background") - waits[1] == 4


def test_a_waiting_writer_goes_on_as_soon_as_the_lock_is_free(db: Database) -> None:
    # SQLite's own wait polls with sleeps that grow to 100 ms: after 0.33 s of waiting a
    # writer looks every 100 ms (at 0.428 s and 0.528 s), so a lock freed at 0.44 s would be
    # found about 85 ms late.
    late = []
    for k in range(3):
        started, hold = threading.Event(), threading.Event()
        first = _writer(db, f"first {k}", True, started, hold)
        assert started.wait(5)
        second = _writer(db, f"second {k}", True)
        time.sleep(0.44)
        released = time.monotonic()
        hold.set()
        first.join(10)
        second.join(10)
        late.append(GOT[f"second {k}"] - released)
    assert max(late) < 0.03, late


def test_a_writer_that_waits_past_the_timeout_goes_on_to_sqlite() -> None:
    writer = OneWriter(timeout=0.05)
    assert writer.acquire(background=False)
    started = time.monotonic()
    assert not writer.acquire(background=True)  # it goes on; SQLite's own wait decides
    assert 0.04 <= time.monotonic() - started < 1.0
    writer.release()
    assert writer.acquire(background=True)
