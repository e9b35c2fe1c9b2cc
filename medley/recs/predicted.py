"""Per catalog row, what the model's content maps predict for an item, for one model: the ridge
map's collaborative factors and engagement (`content_map`), and CALS's factors and predicted
audience (`cals`). Predicting costs D x f per item, too much to redo for every candidate of
every request, so each row is predicted once per model and kept; a request then scores a new
item with one f-long product against the user's vector.

A cache belongs to one model. Serving warms a new model's cache in the background before it
swaps the model in (`RecSync.check_model`); a request that raced the swap and still holds the
previous model gets its predictions computed on the spot, and leaves the cache alone.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from medley.recs.collab import CollabModel
from medley.recs.items import ItemTable

BLOCK = 4096  # rows per matrix product: bounded memory, and the lock held a few ms at a time
MAPS = ("content_map", "cals")  # the model attributes predicted from


class _Rows:
    """One map's predictions per table row: (factors (n, f), a scalar per row)."""

    def __init__(self) -> None:
        self.done = np.zeros(0, dtype=bool)
        self.factors = np.zeros((0, 0), dtype=np.float32)
        self.value = np.zeros(0, dtype=np.float64)

    def grow(self, n: int, f: int) -> None:
        if len(self.done) >= n:
            return
        done, factors, value = (np.zeros(n, dtype=bool), np.zeros((n, f), np.float32),
                                np.zeros(n, dtype=np.float64))
        k = len(self.done)
        if k:
            done[:k], factors[:k], value[:k] = self.done, self.factors, self.value
        self.done, self.factors, self.value = done, factors, value


class Predicted:
    def __init__(self, model: CollabModel | None = None) -> None:
        self.model = model
        self._rows = {name: _Rows() for name in MAPS}
        self._lock = threading.Lock()  # request threads fill rows; growing swaps the arrays

    def forget(self, row: int) -> None:
        """This row's content changed: predict it again when next asked."""
        for cache in self._rows.values():
            if row < len(cache.done):
                cache.done[row] = False

    def get(self, table: ItemTable, model: CollabModel | None, rows: np.ndarray
            ) -> tuple[np.ndarray | None, np.ndarray]:
        """The ridge map's (factors (n, f) or None without a usable map, engagement (n,),
        NaN where unknown)."""
        return self._get("content_map", table, model, rows)

    def get_cals(self, table: ItemTable, model: CollabModel | None, rows: np.ndarray
                 ) -> tuple[np.ndarray | None, np.ndarray]:
        """CALS's (factors (n, f) or None without a usable map, predicted audience (n,))."""
        return self._get("cals", table, model, rows)

    def _get(self, name: str, table: ItemTable, model: CollabModel | None, rows: np.ndarray
             ) -> tuple[np.ndarray | None, np.ndarray]:
        cmap = _usable(model, name, table)
        if cmap is None:
            return None, np.full(len(rows), np.nan)
        if model is not self.model:  # not this cache's model: predict, keep nothing
            f, v = cmap.predict(table.units[rows], table.present[rows])
            return f, v
        cache = self._rows[name]
        todo = np.unique(rows[~cache.done[rows]]) if len(cache.done) >= len(table.ids) \
            else np.unique(rows)
        for start in range(0, len(todo), BLOCK):
            self._fill(name, table, todo[start : start + BLOCK])
        with self._lock:
            return cache.factors[rows], cache.value[rows]

    def warm(self, table: ItemTable) -> int:
        """Predict every row not predicted yet, for every map the model has (background
        work); returns how many rows were predicted (by the map that predicted the most)."""
        n, most = len(table.ids), 0
        for name in MAPS:
            if _usable(self.model, name, table) is None:
                continue
            cache = self._rows[name]
            todo = np.flatnonzero(~cache.done[:n]) if len(cache.done) >= n else np.arange(n)
            for start in range(0, len(todo), BLOCK):
                self._fill(name, table, todo[start : start + BLOCK])
            most = max(most, len(todo))
        return most

    def set(self, table: ItemTable, rows: np.ndarray, factors: np.ndarray,
            engagement: np.ndarray, name: str = "content_map") -> None:
        """Take these rows' predictions as given (training: out-of-fold values)."""
        with self._lock:
            cache = self._rows[name]
            cache.grow(len(table.units), factors.shape[1])
            cache.factors[rows], cache.value[rows] = factors, engagement
            cache.done[rows] = True

    def _fill(self, name: str, table: ItemTable, rows: np.ndarray) -> None:
        cmap = _usable(self.model, name, table)
        assert cmap is not None
        f, v = cmap.predict(table.units[rows], table.present[rows])
        with self._lock:
            cache = self._rows[name]
            # Room for every row of the table, keeping what was done.
            cache.grow(len(table.units), cmap.weights.shape[1] - 1)
            cache.factors[rows], cache.value[rows] = f, v
            cache.done[rows] = True


def _usable(model: CollabModel | None, name: str, table: ItemTable) -> Any:
    """The model's map `name` if it has one laid out like this table's vectors, else None."""
    cmap = getattr(model, name, None) if model is not None else None
    layout = [(m.value, int(w)) for m, w in zip(table.modalities, table.widths, strict=True)]
    return cmap if cmap is not None and cmap.matches(layout) else None
