"""Per catalog row, what the content map predicts for an item (its collaborative factors and
its engagement), for one model: predicting costs D x f per item, too much to redo for every
candidate of every request, so each row is predicted once per model and kept.

A cache belongs to one model. Serving warms a new model's cache in the background before it
swaps the model in (`RecSync.check_model`); a request that raced the swap and still holds the
previous model gets its predictions computed on the spot, and leaves the cache alone.
"""

from __future__ import annotations

import threading

import numpy as np

from medley.recs.collab import CollabModel
from medley.recs.items import ItemTable

BLOCK = 4096  # rows per matrix product: bounded memory, and the lock held a few ms at a time


class Predicted:
    def __init__(self, model: CollabModel | None = None) -> None:
        self.model = model
        self._done = np.zeros(0, dtype=bool)
        self._factors = np.zeros((0, 0), dtype=np.float32)
        self._engagement = np.zeros(0, dtype=np.float64)
        self._lock = threading.Lock()  # request threads fill rows; growing swaps the arrays

    def forget(self, row: int) -> None:
        """This row's content changed: predict it again when next asked."""
        if row < len(self._done):
            self._done[row] = False

    def get(self, table: ItemTable, model: CollabModel | None, rows: np.ndarray
            ) -> tuple[np.ndarray | None, np.ndarray]:
        """(factors (n, f) or None without a usable map, engagement (n,), NaN where unknown)."""
        cmap = model.content_map if model is not None else None
        layout = [(m.value, int(w)) for m, w in zip(table.modalities, table.widths, strict=True)]
        if cmap is None or not cmap.matches(layout):
            return None, np.full(len(rows), np.nan)
        if model is not self.model:  # not this cache's model: predict, keep nothing
            return cmap.predict(table.units[rows], table.present[rows])
        todo = np.unique(rows[~self._done[rows]]) if len(self._done) >= len(table.ids) \
            else np.unique(rows)
        for start in range(0, len(todo), BLOCK):
            self._fill(table, todo[start : start + BLOCK])
        with self._lock:
            return self._factors[rows], self._engagement[rows]

    def warm(self, table: ItemTable) -> int:
        """Predict every row not predicted yet (background work); returns how many."""
        if self.model is None or self.model.content_map is None:
            return 0
        n = len(table.ids)
        todo = np.flatnonzero(~self._done[:n]) if len(self._done) >= n else np.arange(n)
        for start in range(0, len(todo), BLOCK):
            self._fill(table, todo[start : start + BLOCK])
        return len(todo)

    def set(self, table: ItemTable, rows: np.ndarray, factors: np.ndarray,
            engagement: np.ndarray) -> None:
        """Take these rows' predictions as given (training: out-of-fold values)."""
        with self._lock:
            self._grow(table)
            self._factors[rows], self._engagement[rows] = factors, engagement
            self._done[rows] = True

    def _fill(self, table: ItemTable, rows: np.ndarray) -> None:
        assert self.model is not None and self.model.content_map is not None
        f, e = self.model.content_map.predict(table.units[rows], table.present[rows])
        with self._lock:
            self._grow(table)
            self._factors[rows], self._engagement[rows] = f, e
            self._done[rows] = True

    def _grow(self, table: ItemTable) -> None:
        """Make room for every row of the table (under the lock), keeping what was done."""
        if len(self._done) >= len(table.ids):
            return
        assert self.model is not None and self.model.content_map is not None
        n, f = len(table.units), self.model.content_map.weights.shape[1] - 1
        done, factors, engagement = (np.zeros(n, dtype=bool), np.zeros((n, f), np.float32),
                                     np.zeros(n, dtype=np.float64))
        k = len(self._done)
        if k:
            done[:k], factors[:k], engagement[:k] = self._done, self._factors, self._engagement
        self._done, self._factors, self._engagement = done, factors, engagement
