"""The serving process's in-memory view of the catalog: what ranking reads per candidate.

Each item's modality vectors sit as unit blocks in one float16 matrix (half the memory; cosine
error ~1e-3, below any ranking margin). The fused vector is those blocks scaled by the weights
of a `FusionView`, computed per request for the rows it needs: a change of weights is a new
view (one assignment), never a rewrite of the matrix. Taste vectors, diversity and per-modality
contributions are numpy operations instead of index round-trips; ANN search over the whole
catalog stays in the index.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat

import numpy as np

from index.base import FUSED, UNRATED_AGE, Where
from medley import fusion
from medley.domain import Modality

# Elements per torch call in `half_rows`: below ATen's parallel grain (32,768), so each call
# runs on the calling thread. Above it torch hands the copy to its OpenMP pool, whose idle
# threads then spin: 0.6 ms of wall time cost 6.4 ms of CPU per call here, taken from the
# other requests.
_SERIAL_ELEMENTS = 32_000


def half_rows(units: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows of a float16 matrix as float32. numpy converts half floats one element at a time
    (~2.4 ms of CPU for 400 rows of 2,304 here, the largest step of scoring a for-you pool);
    torch's vectorised kernel, called on slices small enough to stay on this thread, takes
    ~0.5 ms. Serving has torch loaded already (the models): no import at request time."""
    rows = np.asarray(rows)
    if rows.ndim != 1 or rows.dtype.kind not in "iu" or units.dtype != np.float16 \
            or units.ndim != 2:
        return units[rows].astype(np.float32)
    import torch  # lazily: only when a table is read

    rows = rows.astype(np.int64, copy=False)
    if len(rows) and rows.min() < 0:  # numpy's meaning of a negative row, which torch lacks
        rows = np.where(rows < 0, rows + len(units), rows)
    source, index = torch.from_numpy(units), torch.from_numpy(rows)
    out = torch.empty((len(rows), units.shape[1]), dtype=torch.float32)
    step = max(1, _SERIAL_ELEMENTS // max(units.shape[1], 1))
    for k in range(0, len(rows), step):
        out[k:k + step] = source.index_select(0, index[k:k + step])
    result: np.ndarray = out.numpy()
    return result


def block_products(units: np.ndarray, scale: np.ndarray, blocks: Sequence[slice],
                   queries: np.ndarray, means: np.ndarray | None = None) -> np.ndarray:
    """Σ_k scale_k · u_k·q_k per row and query: fused rows times queries, without building the
    fused rows. With `means`, each block is centred first, c_k = (u_k - m_k) / |u_k - m_k|;
    per block (u - m)·q / |u - m| = (u·q - m·q) / sqrt(|u|² - 2 u·m + |m|²), so one product
    of the stored rows with the queries and the mean does it, instead of a centred copy of
    every row. A block the row lacks must have scale 0 (its finite term then drops out)."""
    q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    out = np.zeros((len(units), len(q)), dtype=np.float32)
    for k, sl in enumerate(blocks):
        if not scale[:, k].any():  # absent everywhere, or weighted 0: adds nothing
            continue
        block = units[:, sl]
        if means is None:
            out += (block @ q[:, sl].T) * scale[:, k : k + 1]
            continue
        m = np.asarray(means[sl], dtype=np.float32)
        prod = block @ np.vstack([q[:, sl], m]).T  # (n, J + 1): u·q, then u·m
        sq = np.einsum("ij,ij->i", block, block)  # |u|², not assumed 1: half-float rounding
        norms = np.sqrt(np.maximum(sq - 2.0 * prod[:, -1] + float(m @ m), 0.0))
        out += (prod[:, :-1] - q[:, sl] @ m) * (scale[:, k] / np.maximum(norms, 1e-6))[:, None]
    return out


@dataclass(frozen=True)
class ItemInfo:
    title: str
    tags: tuple[str, ...]
    age_min: int | None
    published_ts: float | None
    created_ts: float


@dataclass(frozen=True)
class FusionView:
    """The weights answers fuse with, optional per-surface overrides, and the index's named
    vector that holds item vectors fused with the main weights."""

    weights: Mapping[Modality, float]
    surfaces: Mapping[str, Mapping[Modality, float]] = field(default_factory=dict)
    slot: str = FUSED
    profile_id: int | None = None

    def for_surface(self, surface: str | None) -> Mapping[Modality, float]:
        return self.surfaces.get(surface, self.weights) if surface else self.weights


Vectors = Mapping[Modality, np.ndarray] | np.ndarray | None


class ItemTable:
    def __init__(self, dims: Mapping[Modality, int], capacity: int = 1024,
                 view: FusionView | None = None) -> None:
        self.dims = dict(dims)
        self.layout = fusion.layout(self.dims)
        self.modalities = list(self.layout)
        self.widths = np.array([sl.stop - sl.start for sl in self.layout.values()])
        self.dim = fusion.fused_dim(self.dims)
        # Counts every change answers could show (an item written or removed, another view):
        # answer caches stamp with it (`Recommender.generation`).
        self.version = 0
        self._view = view or FusionView({m: 1.0 for m in self.modalities})
        self.ids: list[str] = []
        self.row: dict[str, int] = {}
        self.info: list[ItemInfo | None] = []
        self.tag_rows: dict[str, set[int]] = {}
        self.units = np.zeros((capacity, self.dim), dtype=np.float16)
        self.present = np.zeros((capacity, len(self.modalities)), dtype=bool)
        # The same as bits (modality k -> 1 << k): "has a counted modality" is one AND per row.
        self.bits = np.zeros(capacity, dtype=np.uint8)
        self.alive = np.zeros(capacity, dtype=bool)
        self.age = np.full(capacity, UNRATED_AGE, dtype=np.int16)
        self.published = np.zeros(capacity, dtype=np.float64)
        self.created = np.zeros(capacity, dtype=np.float64)
        # The version each row was last written at: what a user's nearline entry, found at an
        # older version, has not seen (`changed_since`). Not saved: a mapped row counts as old.
        self.written = np.zeros(capacity, dtype=np.int64)
        # Running sums of each modality's unit blocks over the live items that have it: the
        # catalog mean that centred similarity subtracts stays current as items come and go.
        self._block_sum = np.zeros(self.dim, dtype=np.float64)
        self._block_count = np.zeros(len(self.modalities), dtype=np.int64)
        self.lock = threading.Lock()

    @property
    def view(self) -> FusionView:
        return self._view

    @view.setter
    def view(self, view: FusionView) -> None:
        self._view = view  # one assignment: requests see the old view or the new
        self.version += 1

    def __len__(self) -> int:
        return int(self.alive[: len(self.ids)].sum())

    def viewed(self, view: FusionView) -> ItemTable:
        """The same rows under other weights (shares the arrays; for previews)."""
        other = copy.copy(self)
        other.view = view
        return other

    def adopt(self, ids: list[str], info: list[ItemInfo | None],
              arrays: Mapping[str, np.ndarray], block_sum: np.ndarray,
              block_count: np.ndarray) -> None:
        """Take over a saved table (`table_file.load`) in place of this empty one: the arrays
        as given (mapped from the file, rows beyond `ids` free), the ids and their info."""
        with self.lock:
            assert not self.ids, "only an empty table adopts a saved one"
            for name, arr in arrays.items():
                setattr(self, name, arr)
            self.ids = list(ids)
            self.row = {i: r for r, i in enumerate(self.ids)}
            self.info = list(info)
            self.tag_rows = {}
            for r, i in enumerate(self.info):
                for tag in i.tags if i is not None else ():
                    self.tag_rows.setdefault(tag, set()).add(r)
            self._block_sum = np.asarray(block_sum, dtype=np.float64).copy()
            self._block_count = np.asarray(block_count, dtype=np.int64).copy()
            self.written = np.zeros(len(self.units), dtype=np.int64)
            self.version += 1

    def _grow(self) -> None:
        n = len(self.units) * 2
        for name in ("units", "present", "bits", "alive", "age", "published", "created",
                     "written"):
            old = getattr(self, name)
            new = np.zeros((n, *old.shape[1:]), dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def _blocks(self, vectors: Vectors) -> dict[Modality, np.ndarray]:
        """Per-modality vectors from a mapping, or from a fused vector's blocks."""
        if vectors is None:
            return {}
        if isinstance(vectors, np.ndarray):
            if vectors.shape != (self.dim,):
                return {}
            return {m: vectors[sl] for m, sl in self.layout.items()}
        return fusion.usable(vectors, self.dims)

    def upsert(self, item_id: str, info: ItemInfo, vectors: Vectors) -> None:
        """Add or update an item. `vectors`: its modality vectors, or a fused vector (whose
        non-zero blocks are taken as the modalities it has); None keeps the stored ones."""
        blocks = self._blocks(vectors)
        with self.lock:
            self.version += 1
            r = self.row.get(item_id)
            if r is None:
                if len(self.ids) == len(self.units):
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
            self.written[r] = self.version
            self.alive[r] = True
            self.age[r] = UNRATED_AGE if info.age_min is None else info.age_min
            self.published[r] = info.published_ts or info.created_ts
            self.created[r] = info.created_ts
            if blocks:
                self._count_row(r, -1)
                self.units[r] = 0
                self.present[r] = False
                for k, (m, sl) in enumerate(self.layout.items()):
                    v = blocks.get(m)
                    norm = float(np.linalg.norm(v)) if v is not None else 0.0
                    if v is not None and norm > 0:
                        self.units[r, sl] = v / norm
                        self.present[r, k] = True
                self.bits[r] = sum(1 << k for k in np.flatnonzero(self.present[r]))
                self._count_row(r, +1)

    def remove(self, item_id: str) -> None:
        with self.lock:
            r = self.row.get(item_id)
            if r is not None:
                self.version += 1
                self._count_row(r, -1)
                self.alive[r] = False
                self.present[r] = False
                self.bits[r] = 0

    def _count_row(self, r: int, sign: int) -> None:
        """Add (+1) or take out (-1) row r's blocks from the catalog sums (under the lock)."""
        if not self.alive[r] or not self.present[r].any():
            return
        self._block_sum += sign * self.units[r].astype(np.float64)
        self._block_count += sign * self.present[r]

    def means(self) -> np.ndarray:
        """Per modality, the mean of the live items' unit blocks (the catalog's common
        direction), laid out like a fused vector."""
        out = np.zeros(self.dim, dtype=np.float32)
        for k, sl in enumerate(self.layout.values()):
            if self._block_count[k] > 0:
                out[sl] = self._block_sum[sl] / self._block_count[k]
        return out

    # --- reading ----------------------------------------------------------------------------
    def changed_since(self, version: int) -> np.ndarray:
        """Rows written after the table was at `version` (~0.1 ms at 100k items)."""
        return np.flatnonzero(self.written[: len(self.ids)] > version)

    def get(self, item_id: str) -> ItemInfo | None:
        r = self.row.get(item_id)
        return self.info[r] if r is not None and self.alive[r] else None

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        """Row per id, -1 for an id the table does not know (the lookups mapped in C: a
        generator costs twice as much, and requests call this on every candidate list)."""
        return np.fromiter(map(self.row.get, ids, repeat(-1)), dtype=np.int64, count=len(ids))

    def _weights(self, surface: str | None) -> np.ndarray:
        w = self.view.for_surface(surface)
        return np.array([max(float(w.get(m, 0.0)), 0.0) for m in self.modalities])

    def scales(self, rows: np.ndarray, surface: str | None = None) -> np.ndarray:
        """Per row and modality, sqrt(w / W) where W sums the weights the row has (`fusion`)."""
        p = self.present[rows] * self._weights(surface)
        total = p.sum(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, np.sqrt(p / total), 0.0).astype(np.float32)

    def vectors_of(self, rows: np.ndarray, surface: str | None = None, *,
                   centred: bool = False) -> np.ndarray:
        """Fused vectors of these rows under the view's weights (for a surface, if given).

        `centred`: each modality block minus the catalog mean, renormalised, before fusing.
        Raw sentence embeddings share one large common direction, so short texts sit close to
        everything (hubs); taste is matched on what sets an item apart from the catalog."""
        rows = np.asarray(rows)
        scale = self.scales(rows, surface)
        out = half_rows(self.units, rows)
        means = self.means() if centred else None
        for k, sl in enumerate(self.layout.values()):  # in place: no full-width scale matrix
            if means is not None:
                block = out[..., sl]
                block -= means[sl]
                norms = np.linalg.norm(block, axis=-1, keepdims=True)
                block /= np.maximum(norms, 1e-6)
            out[..., sl] *= scale[..., k : k + 1]
        return out

    def dots(self, rows: np.ndarray, queries: np.ndarray, surface: str | None = None, *,
             centred: bool = False) -> np.ndarray:
        """`vectors_of(rows, surface, centred=centred) @ queries.T` (queries: (J, D) or one
        (D,)), without building the rows' fused vectors (`block_products`): fusing and
        centring a few hundred candidates block by block was the largest step of scoring a
        pool."""
        rows = np.asarray(rows)
        return block_products(half_rows(self.units, rows), self.scales(rows, surface),
                              list(self.layout.values()), queries,
                              self.means() if centred else None)

    def has_vector(self, rows: np.ndarray | int | slice, surface: str | None = None
                   ) -> np.ndarray:
        """Whether these rows have at least one modality the weights count."""
        counted = sum(1 << k for k in np.flatnonzero(self._weights(surface) > 0))
        return np.asarray((self.bits[rows] & counted) != 0)

    def _bounds(self, where: Where) -> list[tuple[np.ndarray, float, float]]:
        """The filter's ranges as (per-row array, lowest, highest) allowed."""
        inf = float("inf")
        out: list[tuple[np.ndarray, float, float]] = []
        if where.max_age is not None:
            out.append((self.age, -inf, float(where.max_age)))
        if where.published_from is not None or where.published_to is not None:
            out.append((self.published, -inf if where.published_from is None
                        else where.published_from,
                        inf if where.published_to is None else where.published_to))
        if where.created_from is not None:
            out.append((self.created, where.created_from, inf))
        return out

    def admits(self, rows: np.ndarray, where: Where | None, *, need_vector: bool = False
               ) -> np.ndarray:
        """`mask(where, need_vector=...)[rows]` for a few rows (-1: no), without the pass over
        every catalog row that `mask` makes (~1 ms at 100k items)."""
        rows = np.asarray(rows, dtype=np.int64)
        ok = (rows >= 0) & (rows < len(self.ids))
        r = np.where(ok, rows, 0)
        ok &= self.alive[r]
        if need_vector:
            ok &= self.has_vector(r)
        if where is None:
            return ok
        for values, lo, hi in self._bounds(where):
            ok &= (values[r] >= lo) & (values[r] <= hi)
        if where.include_tags:
            ok &= np.isin(r, [x for t in where.include_tags for x in self.tag_rows.get(t, ())])
        excluded = [x for t in where.exclude_tags for x in self.tag_rows.get(t, ())]
        excluded += [self.row[i] for i in where.exclude_ids if i in self.row]
        if excluded:
            ok &= ~np.isin(r, excluded)
        return ok

    def mask(self, where: Where | None, *, need_vector: bool = False) -> np.ndarray:
        """Rows that are alive and pass the business filters."""
        n = len(self.ids)
        m = self.alive[:n].copy()
        if need_vector:
            m &= self.has_vector(slice(0, n))
        if where is None:
            return m
        for values, lo, hi in self._bounds(where):
            m &= (values[:n] >= lo) & (values[:n] <= hi)
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
        (small catalogs, offline evaluation, previews, and a stand-in when the index is down)."""
        m = self.mask(where, need_vector=True)
        rows = np.flatnonzero(m)
        if not len(rows) or limit <= 0:
            return []
        if using == FUSED:
            mat = self.vectors_of(rows)
        else:
            k = self.modalities.index(Modality(using))
            rows = rows[self.present[rows, k]]
            mat = half_rows(self.units, rows)[:, self.layout[Modality(using)]]
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
