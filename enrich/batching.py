"""Cross-task micro-batching: extraction tasks of one model family that run at the same time
hand their inputs to one batcher, which embeds them together.

A task is one item, so without this twenty queued descriptions go through the text model as
twenty batches of one. Tasks submit an input and wait on its future; the batcher's thread takes
whatever has queued, up to `max_items`, waiting at most `max_wait_s` after the first for more,
and runs the model once. Each task keeps its own status, error, retries and timings. A batch
the model refuses is run again input by input, so one bad input fails only its own item.

Batches form only when several tasks wait at once: the embedded default runs the text queue on
a worker of its own with `MEDLEY_TEXT_WORKER_CONCURRENCY` threads (they mostly wait here), and a
distributed text worker does the same with `--pool threads --concurrency N`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

import numpy as np

log = logging.getLogger(__name__)

T = TypeVar("T")


class MicroBatcher(Generic[T]):
    def __init__(self, name: str, embed: Callable[[Sequence[T]], np.ndarray], *,
                 max_items: int, max_wait_s: float) -> None:
        self.name = name
        self.embed = embed
        self.max_items = max(1, max_items)
        self.max_wait_s = max(0.0, max_wait_s)
        self._queue: queue.SimpleQueue[tuple[T, Future[np.ndarray]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0  # model calls made, and inputs they covered (for the bench)
        self.inputs = 0

    def submit(self, item: T) -> Future[np.ndarray]:
        """The input's embedding row, once its batch has run."""
        self._ensure_thread()
        done: Future[np.ndarray] = Future()
        self._queue.put((item, done))
        return done

    def __call__(self, item: T) -> np.ndarray:
        return self.submit(item).result()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name=f"medley-batch-{self.name}")
                self._thread.start()

    def _take(self) -> list[tuple[T, Future[np.ndarray]]]:
        batch = [self._queue.get()]  # blocks until there is work
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_items:
            left = deadline - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=left) if left > 0 else
                             self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            try:
                self._serve(batch)
            except BaseException as exc:  # never leave a task waiting forever
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise

    def _serve(self, batch: list[tuple[T, Future[Any]]]) -> None:
        inputs = [item for item, _ in batch]
        try:
            rows = self.embed(inputs)
        except Exception:
            if len(batch) == 1:
                raise
            log.info("batch of %d for %s failed; embedding its inputs one by one",
                     len(batch), self.name)
            for item, done in batch:  # one bad input fails only its own task
                try:
                    done.set_result(self.embed([item])[0])
                except Exception as exc:
                    done.set_exception(exc)
            return
        self.batches += 1
        self.inputs += len(batch)
        for k, (_, done) in enumerate(batch):
            done.set_result(rows[k])
