"""The serving process's in-memory view of the catalog: what ranking reads per candidate.

Fused vectors sit in one float16 matrix (half the memory; cosine error ~1e-3, below any ranking
margin), so taste vectors, diversity and per-modality contributions are numpy operations
instead of index round-trips. ANN search over the whole catalog stays in the index.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from index.base import FUSED, UNRATED_AGE, Where
from medley import fusion
from medley.domain import Modality


@dataclass(frozen=True)
class ItemInfo:
    title: str
    tags: tuple[str, ...]
    age_min: int | None
    published_ts: float | None
    created_ts: float


class ItemTable:
    def __init__(self, dims: Mapping[Modality, int], capacity: int = 1024) -> None:
        self.dims = dict(dims)
        self.layout = fusion.layout(self.dims)
        self.dim = fusion.fused_dim(self.dims)
        self.ids: list[str] = []
        self.row: dict[str, int] = {}
        self.info: list[ItemInfo | None] = []
        self.tag_rows: dict[str, set[int]] = {}
        self.vectors = np.zeros((capacity, self.dim), dtype=np.float16)
        self.has_vector = np.zeros(capacity, dtype=bool)
        self.alive = np.zeros(capacity, dtype=bool)
        self.age = np.full(capacity, UNRATED_AGE, dtype=np.int16)
        self.published = np.zeros(capacity, dtype=np.float64)
        self.created = np.zeros(capacity, dtype=np.float64)
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return int(self.alive[: len(self.ids)].sum())

    def _grow(self) -> None:
        n = len(self.vectors) * 2
        for name in ("vectors", "has_vector", "alive", "age", "published", "created"):
            old = getattr(self, name)
            new = np.zeros((n, *old.shape[1:]), dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def upsert(self, item_id: str, info: ItemInfo, vector: np.ndarray | None) -> None:
        with self.lock:
            r = self.row.get(item_id)
            if r is None:
                if len(self.ids) == len(self.vectors):
                    self._grow()
                r = len(self.ids)
                self.ids.append(item_id)
                self.info.append(None)
                self.row[item_id] = r
            old = self.info[r]
            for tag in old.tags if old else ():
                self.tag_rows.get(tag, set()).discard(r)
            for tag in info.tags:
                self.tag_rows.setdefault(tag, set()).add(r)
            self.info[r] = info
            self.alive[r] = True
            self.age[r] = UNRATED_AGE if info.age_min is None else info.age_min
            self.published[r] = info.published_ts or info.created_ts
            self.created[r] = info.created_ts
            if vector is not None and vector.shape == (self.dim,):
                self.vectors[r] = vector
                self.has_vector[r] = True

    def remove(self, item_id: str) -> None:
        with self.lock:
            r = self.row.get(item_id)
            if r is not None:
                self.alive[r] = False
                self.has_vector[r] = False

    # --- reading ----------------------------------------------------------------------------
    def get(self, item_id: str) -> ItemInfo | None:
        r = self.row.get(item_id)
        return self.info[r] if r is not None and self.alive[r] else None

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        return np.fromiter((self.row.get(i, -1) for i in ids), dtype=np.int64, count=len(ids))

    def vectors_of(self, rows: np.ndarray) -> np.ndarray:
        return self.vectors[rows].astype(np.float32)

    def mask(self, where: Where | None, *, need_vector: bool = False) -> np.ndarray:
        """Rows that are alive and pass the business filters."""
        n = len(self.ids)
        m = self.alive[:n].copy()
        if need_vector:
            m &= self.has_vector[:n]
        if where is None:
            return m
        if where.max_age is not None:
            m &= self.age[:n] <= where.max_age
        if where.published_from is not None:
            m &= self.published[:n] >= where.published_from
        if where.published_to is not None:
            m &= self.published[:n] <= where.published_to
        if where.created_from is not None:
            m &= self.created[:n] >= where.created_from
        if where.include_tags:
            keep = np.zeros(n, dtype=bool)
            for tag in where.include_tags:
                keep[list(self.tag_rows.get(tag, ()))] = True
            m &= keep
        for tag in where.exclude_tags:
            m[list(self.tag_rows.get(tag, ()))] = False
        for item_id in where.exclude_ids:
            r = self.row.get(item_id)
            if r is not None:
                m[r] = False
        return m

    def nearest(
        self, using: str, vector: np.ndarray, limit: int, where: Where | None
    ) -> list[tuple[str, float]]:
        """Exact cosine search over the table, on the fused vector or one modality's block
        (small catalogs, offline evaluation, and a stand-in when the index is down)."""
        m = self.mask(where, need_vector=True)
        rows = np.flatnonzero(m)
        if not len(rows) or limit <= 0:
            return []
        mat = self.vectors_of(rows)
        if using != FUSED:
            mat = mat[:, self.layout[Modality(using)]]
            norms = np.linalg.norm(mat, axis=1)
            keep = norms > 0
            rows, mat = rows[keep], mat[keep] / norms[keep, None]
            if not len(rows):
                return []
        q = vector.astype(np.float32)
        s = mat @ (q / max(float(np.linalg.norm(q)), 1e-9))
        k = min(limit, len(rows))
        part = np.argpartition(-s, k - 1)[:k]
        order = part[np.argsort(-s[part])]
        return [(self.ids[rows[i]], float(s[i])) for i in order]

    def contributions(self, a: np.ndarray, b: np.ndarray) -> dict[Modality, float]:
        """Each modality's share of cos(a, b): the dot product of its two blocks."""
        return {m: float(a[sl] @ b[sl]) for m, sl in self.layout.items()}
