"""The stale sweep's rules on SQLite and PostgreSQL, with a broker that is only a recorder: what
it re-sends, when, and how often (tests/integration/test_faults.py runs it against a real
Redis restart)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medley import repo
from medley.catalog import Catalog, DispatchFailed, ItemMetadata
from medley.config import Settings
from medley.db import Database
from medley.db.models import Item, ModalityRecord, utcnow
from medley.domain import Modality, ModalityStatus
from medley.media import MediaStore
from workers.recovery import Sweeper

pytestmark = pytest.mark.integration


class Broker:
    """Records what is sent; `backlog` says what each queue holds (None: unreachable)."""

    def __init__(self) -> None:
        self.up = True
        self.extracts: list[tuple[str, Modality]] = []
        self.indexes: list[str] = []
        self.queues: dict[str, int | None] = {}

    def _check(self) -> None:
        if not self.up:
            raise DispatchFailed("connection refused")

    def extract(self, item_id: str, modality: Modality) -> None:
        self._check()
        self.extracts.append((item_id, modality))

    def index(self, item_id: str) -> None:
        self._check()
        self.indexes.append(item_id)

    def backlog(self, queue: str) -> int | None:
        return self.queues.get(queue, 0) if self.up else None


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> tuple[Catalog, Broker, Sweeper]:
    db = Database(database_url)
    db.migrate()
    broker = Broker()
    settings = Settings(data_dir=tmp_path, redispatch_idle_s=60, redispatch_max_wait_s=3600)
    return (Catalog(db, MediaStore(tmp_path / "media", 1 << 20), broker), broker,
            Sweeper(settings.limits, db, broker))


def _age(catalog: Catalog, item_id: str, seconds: float) -> None:
    """Pretend the item's queued work (and its last change) is this old."""
    then = utcnow() - timedelta(seconds=seconds)
    with catalog.db.session() as s:
        for rec in s.query(ModalityRecord).filter(ModalityRecord.item_id == item_id):
            rec.queued_at = then
    with catalog.db.session() as s:
        s.query(Item).filter(Item.id == item_id).update(
            {"updated_at": then}, synchronize_session=False)


def test_an_upload_while_the_broker_is_down_is_stored_and_sent_later(env: Any) -> None:
    catalog, broker, sweeper = env
    broker.up = False
    # No exception, and no task sent.
    item = catalog.create(ItemMetadata.model_validate({"title": "Offline"}), {})
    assert item.status == "queued" and broker.extracts == []
    _age(catalog, item.id, 120)
    assert sweeper.sweep().extractions == 0  # still down: nothing to do yet
    broker.up = True
    assert sweeper.sweep().extractions == 2
    assert {m for _, m in broker.extracts} == {Modality.TEXT, Modality.CLIP_TEXT}
    assert sweeper.sweep().extractions == 0  # re-sent once per wait, not every round


def _finish_one(catalog: Catalog) -> None:
    """Another item's text extraction starts and finishes now: the queue is draining."""
    other = catalog.create(ItemMetadata.model_validate({"title": "Draining"}), {})
    with catalog.db.session() as s:
        rec = repo.modality(s, other.id, Modality.TEXT, lock=True)
        assert rec is not None
        repo.start(s, rec)
        repo.finish(s, rec, repo.Outcome(ModalityStatus.READY, vector=np.ones(4, np.float32)))


def test_queued_work_behind_a_draining_backlog_waits_the_longest_wait(env: Any) -> None:
    catalog, broker, sweeper = env
    item = catalog.create(ItemMetadata.model_validate({"title": "Waiting"}), {})
    broker.extracts.clear()
    assert sweeper.sweep().extractions == 0  # just queued
    _age(catalog, item.id, 120)
    _finish_one(catalog)
    broker.queues["text"] = 5  # a backlog that moves: its message is probably still there
    assert sweeper.sweep().extractions == 0
    _age(catalog, item.id, 7200)  # past the longest wait: sent whatever the queue holds
    assert sweeper.sweep().extractions >= 2
    assert (item.id, Modality.TEXT) in broker.extracts


def test_a_backlog_that_stopped_moving_is_resent_after_the_idle_wait(env: Any) -> None:
    catalog, broker, sweeper = env
    item = catalog.create(ItemMetadata.model_validate({"title": "Stuck"}), {})
    broker.extracts.clear()
    broker.queues["text"] = 5  # messages sit in the broker (or in a frozen consumer)
    _age(catalog, item.id, 30)
    assert sweeper.sweep().extractions == 0  # not idle long enough
    _age(catalog, item.id, 120)  # nothing of the queue started or finished for a minute
    assert sweeper.sweep().extractions == 2
    assert {m for _, m in broker.extracts} == {Modality.TEXT, Modality.CLIP_TEXT}
    assert sweeper.sweep().extractions == 0  # once per wait, not every round


def test_a_finished_item_the_index_never_got_is_sent_to_the_index_again(env: Any) -> None:
    catalog, broker, sweeper = env
    item = catalog.create(ItemMetadata.model_validate({"title": "Unindexed"}), {})
    failed = catalog.create(ItemMetadata.model_validate({"title": "Nothing to index"}), {})
    for item_id, status in ((item.id, ModalityStatus.READY), (failed.id, ModalityStatus.FAILED)):
        with catalog.db.session() as s:
            for m in (Modality.TEXT, Modality.CLIP_TEXT):
                rec = repo.modality(s, item_id, m, lock=True)
                assert rec is not None
                repo.start(s, rec)
                vector = np.ones(4, dtype=np.float32) if status is ModalityStatus.READY else None
                repo.finish(s, rec, repo.Outcome(status, vector=vector))
    _age(catalog, item.id, 120)
    _age(catalog, failed.id, 120)
    broker.indexes.clear()
    assert sweeper.sweep().index_writes == 1
    assert broker.indexes == [item.id]  # not the one with no vector to index
    assert sweeper.sweep().index_writes == 0  # not again until the wait has passed
    broker.queues["index"] = 3
    sweeper._index_sent.clear()
    _age(catalog, item.id, 30)
    assert sweeper.sweep().index_writes == 0  # behind a backlog, not idle long enough
    _age(catalog, item.id, 120)
    # A working index queue writes an item within a second of its extractions settling: one
    # waiting two minutes behind a backlog means the queue stopped moving.
    assert sweeper.sweep().index_writes == 1


def test_queue_health_reports_depth_age_and_drain_rate(env: Any) -> None:
    from workers.recovery import queue_health

    catalog, _, _ = env
    item = catalog.create(ItemMetadata.model_validate({"title": "Counted"}), {})
    _age(catalog, item.id, 90)
    _finish_one(catalog)
    text = queue_health(catalog.db)["text"]
    assert text["queued"] == 3  # both of the aged item's, the drained item's clip_text
    assert 85 <= text["oldest_queued_s"] <= 300
    assert text["finished_per_min"] == 1.0
    assert queue_health(catalog.db)["media"] == {"queued": 0, "oldest_queued_s": 0.0,
                                                 "finished_per_min": 0.0}
