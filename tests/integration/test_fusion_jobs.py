"""Re-fusion jobs on the real database (SQLite and PostgreSQL) and the embedded index: what a
publish writes, when serving switches, and what a crash or a failure leaves behind."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from benchmarks import refusion as bench
from index.base import FUSED_SLOTS, VectorIndex
from medley import fusion, fusion_state, repo
from medley.db import Database
from medley.db.models import Item
from medley.domain import Modality
from medley.editor import profiles
from medley.editor.refusion import run_job
from medley.errors import Conflict
from medley.fusion_state import Action

ITEMS = 35
SPEECH = {m: 0.0 for m in Modality} | {Modality.SPEECH: 1.0, Modality.TEXT: 0.1}


@pytest.fixture
def cat(database_url: str, tmp_path: Path) -> Iterator[bench.Catalog]:
    from index.edge import EdgeIndex

    db = Database(database_url)
    db.migrate()
    fusion_state.ensure(db, bench.DEFAULT)
    index = EdgeIndex(tmp_path / "index")
    index.ensure({m.value: d for m, d in bench.DIMS.items()}
                 | {s: fusion.fused_dim(bench.DIMS) for s in FUSED_SLOTS})
    bench.seed_catalog(db, index, ITEMS, np.random.default_rng(3))
    yield bench.Catalog(db, index, ITEMS)
    index.close()
    db.dispose()


def start(cat: bench.Catalog, weights: Mapping[Modality, float], action: Action = Action.PUBLISH,
          profile_id: int | None = None) -> tuple[int, str]:
    with cat.db.session() as s:
        if profile_id is None:
            profile_id = profiles.create(s, "p", weights, {}, None, "ana").id
        return profile_id, profiles.start(s, profile_id, action, "ana", bench.DEFAULT).id


def live(cat: bench.Catalog) -> tuple[int, str]:
    with cat.db.session() as s:
        got = fusion_state.serving(s, bench.DEFAULT)
        return got.profile.id, got.slot


class Flaky:
    """The index, failing the n-th batch write with `exc` (and every later one if it stays
    broken)."""

    def __init__(self, index: VectorIndex, fail_at: int, exc: BaseException,
                 stays_broken: bool = False) -> None:
        self.index, self.fail_at, self.exc, self.calls = index, fail_at, exc, 0
        self.stays_broken = stays_broken

    def set_vectors(self, name: str, vectors: Mapping[str, Sequence[float]]) -> None:
        self.calls += 1
        if self.calls == self.fail_at or (self.stays_broken and self.calls > self.fail_at):
            raise self.exc
        self.index.set_vectors(name, vectors)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.index, name)


def test_publish_fills_the_standby_slot_and_then_switches(cat: bench.Catalog) -> None:
    before_id, before_slot = live(cat)
    profile_id, job_id = start(cat, SPEECH)
    with cat.db.session() as s:  # single-item index writes now fill standby the new way
        weights = fusion_state.slot_weights(s, bench.DEFAULT)
    standby = next(x for x in FUSED_SLOTS if x != before_slot)
    assert weights[standby][Modality.SPEECH] == 1.0 and weights[before_slot] == bench.DEFAULT
    assert live(cat) == (before_id, before_slot)  # nothing switched yet

    assert run_job(cat.db, cat.index, bench.DIMS, job_id, bench.DEFAULT, batch=10) == "succeeded"
    assert live(cat) == (profile_id, standby)
    with cat.db.session() as s:
        job = profiles.job(s, job_id)
        assert (job.done, job.total, job.status) == (ITEMS, ITEMS, "succeeded")
        # The slot holds exactly the fusion of the stored vectors under the new weights.
        item_ids = list(s.scalars(select(Item.id)))
        vectors = repo.vectors_of_items(s, item_ids)
    points = {p.id: p for p in cat.index.retrieve(item_ids, with_vectors=True)}
    checked = 0
    for item_id in item_ids:
        want = fusion.fuse(fusion.usable(vectors[item_id], bench.DIMS), SPEECH, bench.DIMS)
        if want is None:  # no speech and no text: nothing weighted
            continue
        got = np.array(points[item_id].vectors[standby])
        assert np.allclose(got / np.linalg.norm(got), want, atol=1e-5)
        checked += 1
    assert checked == ITEMS  # every item has text


def test_a_delivery_stopped_midway_resumes_from_its_cursor(cat: bench.Catalog) -> None:
    profile_id, job_id = start(cat, SPEECH)
    crash = Flaky(cat.index, fail_at=3, exc=KeyboardInterrupt())  # not an Exception: a kill
    with pytest.raises(KeyboardInterrupt):
        run_job(cat.db, crash, bench.DIMS, job_id, bench.DEFAULT, batch=10)  # type: ignore[arg-type]
    with cat.db.session() as s:
        job = profiles.job(s, job_id)
        assert (job.status, job.done) == ("running", 20)
    assert live(cat)[0] != profile_id  # serving never saw a half-made slot
    assert run_job(cat.db, cat.index, bench.DIMS, job_id, bench.DEFAULT, batch=10) == "succeeded"
    with cat.db.session() as s:
        assert profiles.job(s, job_id).done == ITEMS  # no batch counted twice
    assert live(cat)[0] == profile_id


def test_a_failed_job_leaves_serving_alone_and_can_be_published_again(cat: bench.Catalog) -> None:
    before = live(cat)
    profile_id, job_id = start(cat, SPEECH)
    broken = Flaky(cat.index, fail_at=2, exc=RuntimeError("disk on fire"), stays_broken=True)
    assert run_job(cat.db, broken, bench.DIMS, job_id, bench.DEFAULT, batch=10) == "failed"  # type: ignore[arg-type]
    assert live(cat) == before
    with cat.db.session() as s:
        job = profiles.job(s, job_id)
        assert job.error is not None and "disk on fire" in job.error
        assert profiles.history(s, 1)[0][0].action == "fail"
    _, again = start(cat, SPEECH, profile_id=profile_id)
    assert run_job(cat.db, cat.index, bench.DIMS, again, bench.DEFAULT) == "succeeded"
    assert live(cat)[0] == profile_id


def test_an_item_the_index_refuses_is_set_aside_and_the_job_switches(
        cat: bench.Catalog) -> None:
    with cat.db.session() as s:
        lost = sorted(s.scalars(select(Item.id)))[12]
    cat.index.delete([lost])  # the index lost one point the database still calls indexed
    profile_id, job_id = start(cat, SPEECH)
    assert run_job(cat.db, cat.index, bench.DIMS, job_id, bench.DEFAULT, batch=10) == "succeeded"
    assert live(cat)[0] == profile_id  # one record did not hold back the publish
    with cat.db.session() as s:
        job = profiles.job(s, job_id)
        assert job.set_aside is not None and job.set_aside["count"] == 1
        assert job.set_aside["examples"][0]["item_id"] == lost
        assert "No point" in job.set_aside["examples"][0]["why"]
        assert job.done == ITEMS


def test_one_job_at_a_time_and_rollback_only_to_what_was_live(cat: bench.Catalog) -> None:
    default_id, _ = live(cat)
    profile_id, job_id = start(cat, SPEECH)
    with pytest.raises(Conflict, match="still queued"):
        start(cat, bench.DEFAULT)
    run_job(cat.db, cat.index, bench.DIMS, job_id, bench.DEFAULT)
    with pytest.raises(Conflict, match="already live"):
        start(cat, SPEECH, profile_id=profile_id)
    with cat.db.session() as s:
        draft = profiles.create(s, "draft", SPEECH, {}, None, "ana").id
    with pytest.raises(Conflict, match="never published"):
        start(cat, SPEECH, Action.ROLLBACK, profile_id=draft)
    # The default still fills the slot it served from, now on standby: instant.
    _, back = start(cat, bench.DEFAULT, Action.ROLLBACK, profile_id=default_id)
    with cat.db.session() as s:
        assert profiles.job(s, back).status == "succeeded"
    assert live(cat)[0] == default_id
