"""Sends work to the queues; the catalog sees only the `Dispatcher` protocol."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from medley.catalog import DispatchFailed
from medley.domain import Modality
from workers.app import INDEX_QUEUE, QUEUE_OF, TRAIN_QUEUE

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


class CeleryDispatcher:
    def extract(self, item_id: str, modality: Modality) -> None:
        from workers.tasks import extract

        with _broker():
            extract.apply_async((item_id, modality.value), queue=QUEUE_OF[modality])

    def index(self, item_id: str) -> None:
        from workers.tasks import index_item

        with _broker():
            index_item.apply_async((item_id,), queue=INDEX_QUEUE)

    def train(self) -> None:
        from workers.tasks import train_collab

        with _broker():
            train_collab.apply_async(queue=TRAIN_QUEUE)

    def refuse(self, job_id: str) -> None:
        from workers.tasks import refuse

        # The index owner consumes "index": the job writes the index like any item write.
        with _broker():
            refuse.apply_async((job_id,), queue=INDEX_QUEUE)

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


def safely(send: Callable[[], None], what: str) -> bool:
    """Send, logging instead of raising when the broker is away; True when it was taken."""
    try:
        send()
        return True
    except DispatchFailed as exc:
        log.warning("%s not sent (the stale sweep will send it again): %s", what, exc)
        return False
