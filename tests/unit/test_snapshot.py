"""The behaviour snapshot: a serving process restarted from it answers as one that replayed
every event; an erased user never comes back through it; a damaged, foreign or unwritable file
costs a replay, never a failed start or a stalled loop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, insert

from medley.config import Settings
from medley.db import Database
from medley.db.models import EventRecord
from medley.domain import Modality
from medley.privacy import erase
from medley.privacy.erase import Kind
from medley.recs import snapshot, store
from medley.recs import sync as sync_module
from medley.recs.behavior import _STATE, RECENT_POSITIVES, Behavior, DecayedCounter
from medley.recs.collab import CollabModel
from medley.recs.engine import Recommender
from medley.recs.events import Event, EventType
from medley.recs.items import ItemTable
from medley.recs.sync import RecSync
from tests.conftest import database_with_items

NOW = time.time()
DAY = 86400.0
KINDS = (EventType.VIEW, EventType.LIKE, EventType.COMPLETE, EventType.SHARE, EventType.SKIP,
         EventType.DISLIKE, EventType.IMPRESSION)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with database_with_items(f"sqlite:///{tmp_path / 'medley.db'}", 8) as d:
        yield d


def ev(event_id: str, user: str, item: str, kind: EventType = EventType.LIKE,
       age_s: float = 60.0, device: str = "tv") -> Event:
    return Event(event_id, user, item, kind, None, NOW - age_s,
                 {"surface": "home", "device": device})


def add(db: Database, *events: Event) -> None:
    with db.session() as s:
        store.insert_events(s, list(events))


def add_at(db: Database, seq: int, e: Event) -> None:
    """An event whose sequence number was taken before others that committed first."""
    with db.session() as s:
        s.execute(insert(EventRecord).values(
            seq=seq, event_id=e.event_id, user_id=e.user_id, item_id=e.item_id,
            type=e.type.value, value=e.value, ts=e.ts, context=e.context))


def history(db: Database) -> None:
    """Six users over items 0-5 (every kind of event, two devices, distinct times); "solo"
    alone on item-7."""
    add(db, *[ev(f"h{u}-{i}", f"user-{u}", f"item-{(u + i) % 6}", KINDS[(u + 2 * i) % 7],
                 age_s=3600.0 * (u * 6 + i + 1), device=("tv", "mobile")[u % 2])
              for u in range(6) for i in range(6)])
    add(db, ev("s1", "solo", "item-7", age_s=30), ev("s2", "solo", "item-0", age_s=20),
        ev("s3", "solo", "item-1", EventType.VIEW, age_s=10))


def serving(db: Database, data_dir: Path, **overrides: Any) -> RecSync:
    """A serving process's recommendation state after start-up."""
    s = Settings(data_dir=data_dir, **overrides)
    behavior = Behavior(s.popularity_half_life_days * DAY, s.trending_half_life_hours * 3600)
    rec = Recommender(s, ItemTable({Modality.TEXT: 4}), behavior, lambda *_: [])
    sync = RecSync(s, db, rec)
    sync.catch_up()
    return sync


def replayed(db: Database, tmp_path: Path, **overrides: Any) -> Behavior:
    return serving(db, tmp_path / "replay", behavior_snapshot_interval_s=0, **overrides).behavior


def answers(b: Behavior) -> dict[str, Any]:
    """What users of the recommendations would notice if it differed."""
    return {
        "popular": b.popularity_top(10),
        "trending": {d: b.trending_top(10, {"device": d} if d else None)
                     for d in ("tv", "mobile", None)},
        "users": {u: (sorted(st.positives), sorted(st.consumed), sorted(st.negatives.items()),
                      st.events) for u, st in b.users.items()},
        "audience": dict(b.audience),
        "interactions": dict(b.interactions),
        "impressions": dict(b.impressions),
        "co_engagement": {i: sorted(c.items()) for i, c in b.cooc.items() if c},
        "last_seq": b.last_seq,
    }


def same(b: Behavior, full: Behavior) -> None:
    assert answers(b) == answers(full)
    assert b.popularity.log == pytest.approx(full.popularity.log)
    assert b.trending.log == pytest.approx(full.trending.log)


def store_model(db: Database, last_seq: int) -> None:
    rng = np.random.default_rng(0)
    model = CollabModel([f"user-{u}" for u in range(6)], [f"item-{k}" for k in range(6)],
                        rng.random((6, 3), dtype=np.float32), rng.random((6, 3), dtype=np.float32),
                        1.0, last_seq)
    with db.session() as s:
        store.save_model(s, model.to_bytes(), last_seq, last_seq)


# --- restore, then tail ---------------------------------------------------------------------
@pytest.mark.parametrize("with_model", [False, True])
def test_a_restart_from_the_snapshot_answers_as_a_full_replay(
        db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture, with_model: bool) -> None:
    history(db)
    with db.session() as s:
        n = store.max_seq(s)
    if with_model:  # co-engagement then counts after the model's data, restored or replayed
        store_model(db, n // 2)
    # Sequence numbers n+2 and n+3 commit before n+1 (PostgreSQL allows it): the snapshot is
    # taken with n+1 still missing, inside the overlap window the tail re-reads.
    add_at(db, n + 2, ev("g2", "user-1", "item-4", EventType.SHARE, age_s=5))
    add_at(db, n + 3, ev("g3", "user-7", "item-2", EventType.VIEW, age_s=4, device="mobile"))
    path = tmp_path / "shared" / "behavior.snapshot"
    first = serving(db, tmp_path / "a", behavior_snapshot_path=path)
    assert first.save_snapshot() and path.exists()

    add_at(db, n + 1, ev("late", "user-2", "item-5", EventType.LIKE, age_s=3))
    add(db, ev("new1", "user-0", "item-7", age_s=2), ev("new2", "user-8", "item-3", age_s=1),
        ev("new3", "user-1", "item-2", EventType.DISLIKE, age_s=1.5, device="mobile"))
    caplog.set_level(logging.INFO, logger="medley.recs.sync")
    restarted = serving(db, tmp_path / "b", behavior_snapshot_path=path)
    assert "restored from the snapshot" in caplog.text and "4 tailed after it" in caplog.text
    same(restarted.behavior, replayed(db, tmp_path))
    assert restarted.behavior.user("user-2") is not None  # the late commit was not skipped
    assert restarted.behavior.interactions["item-4"] == first.behavior.interactions["item-4"]

    add(db, ev("after", "user-9", "item-6", age_s=0.5))  # and it goes on tailing as before
    restarted.tail_events()
    same(restarted.behavior, replayed(db, tmp_path))


def test_save_and_load_keep_every_part_of_the_state(tmp_path: Path) -> None:
    b = Behavior(7 * DAY, DAY)
    b.apply(enumerate([ev(f"e{k}", f"u{k % 3}", f"i{k % 5}", KINDS[k % 7], age_s=k * 100.0,
                          device=("tv", "web")[k % 2]) for k in range(60)], start=1))
    b.popularity_top(3)  # cached rankings are left out of the file, and rebuilt
    path = tmp_path / "behavior.snapshot"
    snapshot.save(b, {59, 60}, 4, path, model_id=9)
    restored = snapshot.load(path, b.empty())
    assert restored is not None
    assert (restored.applied, restored.erasures_seen, restored.model_id, restored.events) == (
        {59, 60}, 4, 9, 60)

    def plain(v: Any) -> Any:
        if isinstance(v, DecayedCounter):
            return v.log
        return {k: plain(x) for k, x in v.items()} if isinstance(v, dict) else v

    for name in _STATE:
        assert plain(getattr(restored.behavior, name)) == plain(getattr(b, name)), name
    assert restored.behavior.users["u0"].positives.maxlen == RECENT_POSITIVES
    assert restored.behavior.popularity_top(3) == b.popularity_top(3)


# --- erasure ---------------------------------------------------------------------------------
def test_a_snapshot_older_than_an_erasure_is_not_used(db: Database, tmp_path: Path) -> None:
    history(db)
    path = tmp_path / "shared" / "behavior.snapshot"
    crashed = serving(db, tmp_path / "a", behavior_snapshot_path=path)
    assert crashed.save_snapshot()
    assert "solo" in crashed.behavior.users
    with db.session() as s:  # erased while no serving process runs to see the notice
        erase.scrub(s, "solo", Kind.ERASE, 3600)
    restarted = serving(db, tmp_path / "b", behavior_snapshot_path=path)
    b = restarted.behavior
    assert b.user("solo") is None
    assert "item-7" not in b.popularity_top(10) and "item-7" not in b.audience  # theirs alone
    assert b.interactions["item-7"] == 0
    same(b, replayed(db, tmp_path))
    assert not path.exists()  # nothing of theirs left on disk either
    assert restarted.apply_erasures() == 0


def test_an_erasure_that_deleted_nothing_keeps_the_snapshot_usable(
        db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    history(db)
    path = tmp_path / "shared" / "behavior.snapshot"
    assert serving(db, tmp_path / "a", behavior_snapshot_path=path).save_snapshot()
    with db.session() as s:  # a user with no events: the receipt of zeros
        erase.scrub(s, "nobody", Kind.ERASE, 3600)
    caplog.set_level(logging.INFO, logger="medley.recs.sync")
    restarted = serving(db, tmp_path / "b", behavior_snapshot_path=path)
    assert "restored from the snapshot" in caplog.text
    assert restarted.apply_erasures() == 0  # and it starts past that notice
    same(restarted.behavior, replayed(db, tmp_path))


def test_an_erasure_deletes_the_snapshot_and_the_next_save_leaves_the_user_out(
        db: Database, tmp_path: Path) -> None:
    history(db)
    path = tmp_path / "shared" / "behavior.snapshot"
    p = serving(db, tmp_path / "a", behavior_snapshot_path=path,
                behavior_snapshot_interval_s=0.01)
    assert p.save_snapshot()
    leftover = path.with_name(f"{path.name}.k3x9.tmp")  # a save that died half-way
    leftover.write_bytes(path.read_bytes())
    with db.session() as s:
        erase.scrub(s, "solo", Kind.ERASE, 3600)
    assert p.apply_erasures() == 1
    assert not path.exists() and not leftover.exists()

    time.sleep(0.02)
    p.tick()  # the periodic save: the state without them
    p.finish_snapshot()
    restored = snapshot.load(path, p.behavior.empty())
    assert restored is not None and restored.erasures_seen == p.erasures_seen
    assert "solo" not in restored.behavior.users
    assert "item-7" not in restored.behavior.popularity.log
    assert "item-7" not in restored.behavior.audience


def test_a_save_being_written_when_an_erasure_arrives_is_thrown_away(
        db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    history(db)
    path = tmp_path / "shared" / "behavior.snapshot"
    p = serving(db, tmp_path / "a", behavior_snapshot_path=path)
    copied, go_on = threading.Event(), threading.Event()
    real_write = snapshot.write

    def slow(*args: Any) -> tuple[Path, int]:
        copied.set()  # the state, solo included, is copied; the file is not written yet
        assert go_on.wait(10)
        return real_write(*args)

    monkeypatch.setattr(snapshot, "write", slow)
    assert p.save_snapshot(wait=False)
    assert copied.wait(10)
    with db.session() as s:
        erase.scrub(s, "solo", Kind.ERASE, 3600)
    assert p.apply_erasures() == 1
    go_on.set()
    p.finish_snapshot(10)
    assert not path.exists()
    assert not list(path.parent.glob("*.tmp"))


# --- files that cannot be used, saves that cannot be made -----------------------------------
@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "not a snapshot", "empty",
                                    "other version", "other half-life", "other database",
                                    "names a class"])
def test_a_damaged_or_foreign_snapshot_is_ignored_and_start_up_replays(
        db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    history(db)
    path = tmp_path / "shared" / "behavior.snapshot"
    first = serving(db, tmp_path / "a", behavior_snapshot_path=path)
    with monkeypatch.context() as m:
        if damage == "other version":
            m.setattr(snapshot, "VERSION", snapshot.VERSION + 1)
        if damage == "names a class":  # whole and checksummed, but no longer plain values
            real_copy = snapshot._copy
            m.setattr(snapshot, "_copy",
                      lambda b: {**real_copy(b), "latest_ts": Decimal(b.latest_ts)})
        assert first.save_snapshot()
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) - 7])
    elif damage == "flipped byte":
        path.write_bytes(data[:-9] + bytes([data[-9] ^ 0x10]) + data[-8:])
    elif damage == "not a snapshot":
        path.write_bytes(bytes(range(256)) * 8)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "other database":  # fewer events than the snapshot holds
        with db.session() as s:
            s.execute(delete(EventRecord).where(EventRecord.seq > 10))
    overrides = {"popularity_half_life_days": 7.0} if damage == "other half-life" else {}
    caplog.set_level(logging.INFO)
    restarted = serving(db, tmp_path / "b", behavior_snapshot_path=path, **overrides)
    assert "restored from the snapshot" not in caplog.text
    assert any(r.levelno == logging.WARNING and "replaying the events" in r.getMessage()
               for r in caplog.records)
    same(restarted.behavior, replayed(db, tmp_path, **overrides))


def test_a_failing_save_is_logged_once_and_the_loop_goes_on(
        db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    history(db)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("where the snapshot's folder should be")
    s = Settings(data_dir=tmp_path / "a", behavior_snapshot_path=not_a_folder / "b.snapshot",
                 behavior_snapshot_interval_s=0.01, events_poll_interval_s=0.01)
    rec = Recommender(s, ItemTable({Modality.TEXT: 4}), Behavior(30 * DAY, DAY),
                      lambda *_: [])
    p = RecSync(s, db, rec)
    tries: list[int] = []
    real_write = snapshot.write

    def counted(*args: Any, **kwargs: Any) -> tuple[Path, int]:
        tries.append(1)
        return real_write(*args, **kwargs)

    monkeypatch.setattr(snapshot, "write", counted)
    monkeypatch.setattr(sync_module, "SLOW_TICK_S", 0.0)  # a save is due at every poll
    caplog.set_level(logging.INFO, logger="medley.recs.sync")
    stop = threading.Event()
    loop = threading.Thread(target=p.run, args=(stop,), daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 20
        for k in range(3):
            add(db, ev(f"more{k}", "user-9", f"item-{k}", age_s=1))
            while len(tries) < 2 * (k + 1) and time.monotonic() < deadline:
                time.sleep(0.01)
        while time.monotonic() < deadline and (p.behavior.user("user-9") is None
                                               or p.behavior.user("user-9").events < 3):
            time.sleep(0.01)
    finally:
        stop.set()
        p.wake.set()
        loop.join(5)
        p.finish_snapshot(5)
    assert len(tries) >= 3  # tried again each time the state moved on
    assert caplog.text.count("behaviour snapshot not saved") == 1
    assert "recommendation sync failed" not in caplog.text
    user = p.behavior.user("user-9")
    assert user is not None and user.events == 3  # the events kept coming in


def test_snapshots_are_written_after_a_long_replay_and_can_be_turned_off(
        db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    history(db)
    monkeypatch.setattr(sync_module, "SNAPSHOT_AFTER_REPLAY", 10)
    on = serving(db, tmp_path / "on")
    on.finish_snapshot(10)  # written beside the loop, which serves meanwhile
    assert on.snapshot_path == tmp_path / "on" / "behavior.snapshot"
    assert on.snapshot_path.exists()  # the next start-up need not replay again
    for off in ({"behavior_snapshot_interval_s": 0}, {"behavior_snapshot_path": ""}):
        p = serving(db, tmp_path / "off", **off)
        assert p.snapshot_path is None and not p.save_snapshot()
        assert not (tmp_path / "off" / "behavior.snapshot").exists()
