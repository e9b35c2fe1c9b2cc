"""Nearline neighbour lists on a real database and the embedded index: items stored together (a
bulk import, a burst of uploads) find each other once their index writes land, in whatever
order the serving sync saw their vectors and the index saw their points."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from index.base import FUSED, Where
from medley import repo
from medley.catalog import Catalog, ItemMetadata
from medley.config import Settings
from medley.domain import Modality, ModalityStatus
from medley.recs import neighbours
from medley.recs.behavior import Behavior
from medley.recs.engine import Recommender
from medley.recs.items import ItemTable
from medley.recs.sync import RecSync
from workers.pipeline import write_index
from workers.runtime import Runtime

DIMS = {Modality.TEXT: 4, Modality.CLIP_TEXT: 4}


class Recorder:
    """The broker seam: what the catalog would send is kept, not sent."""

    def extract(self, item_id: str, modality: Modality) -> None: ...

    def index(self, item_id: str) -> None: ...

    def backlog(self, queue: str) -> int | None:
        return 0


@pytest.fixture
def rt(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.build(Settings(data_dir=tmp_path, database_url=database_url))
    runtime._dims = dict(DIMS)  # no model is loaded: the vectors are given
    yield runtime
    runtime.close()
    runtime.db.dispose()


def _stored(rt: Runtime, title: str, vector: list[float]) -> str:
    """An item whose extractions finished (its vectors are in the database), not yet indexed."""
    item = Catalog(rt.db, rt.store, Recorder()).create(
        ItemMetadata.model_validate({"title": title}), {})
    with rt.db.session() as s:
        for m in DIMS:
            rec = repo.modality(s, item.id, m, lock=True)
            assert rec is not None
            repo.start(s, rec)
            repo.finish(s, rec, repo.Outcome(ModalityStatus.READY,
                                             vector=np.array(vector, np.float32)))
    return item.id


def _sync(rt: Runtime) -> RecSync:
    table = ItemTable(dict(DIMS))

    def search(using: str, q: np.ndarray, limit: int, where: Where | None
               ) -> list[tuple[str, float]]:
        slot = table.view.slot if using == FUSED else using
        return [(h.id, h.score) for h in rt.index().search(slot, q.tolist(), limit,
                                                            where=where, with_payload=False)]

    rec = Recommender(rt.settings.ranking, table, Behavior(86400.0, 3600.0), search)
    return RecSync(rt.settings, rt.db, rec)


def _tick(sync: RecSync) -> None:
    sync.load_items()
    neighbours.fill(sync.rec.neighbours, sync.table, sync.rec.search, 100)


def _listed(sync: RecSync, item_id: str) -> set[str] | None:
    got = sync.rec.neighbours.get(sync.table.row[item_id])
    return None if got is None else {sync.table.ids[r] for r in got.tolist()}


def test_items_stored_before_any_index_write_land_in_each_others_lists(rt: Runtime) -> None:
    sync = _sync(rt)
    sync.catch_up()
    ids = [_stored(rt, f"Item {k}", [1.0, 0.1 * k, 0.0, 0.0]) for k in range(4)]
    _tick(sync)  # the sync serves their stored vectors before the index holds any of them
    assert all(sync.table.get(i) is not None for i in ids)

    for i in ids[:2]:  # two index writes land, and the sync ticks between them and the rest
        write_index(rt, i)
    _tick(sync)
    for i in ids[2:]:
        write_index(rt, i)
    _tick(sync)

    for i in ids:
        assert _listed(sync, i) == set(ids) - {i}, i
    # `similar` reads those lists: every other item of the burst is a candidate.
    answer = sync.rec.similar(ids[0], 10, None)
    assert {s.item_id for s in answer.items} == set(ids[1:])
