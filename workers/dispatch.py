"""Sends work to the queues; the catalog sees only the `Dispatcher` protocol."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from medley.catalog import DispatchFailed
from medley.domain import Modality
from workers.app import (
    EXTRACT_TASK,
    INDEX_QUEUE,
    INDEX_TASK,
    QUEUE_OF,
    RE_FUSE_SOFT_TIME_LIMIT_S,
    RE_FUSE_TASK,
    RE_FUSE_TIME_LIMIT_S,
    TRAIN_QUEUE,
    TRAIN_TASK,
)

log = logging.getLogger(__name__)


@contextmanager
def _broker() -> Iterator[None]:
    """Broker failures become DispatchFailed: the caller's state is already in the database,
    so the stale sweep can send the task again once the broker is back."""
    from kombu.exceptions import OperationalError

    try:
        yield
    except (OperationalError, ConnectionError, TimeoutError, OSError) as exc:
        raise DispatchFailed(f"the broker did not take the task: {exc}") from exc


def _send(name: str, args: tuple[Any, ...], **options: Any) -> None:
    """The message `apply_async` on the task sends: results ignored (`task_ignore_result`),
    the task's own time limits if it has any."""
    from celery import current_app

    with _broker():
        current_app.send_task(name, args, ignore_result=True, **options)


class CeleryDispatcher:
    """Sends each task by its name: this module never imports the task module (which imports
    this one), and the API process need not load the workers' code to queue their work."""

    def extract(self, item_id: str, modality: Modality) -> None:
        _send(EXTRACT_TASK, (item_id, modality.value), queue=QUEUE_OF[modality])

    def index(self, item_id: str) -> None:
        _send(INDEX_TASK, (item_id,), queue=INDEX_QUEUE)

    def train(self) -> None:
        _send(TRAIN_TASK, (), queue=TRAIN_QUEUE)

    def re_fuse(self, job_id: str) -> None:
        # The index owner consumes "index": the job writes the index like any item write.
        _send(RE_FUSE_TASK, (job_id,), queue=INDEX_QUEUE,
              soft_time_limit=RE_FUSE_SOFT_TIME_LIMIT_S, time_limit=RE_FUSE_TIME_LIMIT_S)

    def backlog(self, queue: str) -> int | None:
        """Messages waiting in `queue` (not those a worker holds), or None when the broker
        cannot say (unreachable)."""
        from amqp.exceptions import ChannelError
        from celery import current_app

        try:
            with current_app.connection_for_read() as conn:
                # One quick try: the sweep asks again on its next round.
                conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
                try:
                    declared = conn.default_channel.queue_declare(queue=queue, passive=True)
                except ChannelError:
                    return 0  # Redis drops an emptied queue's key: no such queue = empty
                return int(declared.message_count)
        except Exception as exc:
            log.debug("queue %s: backlog unknown: %s", queue, exc)
            return None


class ForwardingDispatcher:
    """A peer serving process's dispatcher (medley/owner.py): the embedded broker lives in
    the owner's memory, so each dispatch is handed to the owner, which sends it as its own.
    An owner that does not answer is a broker that did not take the task."""

    def __init__(self, call: Callable[..., Any]) -> None:
        self._call = call

    def _send(self, op: str, *args: Any) -> Any:
        try:
            return self._call(f"dispatch.{op}", *args)
        except ConnectionError as exc:
            raise DispatchFailed(f"the owner process did not take the task: {exc}") from exc

    def extract(self, item_id: str, modality: Modality) -> None:
        self._send("extract", item_id, modality.value)

    def index(self, item_id: str) -> None:
        self._send("index", item_id)

    def train(self) -> None:
        self._send("train")

    def re_fuse(self, job_id: str) -> None:
        self._send("re_fuse", job_id)

    def backlog(self, queue: str) -> int | None:
        try:
            return self._send("backlog", queue)
        except DispatchFailed:
            return None


def owner_handlers(dispatch: CeleryDispatcher) -> dict[str, Callable[..., Any]]:
    """What the owner answers for `ForwardingDispatcher`."""
    return {"dispatch.extract": lambda item_id, m: dispatch.extract(item_id, Modality(m)),
            "dispatch.index": dispatch.index, "dispatch.train": dispatch.train,
            "dispatch.re_fuse": dispatch.re_fuse, "dispatch.backlog": dispatch.backlog,
            # Re-fusion's name until this release: a peer process still on the older version
            # forwards it under that name during an upgrade. Remove it in the next release.
            "dispatch.refuse": dispatch.re_fuse}


def safely(send: Callable[[], None], what: str) -> bool:
    """Send, logging instead of raising when the broker is away; True when it was taken."""
    try:
        send()
        return True
    except DispatchFailed as exc:
        log.warning("%s not sent (the stale sweep will send it again): %s", what, exc)
        return False
