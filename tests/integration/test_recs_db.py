"""Behaviour storage on every database backend: events, preferences, editorial, models."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from medley.config import Settings
from medley.db import Database
from medley.recs import store
from medley.recs.collab import CollabModel
from medley.recs.events import Event, EventType
from medley.recs.training import train_and_store
from tests.conftest import database_with_items


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    with database_with_items(database_url, 6) as d:
        yield d


def ev(event_id: str, user: str, item: str, kind: EventType = EventType.LIKE) -> Event:
    return Event(event_id, user, item, kind, None, 1_700_000_000.0, {"surface": "home"})


def test_events_are_stored_once_and_read_back_in_arrival_order(db: Database) -> None:
    with db.session() as s:
        assert store.insert_events(s, [ev("e1", "u", "item-0"), ev("e2", "u", "item-1")]) == {
            "e1", "e2"}
    with db.session() as s:  # a replay of e2 next to a new e3: only e3 is new
        assert store.insert_events(s, [ev("e2", "u", "item-1"), ev("e3", "v", "item-2")]) == {
            "e3"}
    with db.session() as s:
        rows = list(store.events_after(s, 0, batch=2))  # several batches
        assert [e.event_id for _, e in rows] == ["e1", "e2", "e3"]
        assert [seq for seq, _ in rows] == sorted(seq for seq, _ in rows)
        assert rows[0][1].context == {"surface": "home"} and rows[0][1].type is EventType.LIKE
        assert [e.event_id for _, e in store.events_after(s, rows[1][0])] == ["e3"]
        assert store.max_seq(s) == rows[-1][0]
        assert store.existing_items(s, {"item-0", "ghost"}) == {"item-0"}


def test_a_trained_model_is_stored_and_a_retrain_without_new_events_is_skipped(
    db: Database, tmp_path
) -> None:
    events = [ev(f"e{u}-{i}", f"user-{u}", f"item-{i}")
              for u in range(6) for i in ((0, 1, 2) if u < 3 else (3, 4, 5))]
    with db.session() as s:
        store.insert_events(s, events)
    settings = Settings(data_dir=tmp_path, collab_factors=4, collab_iterations=5)
    model_id = train_and_store(db, settings)
    assert model_id is not None
    assert train_and_store(db, settings) is None  # nothing new since
    again = train_and_store(db, settings, force=True)  # a benchmark measuring training
    assert again is not None and again > model_id
    with db.session() as s:
        found = store.load_model_blob(s, model_id)
    assert found is not None
    model = CollabModel.from_bytes(found[0])
    assert sorted(model.item_ids) == [f"item-{k}" for k in range(6)]
    assert found[1] == model.last_seq > 0


def test_a_model_whose_ranker_reads_other_features_is_trained_again_without_new_events(
    db: Database, tmp_path
) -> None:
    """After an upgrade that changed the ranker's features, the stored ranker cannot serve
    (the hand blend does): training must not wait for new events to replace it."""
    from medley.recs import features
    from medley.recs.collab import ranker_names
    from medley.recs.ranker import Ranker

    events = [ev(f"e{u}-{i}", f"user-{u}", f"item-{i}")
              for u in range(6) for i in ((0, 1, 2) if u < 3 else (3, 4, 5))]
    with db.session() as s:
        store.insert_events(s, events)
        last = store.max_seq(s)
    settings = Settings(data_dir=tmp_path, collab_factors=4, collab_iterations=5)
    assert train_and_store(db, settings) is not None
    with db.session() as s:
        latest = store.latest_model_id(s)
        assert latest is not None
        found = store.load_model_blob(s, latest)
        assert found is not None
        old = CollabModel.from_bytes(found[0])
        for names, retrains in ((list(features.NAMES), False), (["collab", "gone"], True)):
            old.ranker = Ranker(names, "tree text")  # as a release before stored it
            blob = old.to_bytes()
            assert ranker_names(blob) == names
            store.save_model(s, blob, last, len(events))
            s.commit()
            assert (train_and_store(db, settings) is not None) == retrains


def test_preferences_and_editorial_round_trip(db: Database) -> None:
    vec = np.arange(4, dtype=np.float32)
    with db.session() as s:
        store.put_preferences(s, "u", liked_items=["item-1"], text="quiet films",
                              text_vector=vec, disliked_tags=["horror"])
    with db.session() as s:
        row = store.get_preferences(s, "u")
        assert row is not None and row.liked_items == ["item-1"]
        assert row.text_vector is not None
        np.testing.assert_array_equal(np.frombuffer(row.text_vector, dtype=np.float32), vec)
        store.put_editorial(s, [{"item_id": "item-2", "position": 0}],
                            [{"tag": "news", "factor": 1.5}])
    with db.session() as s:
        ed = store.get_editorial(s)
        assert ed.pins == [{"item_id": "item-2", "position": 0}]
        assert ed.boosts == [{"tag": "news", "factor": 1.5}]
