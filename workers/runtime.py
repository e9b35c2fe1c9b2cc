"""What a process holds once: settings, database, media store, models, and (for the index
owner) the open index. Built lazily so importing a task module loads nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from enrich.batching import MicroBatcher
from enrich.registry import Models
from index import VectorIndex, open_index
from medley import fusion_state, indexing
from medley.config import Settings, get_settings
from medley.db import Database
from medley.domain import Modality
from medley.media import MediaStore


@dataclass
class Runtime:
    settings: Settings
    db: Database
    store: MediaStore
    models: Models
    _index: VectorIndex | None = None
    _dims: dict[Modality, int] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _batchers: dict[str, MicroBatcher[Any]] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, index: VectorIndex | None = None) -> Runtime:
        """`index`: one already open elsewhere (a peer process's view of its owner's), used
        as it is instead of opening the configured one."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.resolved_database_url)
        db.migrate()
        fusion_state.ensure(db, settings.fusion_weights)
        return cls(settings, db, MediaStore(settings.media_dir, settings.max_upload_bytes),
                   Models(settings.models, max_media_seconds=settings.max_media_seconds),
                   _index=index)

    @property
    def dims(self) -> dict[Modality, int]:
        if self._dims is None:
            self._dims = self.models.dims()
        return self._dims

    def batcher(self, name: str, embed: Callable[[Sequence[Any]], np.ndarray]
                ) -> MicroBatcher[Any]:
        """The process's batcher for one model family's inputs (made on first use)."""
        with self._lock:
            found = self._batchers.get(name)
            if found is None:
                found = self._batchers[name] = MicroBatcher(
                    name, embed, max_items=self.settings.batch_max_items,
                    max_wait_s=self.settings.batch_max_wait_ms / 1000.0)
            return found

    def index(self) -> VectorIndex:
        """Open the index on first use; only the index owner should call this."""
        with self._lock:
            if self._index is None:
                idx = open_index(self.settings.storage)
                idx.ensure(self.named_dims())
                self._index = idx
            return self._index

    def named_dims(self) -> dict[str, int]:
        """The index's named vectors and their sizes: one per modality, and the fused slots."""
        return indexing.named_dims(self.dims)

    def close(self) -> None:
        with self._lock:
            if self._index is not None:
                self._index.close()
                self._index = None
        self.db.dispose()


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime.build(get_settings())
        return _runtime


def set_runtime(rt: Runtime | None) -> None:
    global _runtime
    with _runtime_lock:
        _runtime = rt
