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
            Sweeper(settings, db, broker))


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


def test_queued_work_is_resent_only_when_its_queue_is_empty_or_it_waited_too_long(
    env: Any,
) -> None:
    catalog, broker, sweeper = env
    item = catalog.create(ItemMetadata.model_validate({"title": "Waiting"}), {})
    broker.extracts.clear()
    assert sweeper.sweep().extractions == 0  # just queued
    _age(catalog, item.id, 120)
    broker.queues["text"] = 5  # a backlog: its message is probably still there
    assert sweeper.sweep().extractions == 0
    _age(catalog, item.id, 7200)  # past the longest wait: sent whatever the queue holds
    assert sweeper.sweep().extractions == 2


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
    assert sweeper.sweep().index_writes == 0  # waits longer behind a backlog
