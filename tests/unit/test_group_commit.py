"""Group commit of events (medley/recs/commit.py), on SQLite and PostgreSQL: what a client of
POST /v1/events notices. Every accepted event is stored once, each request hears which of its
events were new, a burst of requests shares transactions, and one bad batch fails only itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from medley.config import Settings
from medley.db import Database
from medley.db.models import EventRecord
from medley.domain import Modality
from medley.recs import store
from medley.recs.commit import GroupCommitter
from medley.recs.events import Event, EventType
from medley.recs.service import Recommendations
from tests.conftest import database_with_items

ITEMS = [f"item-{k}" for k in range(4)]


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    with database_with_items(database_url, len(ITEMS)) as d:
        yield d


def commits(db: Database) -> list[int]:
    """A list that grows by one at each transaction committed on this database."""
    seen: list[int] = []
    event.listen(db.engine, "commit", lambda _conn: seen.append(1))
    return seen


def stored(db: Database) -> list[str]:
    with db.session() as s:
        return list(s.scalars(select(EventRecord.event_id)))


def ev(event_id: str, **changes: Any) -> Event:
    fields: dict[str, Any] = {"event_id": event_id, "user_id": "u", "item_id": ITEMS[0],
                              "type": EventType.VIEW, "value": None, "ts": 1_700_000_000.0}
    fields.update(changes)
    return Event(**fields)


def raw(event_id: str, user: str = "u") -> dict[str, Any]:
    return {"event_id": event_id, "user_id": user, "item_id": ITEMS[len(event_id) % 4],
            "type": "view", "timestamp": datetime.now(UTC).isoformat()}


def start(committer: GroupCommitter, stop: threading.Event | None = None) -> threading.Thread:
    t = threading.Thread(target=committer.run, args=(stop,), daemon=True)
    t.start()
    until(lambda: committer.running)
    return t


def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


class Held:
    """Wraps store.insert_events so the writer's first transaction waits for `release`: what is
    submitted meanwhile queues up, as requests do behind a running write."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.calls: list[list[str]] = []
        real = store.insert_events

        def insert(s: Session, events: Sequence[Event]) -> set[str]:
            self.calls.append([e.event_id for e in events])
            if len(self.calls) == 1:
                self.entered.set()
                assert self.release.wait(10)
            return real(s, events)

        monkeypatch.setattr(store, "insert_events", insert)


class Submitter(threading.Thread):
    """A request thread: submits, then keeps the answer or the error."""

    def __init__(self, committer: GroupCommitter, events: list[Event]) -> None:
        super().__init__(daemon=True)
        self.committer, self.events = committer, events
        self.inserted: set[str] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.inserted = self.committer.submit(self.events)
        except BaseException as exc:
            self.error = exc

    def finished(self) -> Submitter:
        self.join(10)
        assert not self.is_alive()
        return self


def queue_behind_held_write(committer: GroupCommitter, held: Held, first: list[Event],
                            then: list[list[Event]]) -> list[Submitter]:
    """`first` is being written while every batch of `then` is queued, in that order."""
    out = [Submitter(committer, first)]
    out[0].start()
    assert held.entered.wait(10)
    for batch in then:
        out.append(Submitter(committer, batch))
        out[-1].start()
        until(lambda n=len(out) - 1: committer.queued == n)  # keep queue order = list order
    return out


class _Models:  # just what Recommendations needs to be built: vector sizes
    def dims(self) -> dict[Modality, int]:
        return dict.fromkeys(Modality, 4)


def recommendations(db: Database, tmp_path: Path) -> Recommendations:
    def no_index() -> Any:
        raise AssertionError("events never touch the index")

    return Recommendations(Settings(data_dir=tmp_path), db, _Models(),  # type: ignore[arg-type]
                           no_index, lambda: None)


def test_sixteen_clients_store_every_event_once_and_hear_their_own_answer(
        db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recs = recommendations(db, tmp_path)
    stop = threading.Event()
    writer = start(recs.events, stop)
    recs.ingest([raw("old-1"), raw("old-2")])  # stored before: duplicates from now on
    writes: list[int] = []
    real = store.insert_events
    monkeypatch.setattr(store, "insert_events",
                        lambda s, events: writes.append(1) or real(s, events))
    go = threading.Barrier(16)
    answers: dict[int, list[tuple[list[str], Any]]] = {t: [] for t in range(16)}

    def client(t: int) -> None:
        go.wait()
        for k in range(10):
            ids = [f"c{t}-{k}-{j}" for j in range(1 + (t + k) % 7)]
            ids.append(f"pair{t // 2}-{k}")  # clients 2m and 2m+1 send it at the same time
            if k == 3:
                ids += ["old-1", ids[0]]  # stored already; repeated in the batch
            answers[t].append((ids, recs.ingest([raw(i) for i in ids])))

    threads = [threading.Thread(target=client, args=(t,)) for t in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    submissions = sum(len(a) for a in answers.values())
    assert submissions == 160

    accepted_by: dict[str, int] = {}
    for t, sent in answers.items():
        for ids, answer in sent:
            assert answer.rejected == [] and answer.paused == 0
            unique = list(dict.fromkeys(ids))
            new = [i for i in unique if i not in answer.duplicates]
            assert answer.accepted == len(new)
            assert set(answer.duplicates) <= set(unique)
            assert "old-1" not in new
            for i in new:
                assert i not in accepted_by, f"{i} accepted twice"
                accepted_by[i] = t
    # One of each pair got the shared event as new, the other heard it was a duplicate.
    for m in range(8):
        for k in range(10):
            assert accepted_by[f"pair{m}-{k}"] in (2 * m, 2 * m + 1)
    rows = stored(db)
    assert len(rows) == len(set(rows))  # stored exactly once
    assert set(rows) == set(accepted_by) | {"old-1", "old-2"}
    assert 1 <= len(writes) <= submissions  # never more (one per transaction here)
    recs.close()
    writer.join(10)
    assert not writer.is_alive()


def test_requests_that_arrive_during_a_write_share_the_next_transaction(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    held = Held(monkeypatch)
    committer = GroupCommitter(db)
    start(committer)
    transactions = commits(db)
    batches = [[ev(f"b{k}-{j}") for j in range(1 + k % 3)] for k in range(12)]
    batches[5].append(ev("b0-0"))  # in the same group as its first holder: a duplicate here
    subs = queue_behind_held_write(committer, held, [ev("first")], batches)
    held.release.set()
    done = [s.finished() for s in subs]
    assert [s.error for s in done] == [None] * 13
    assert done[0].inserted == {"first"}
    for s, batch in zip(done[1:], batches, strict=True):
        assert s.inserted == {e.event_id for e in batch} - ({"b0-0"} if s is done[6] else set())
    # 13 submissions, 2 transactions: the held one, and one for the 12 queued behind it.
    assert len(transactions) == 2
    assert len(held.calls) == 2
    assert sorted(stored(db)) == sorted({e.event_id for b in [[ev("first")], *batches] for e in b})
    committer.close()


def test_a_lone_request_is_written_at_once(db: Database) -> None:
    committer = GroupCommitter(db)
    start(committer)
    t = time.perf_counter()
    assert committer.submit([ev("alone")]) == {"alone"}
    assert time.perf_counter() - t < 0.4  # no batching timer (the idle poll is 0.5 s)
    assert committer.submit([ev("alone")]) == set()  # a replay: a duplicate
    committer.close()


def test_a_failing_batch_fails_alone_and_the_writer_goes_on(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    held = Held(monkeypatch)
    committer = GroupCommitter(db)
    start(committer)
    bad = ev("bad-1", context={"device": object()})  # cannot be stored: the INSERT fails
    subs = queue_behind_held_write(committer, held, [ev("first")], [
        [ev("good-1"), ev("shared")],
        [ev("shared"), bad],  # a duplicate of good-1's "shared", and a bad record
        [ev("bad-2", context={"x": object()}), ev("other")],
        [ev("other"), ev("good-3")],  # "other" was first held by a failing batch: new here
    ])
    held.release.set()
    first, good1, bad1, bad2, good3 = (s.finished() for s in subs)
    assert first.inserted == {"first"}
    assert good1.error is None and good1.inserted == {"good-1", "shared"}
    for bad_one in (bad1, bad2):  # each gets its own error (the driver's, as raised today)
        assert "not JSON serializable" in str(bad_one.error) and bad_one.inserted is None
    assert good3.error is None and good3.inserted == {"other", "good-3"}
    assert sorted(stored(db)) == ["first", "good-1", "good-3", "other", "shared"]
    # The writer survived: later requests are grouped and stored as before.
    assert committer.running
    assert committer.submit([ev("after")]) == {"after"}
    with pytest.raises((StatementError, TypeError)):  # a lone bad batch fails in its thread
        committer.submit([ev("bad-3", context={"x": object()})])
    assert committer.submit([ev("after-2")]) == {"after-2"}
    committer.close()


def test_close_writes_what_is_queued_then_requests_write_inline(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    held = Held(monkeypatch)
    committer = GroupCommitter(db)
    writer = start(committer)
    subs = queue_behind_held_write(committer, held, [ev("first")],
                                   [[ev(f"q{k}")] for k in range(5)])
    closing = threading.Thread(target=committer.close)
    closing.start()
    until(lambda: not committer.running)  # closed to new submissions...
    assert closing.is_alive()  # ...and close() waits for the queue to drain
    held.release.set()
    closing.join(10)
    assert not closing.is_alive() and not writer.is_alive()
    assert [s.finished().inserted for s in subs] == [{"first"}, *({f"q{k}"} for k in range(5))]
    transactions = commits(db)
    assert committer.submit([ev("late"), ev("q1")]) == {"late"}  # inline, its own transaction
    assert len(transactions) == 1
    assert committer.queued == 0


def test_the_writer_stops_with_the_service_stop_event(db: Database) -> None:
    committer, stop = GroupCommitter(db), threading.Event()
    writer = start(committer, stop)
    stop.set()
    writer.join(5)
    assert not writer.is_alive() and not committer.running
    assert committer.submit([ev("after-stop")]) == {"after-stop"}


def test_ingest_without_the_writer_and_after_close(db: Database, tmp_path: Path) -> None:
    recs = recommendations(db, tmp_path)
    assert not recs.events.running  # never started (as in tools and these tests)
    first = recs.ingest([raw("e1"), raw("e2"), raw("e1")])
    assert (first.accepted, first.duplicates, first.repeated) == (2, [], ["e1"])
    writer = threading.Thread(target=recs.events.run, daemon=True)
    writer.start()
    until(lambda: recs.events.running)
    second = recs.ingest([raw("e2"), raw("e3")])
    assert (second.accepted, second.duplicates) == (1, ["e2"])
    recs.close()
    writer.join(5)
    assert not writer.is_alive()
    third = recs.ingest([raw("e3"), raw("e4")])
    assert (third.accepted, third.duplicates) == (1, ["e3"])
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(EventRecord)) == 4
