"""Erasure, reset, users' controls and the analytics budget on every database backend, and an
erasure reaching several serving processes that share one database."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from medley import controls, erasures
from medley.config import Settings
from medley.db import Database
from medley.db.models import CollabModelRecord, Erasure, EventRecord, UserPreferences
from medley.domain import Modality
from medley.errors import BudgetExhausted
from medley.privacy import analytics, erase
from medley.privacy.erase import Kind
from medley.recs import store
from medley.recs.behavior import Behavior
from medley.recs.collab import CollabModel
from medley.recs.engine import Recommender
from medley.recs.events import Event, EventType
from medley.recs.items import ItemTable
from medley.recs.sync import RecSync
from medley.recs.training import train_and_store
from tests.conftest import database_with_items

NOW = time.time()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    with database_with_items(database_url, 8, lambda k: [f"t{k % 2}"]) as d:
        yield d


def ev(event_id: str, user: str, item: str, kind: EventType = EventType.LIKE,
       rec_id: str | None = None) -> Event:
    return Event(event_id, user, item, kind, None, NOW - 60, {"surface": "home"}, rec_id)


def community(db: Database) -> None:
    """Six users on items 0-5; "solo" alone on item-7 (and on items others like)."""
    rows = [ev(f"e{u}-{i}", f"user-{u}", f"item-{i}")
            for u in range(6) for i in ((0, 1, 2) if u < 3 else (3, 4, 5))]
    rows += [ev("s1", "solo", "item-7", rec_id="r-1"), ev("s2", "solo", "item-0", rec_id="r-1"),
             ev("s3", "solo", "item-1", EventType.VIEW, rec_id="r-2")]
    with db.session() as s:
        store.insert_events(s, rows)


def settings(tmp: Path) -> Settings:
    return Settings(data_dir=tmp, collab_factors=4, collab_iterations=5)


def test_erasure_deletes_every_row_and_takes_the_user_out_of_stored_models(
        db: Database, tmp_path: Path) -> None:
    community(db)
    assert train_and_store(db, settings(tmp_path)) is not None
    with db.session() as s:
        s.add(UserPreferences(user_id="solo", liked_items=["item-3"], text="calm",
                              disliked_tags=[]))
        controls.not_interested(s, "solo", tag="t1")
        controls.set_paused(s, "solo", True)
    with db.session() as s:
        done = erase.scrub(s, "solo", Kind.ERASE, 3600)
    assert done.counts == {"events": 3, "recommendation_ids": 2, "exposures": 0,
                           "collab_factors": True, "collab_items": 1, "preferences": True,
                           "not_interested": 1,
                           "history_paused": True}
    assert done.retrain
    with db.session() as s:
        assert not s.scalars(select(EventRecord).where(EventRecord.user_id == "solo")).all()
        assert s.get(UserPreferences, "solo") is None
        assert controls.get(s, "solo") == controls.Controls()
        model = CollabModel.from_bytes(s.scalars(select(CollabModelRecord)).one().blob)
        assert "solo" not in model.user_ids
        assert "item-7" not in model.item_ids and "item-0" in model.item_ids  # only theirs goes
        notice = s.scalars(select(Erasure)).one()
        assert notice.user_hash == erasures.user_hash("solo") and "solo" not in str(notice.counts)
        latest = store.latest_model_id(s)
        assert latest is not None and erasures.retrain_due(s, latest)
    # No new event, yet the model learnt from erased events: it is retrained, then not again.
    retrained = train_and_store(db, settings(tmp_path))
    assert retrained is not None
    with db.session() as s:
        assert not erasures.retrain_due(s, retrained)
    assert train_and_store(db, settings(tmp_path)) is None
    with db.session() as s:  # a second erasure of the same user: a receipt of zeros
        again = erase.scrub(s, "solo", Kind.ERASE, 3600)
    assert not any(again.counts.values()) and not again.retrain


def test_a_reset_keeps_what_the_user_stated_and_notices_lose_the_hash_in_time(
        db: Database) -> None:
    community(db)
    with db.session() as s:
        s.add(UserPreferences(user_id="solo", liked_items=[], text="calm", disliked_tags=[]))
        controls.not_interested(s, "solo", item_id="item-2")
    with db.session() as s:
        done = erase.scrub(s, "solo", Kind.RESET, 3600)
    assert done.counts["events"] == 3 and "preferences" not in done.counts
    assert not done.retrain  # no model was trained yet
    with db.session() as s:
        assert s.get(UserPreferences, "solo") is not None
        assert controls.get(s, "solo").items == ("item-2",)
        assert [n.rebuild for n in erasures.notices_after(s, 0)] == [True]
        erase.forget_hashes(s, 0.0)
    with db.session() as s:
        assert [n.user_hash for n in erasures.notices_after(s, 0)] == [None]


def test_controls_are_idempotent_and_leave_no_row_once_undone(db: Database) -> None:
    with db.session() as s:
        controls.not_interested(s, "u", item_id="item-1")
        controls.not_interested(s, "u", item_id="item-1")
        c = controls.not_interested(s, "u", tag="t0")
    assert c.items == ("item-1",) and c.tags == ("t0",)
    with db.session() as s:
        controls.set_paused(s, "u", True)
        assert controls.paused_users(s, {"u", "other"}) == {"u"}
        controls.interested_again(s, "u", item_id="item-1")
        controls.interested_again(s, "u", tag="t0")
        assert controls.set_paused(s, "u", False) == controls.Controls()
        assert controls.set_paused(s, "never", False) == controls.Controls()
    with db.session() as s:
        assert controls.delete(s, "u") == controls.Controls()


def test_the_budget_is_shared_by_processes_and_refills_with_the_window(
        database_url: str) -> None:
    one, two = Database(database_url), Database(database_url)  # two processes' engines
    one.migrate()
    t = 1_800_000_000.0
    try:
        for k in range(4):
            with (one if k % 2 else two).session() as s:
                spent = analytics.charge(s, "key-a", 0.5, 2.0, 3600, t + k)
        assert spent.left == pytest.approx(0.0)
        with pytest.raises(BudgetExhausted) as refused, one.session() as s:
            analytics.charge(s, "key-a", 0.5, 2.0, 3600, t + 10)
        window_end = math.floor(t / 3600) * 3600 + 3600
        assert refused.value.retry_after_s == math.ceil(window_end - (t + 10))
        assert "refills" in refused.value.message
        with two.session() as s:  # another key has its own budget
            assert analytics.charge(s, "key-b", 0.5, 2.0, 3600, t).left == pytest.approx(1.5)
        with two.session() as s:  # the next window starts full
            assert analytics.charge(s, "key-a", 0.5, 2.0, 3600, window_end + 1).left == (
                pytest.approx(1.5))
    finally:
        one.dispose()
        two.dispose()


def test_exact_counts_are_distinct_users_per_event_type(db: Database) -> None:
    community(db)
    with db.session() as s:
        store.insert_events(s, [ev("x1", "user-0", "item-0"), ev("x2", "user-0", "item-0",
                                                               EventType.VIEW)])
        counts = analytics.distinct_users(s, "item-0")
    assert counts["like"] == 4  # user-0 twice, user-1, user-2, solo: each user once
    assert counts["view"] == 1 and counts["share"] == 0 and len(counts) == len(EventType)


# --- serving processes ---------------------------------------------------------------------
def serving(db: Database, tmp: Path) -> RecSync:
    s = Settings(data_dir=tmp)
    rec = Recommender(s, ItemTable({Modality.TEXT: 4}), Behavior(30 * 86400, 86400),
                      lambda *_: [])
    sync = RecSync(s, db, rec)
    sync.catch_up()
    return sync


def test_an_erasure_reaches_every_serving_process_and_its_aggregates(
        db: Database, tmp_path: Path) -> None:
    community(db)
    assert train_and_store(db, settings(tmp_path)) is not None
    a, b = serving(db, tmp_path / "a"), serving(db, tmp_path / "b")
    for p in (a, b):
        assert p.behavior.user("solo") is not None
        assert "item-7" in p.behavior.trending_top(10, {"surface": "home"})
    with db.session() as s:  # erased through a third process
        erase.scrub(s, "solo", Kind.ERASE, 3600)
    for p in (a, b):
        assert p.apply_erasures() == 1
        assert p.behavior.user("solo") is None
        assert "item-7" not in p.behavior.trending_top(10, {"surface": "home"})
        assert "item-7" not in p.behavior.popularity_top(10)
        assert p.behavior.interactions["item-0"] == 3  # solo's like is no longer counted
        assert p.rec.collab is not None and "solo" not in p.rec.collab.user_row
        assert p.apply_erasures() == 0
    fresh = serving(db, tmp_path / "c")  # the same state a restart builds
    assert a.behavior.popularity.log == pytest.approx(fresh.behavior.popularity.log)
    assert a.behavior.interactions == fresh.behavior.interactions
    assert fresh.apply_erasures() == 0  # a new process starts past the old notices
    with db.session() as s:  # events after the rebuild are tailed as before
        store.insert_events(s, [ev("late", "user-9", "item-6")])
    a.tick()
    assert a.behavior.user("user-9") is not None


def test_model_scrub_keeps_factor_shapes_consistent() -> None:
    rng = np.random.default_rng(0)
    m = CollabModel(["u1", "u2"], ["i1", "i2", "i3"], rng.random((2, 3), dtype=np.float32),
                    rng.random((3, 3), dtype=np.float32), 1.0, 9)
    slim = CollabModel.from_bytes(m.without("u1", {"i2"}).to_bytes())
    assert slim.user_ids == ["u2"] and slim.item_ids == ["i1", "i3"] and slim.last_seq == 9
    assert np.array_equal(slim.item_factors, m.item_factors[[0, 2]])
    empty = m.without("u2", {"i1", "i2", "i3"})
    assert empty.top_for_user(np.ones(3, dtype=np.float32), 5) == []
    assert empty.fold_in([("i1", 1.0)]) is None
