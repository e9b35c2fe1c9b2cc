"""The Celery application. Queues: `media` (image, video, speech: heavy, GPU-capable workers),
`text` (metadata text), `index` (index writes, consumed by whichever process owns the index),
`train` (scheduled collaborative-model training)."""

from __future__ import annotations

from celery import Celery

from medley.config import Settings
from medley.domain import Modality

MEDIA_QUEUE = "media"
TEXT_QUEUE = "text"
INDEX_QUEUE = "index"
TRAIN_QUEUE = "train"  # scheduled model training (collaborative filtering)
ALL_QUEUES = (MEDIA_QUEUE, TEXT_QUEUE, INDEX_QUEUE, TRAIN_QUEUE)

# Task names. The dispatcher sends tasks by name (workers/dispatch.py), so it never imports the
# task module, which imports it; a worker runs them (workers/tasks.py).
EXTRACT_TASK = "medley.extract"
INDEX_TASK = "medley.index_item"
TRAIN_TASK = "medley.train_collab"
RE_FUSE_TASK = "medley.re_fuse"
# Re-fusion's name until this release ("refuse" reads as "deny"). Messages an older version
# queued under it still run after an upgrade (workers/tasks.py routes it to the same task);
# nothing sends it any more. Remove it in the next release.
RE_FUSE_TASK_OLD_NAME = "medley.refuse"
# Re-fusion's limits, longer than an extraction's: a million items take minutes. A delivery
# stopped by the limit is redelivered and resumes from the job's cursor.
RE_FUSE_SOFT_TIME_LIMIT_S = 3600
RE_FUSE_TIME_LIMIT_S = 3660

QUEUE_OF: dict[Modality, str] = {
    Modality.IMAGE: MEDIA_QUEUE,
    Modality.VIDEO: MEDIA_QUEUE,
    Modality.SPEECH: MEDIA_QUEUE,
    Modality.TEXT: TEXT_QUEUE,
    Modality.CLIP_TEXT: TEXT_QUEUE,
}

def configure(settings: Settings) -> Celery:
    """A Celery app for these settings, made the process default. The tasks are shared tasks,
    so they bind to whichever app is current (tests start several apps in one process)."""
    celery_app = Celery("medley", include=["workers.tasks"], set_as_current=True)
    celery_app.conf.update(
        broker_url=settings.broker_url or "memory://localhost/",
        broker_connection_retry_on_startup=True,
        # A worker outlives a broker restart of any length: it reconnects forever (the default
        # gives up after 100 tries) and keeps running the tasks it holds, whose results land in
        # the database; their acks are lost with the old connection, which is harmless
        # (tasks are idempotent, and the stale sweep re-sends what the broker forgot).
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_ignore_result=True,
        # Late acks + reject on worker loss: a task whose worker dies is delivered again.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit_s,
        task_time_limit=settings.task_time_limit_s,
        task_default_queue=MEDIA_QUEUE,
        task_create_missing_queues=True,
        broker_transport_options=transport_options(settings),
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    celery_app.set_default()
    return celery_app


def transport_options(settings: Settings) -> dict[str, float]:
    options = {"visibility_timeout": float(settings.broker_visibility_timeout_s)}
    if settings.embedded_broker:
        # The in-memory transport polls its queues; at kombu's default interval (1 s) a freed
        # worker slot waited up to a second for its next task (see the setting).
        options["polling_interval"] = settings.embedded_poll_interval_s
    return options
