"""Celery tasks. Ids in; everything else is re-read, so a task is safe to run again."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import task_postrun, task_prerun
from sqlalchemy.exc import OperationalError

from medley.db import writers
from medley.domain import Modality
from workers import pipeline
from workers.app import (
    EXTRACT_TASK,
    INDEX_TASK,
    RE_FUSE_SOFT_TIME_LIMIT_S,
    RE_FUSE_TASK,
    RE_FUSE_TASK_OLD_NAME,
    RE_FUSE_TIME_LIMIT_S,
    TRAIN_TASK,
)
from workers.dispatch import CeleryDispatcher, safely
from workers.runtime import get_runtime

log = logging.getLogger(__name__)

# Worth another try later; everything else is recorded on the item as a failure.
TRANSIENT = (OperationalError, ConnectionError, TimeoutError)


@task_prerun.connect
def _as_background(**_: object) -> None:
    """Every task is background work: on the embedded default its database writes wait for
    the request threads' (`medley.db.writers`). A task thread runs nothing else meanwhile."""
    writers.mark_background(True)


@task_postrun.connect
def _end_background(**_: object) -> None:
    writers.mark_background(False)


@shared_task(
    name=EXTRACT_TASK,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=5,
)
def extract(item_id: str, modality: str) -> None:
    if pipeline.run_extraction(get_runtime(), item_id, Modality(modality)):
        # The result is stored; if the broker is away now, the sweep sends the index write.
        safely(lambda: CeleryDispatcher().index(item_id), f"index write of item {item_id}")


@shared_task(
    name=INDEX_TASK,
    autoretry_for=(*TRANSIENT, pipeline.IndexUnavailable),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=10,
)
def index_item(item_id: str) -> None:
    pipeline.write_index(get_runtime(), item_id)


@shared_task(
    name=TRAIN_TASK,
    autoretry_for=TRANSIENT,
    retry_backoff=5,
    retry_backoff_max=120,
    max_retries=3,
)
def train_collab() -> None:
    """Retrain the model (ALS, content map, ranker) on every event so far (a no-op when nothing
    is new)."""
    from medley.recs.training import train_and_store

    rt = get_runtime()
    train_and_store(rt.db, rt.settings, rt.dims)


RE_FUSE_OPTIONS = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "max_retries": 5,
    "soft_time_limit": RE_FUSE_SOFT_TIME_LIMIT_S,
    "time_limit": RE_FUSE_TIME_LIMIT_S,
}


def _re_fuse(job_id: str) -> None:
    """Re-fuse every item under a profile's weights, then switch serving to them. Resumes from
    the job's cursor when delivered again."""
    pipeline.re_fuse(get_runtime(), job_id)


re_fuse = shared_task(name=RE_FUSE_TASK, **RE_FUSE_OPTIONS)(_re_fuse)
# The same task under its name before this release, so that re-fusion jobs an older version
# queued still run after an upgrade. Remove it in the next release (see workers/app.py).
re_fuse_by_old_name = shared_task(name=RE_FUSE_TASK_OLD_NAME, **RE_FUSE_OPTIONS)(_re_fuse)
