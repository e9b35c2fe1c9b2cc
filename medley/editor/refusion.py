"""Re-fusion: every indexed item's fused vector rebuilt from its stored modality vectors under
a profile's weights, written to the index's standby slot in batches, then the switch. No model
runs: the modality vectors are in the database.

The job records a cursor (the last item id written), so a redelivered task carries on where
the previous delivery stopped; writing a batch twice gives the same vectors.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np
from sqlalchemy import select

from index.base import IndexUnavailable, VectorIndex
from medley import fusion_state, indexing, repo
from medley.db import Database
from medley.db.models import Item, utcnow
from medley.domain import Modality
from medley.editor import profiles
from medley.editor.profiles import JobStatus

log = logging.getLogger(__name__)

BATCH = 1000


def write_batch(index: VectorIndex, slot: str, fused: Mapping[str, np.ndarray]
                ) -> dict[str, str]:
    """Write a batch; if the index refuses it, write its items one by one so that one point
    it refuses (an item the index lost, say) is set aside and the rest still switch. An
    index that is down refuses every item: that is raised, and fails the job as before.
    Returns {item id: why} for the items set aside."""
    if not fused:
        return {}
    try:
        index.set_vectors(slot, fused)
        return {}
    except IndexUnavailable:
        raise
    except Exception:
        log.warning("re-fusion batch refused by the index; writing its items one by one")
    refused: dict[str, str] = {}
    for item_id, vector in fused.items():
        try:
            index.set_vectors(slot, {item_id: vector})
        except IndexUnavailable:
            raise
        except Exception as exc:
            log.warning("re-fusion set item %s aside: %r", item_id, exc)
            refused[item_id] = repr(exc)[:300]
    if len(refused) == len(fused) > 1:  # not one record: the index itself is failing
        raise RuntimeError(f"the index refused every item of a batch: "
                           f"{next(iter(refused.values()))}")
    return refused


SET_ASIDE_EXAMPLES = 20


def _noted(before: dict[str, Any] | None, refused: Mapping[str, str]) -> dict[str, Any]:
    examples = list((before or {}).get("examples", []))
    examples += [{"item_id": i, "why": why} for i, why in refused.items()]
    return {"count": int((before or {}).get("count", 0)) + len(refused),
            "examples": examples[:SET_ASIDE_EXAMPLES]}


def run_job(db: Database, index: VectorIndex, dims: Mapping[Modality, int], job_id: str,
            default_weights: Mapping[Modality, float],
            lock: Callable[[], AbstractContextManager[object]] | None = None,
            batch: int = BATCH, timings: dict[str, float] | None = None) -> str:
    """Run (or resume) a re-fusion job; returns its final status. `lock` guards each batch
    against index writes of single items in the same process (see workers.pipeline);
    `timings` (if given) gathers seconds spent reading, fusing and writing."""
    guard = lock or threading.Lock
    spent = timings if timings is not None else {}
    with db.session() as s:
        job = s.get(profiles.FusionJob, job_id)
        if job is None or job.status not in profiles.OPEN:
            return job.status if job else "missing"
        job.status = JobStatus.RUNNING.value
        job.started_at = job.started_at or utcnow()
        weights = fusion_state.weights_of(profiles.get(s, job.profile_id).weights)
        slot, cursor = job.slot, job.cursor
    try:
        while True:
            with guard(), db.session() as s:
                # Walk the primary key; `indexed` is checked here, not in SQL, where it
                # would make SQLite sort the whole table for every batch.
                q = select(Item.id, Item.indexed).order_by(Item.id).limit(batch)
                with _timed(spent, "read_s"):
                    rows = s.execute(q.where(Item.id > cursor) if cursor else q).all()
                    ids = [r.id for r in rows if r.indexed]
                    vectors = repo.vectors_of_items(s, ids)
                if not rows:
                    break
                with _timed(spent, "fuse_s"):
                    fused = indexing.fuse_batch(vectors, ids, weights, dims)
                with _timed(spent, "write_s"):
                    refused = write_batch(index, slot, fused)
                job = profiles.job(s, job_id)
                if job.status != JobStatus.RUNNING.value:
                    return job.status  # failed or superseded meanwhile
                if refused:
                    job.set_aside = _noted(job.set_aside, refused)
                cursor = job.cursor = rows[-1].id
                job.done += len(ids)
                job.total = max(job.total, job.done)  # items indexed since the job began
        with db.session() as s:
            profiles.switch(s, profiles.job(s, job_id))
        return JobStatus.SUCCEEDED.value
    except Exception as exc:
        # The editor sees the failure on the job and in the history, and can publish again;
        # serving never left the active slot.
        log.exception("re-fusion job %s failed", job_id)
        with db.session() as s:
            profiles.fail(s, profiles.job(s, job_id), f"{type(exc).__name__}: {exc}")
        return JobStatus.FAILED.value


@contextmanager
def _timed(spent: dict[str, float], key: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        spent[key] = spent.get(key, 0.0) + time.perf_counter() - started
