"""Sends work to the queues; the catalog sees only the `Dispatcher` protocol."""

from __future__ import annotations

from medley.domain import Modality
from workers.app import INDEX_QUEUE, QUEUE_OF, TRAIN_QUEUE


class CeleryDispatcher:
    def extract(self, item_id: str, modality: Modality) -> None:
        from workers.tasks import extract

        extract.apply_async((item_id, modality.value), queue=QUEUE_OF[modality])

    def index(self, item_id: str) -> None:
        from workers.tasks import index_item

        index_item.apply_async((item_id,), queue=INDEX_QUEUE)

    def train(self) -> None:
        from workers.tasks import train_collab

        train_collab.apply_async(queue=TRAIN_QUEUE)

    def refuse(self, job_id: str) -> None:
        from workers.tasks import refuse

        # The index owner consumes "index": the job writes the index like any item write.
        refuse.apply_async((job_id,), queue=INDEX_QUEUE)
