"""Collaborative filtering: implicit-feedback ALS (the `implicit` library), trained by a scheduled
worker task, stored in the database, loaded by serving processes.

A user who arrived after training is folded in from their recent positives with one
least-squares solve against the fixed item factors, so they get collaborative scores at once.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp

    from medley.recs.cals import Cals
    from medley.recs.content_map import ContentMap
    from medley.recs.ranker import Ranker

CONFIDENCE_SCALE = 2.0  # ALS confidence of a user-item pair = scale x summed positive weight


@dataclass
class CollabModel:
    user_ids: list[str]
    item_ids: list[str]
    user_factors: np.ndarray  # float32 (users x f)
    item_factors: np.ndarray  # float32 (items x f)
    regularization: float
    last_seq: int = 0
    # Learned beside the factors, in the same task, and stored in the same blob (one version):
    # content -> factors for items ALS has not seen (the ridge map and CALS, whose user
    # vectors rows follow `user_ids`), and the learned blend.
    content_map: ContentMap | None = None
    ranker: Ranker | None = None
    cals: Cals | None = None
    user_row: dict[str, int] = field(init=False)
    item_row: dict[str, int] = field(init=False)
    unit_items: np.ndarray = field(init=False)
    gram: np.ndarray = field(init=False)
    # Every item's most similar items by factor cosine (rows, cosines), once per model
    # (`find_neighbours`, in the background once the model serves); None: scan per request.
    neighbours: tuple[np.ndarray, np.ndarray] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.user_row = {u: i for i, u in enumerate(self.user_ids)}
        self.item_row = {t: i for i, t in enumerate(self.item_ids)}
        norms = np.linalg.norm(self.item_factors, axis=1, keepdims=True)
        self.unit_items = self.item_factors / np.maximum(norms, 1e-9)
        self.gram = self.item_factors.T @ self.item_factors

    # --- users ----------------------------------------------------------------------------
    def fold_in(self, positives: Iterable[tuple[str, float]]) -> np.ndarray | None:
        """The ALS user step for one user, as `implicit` computes it: (YᵀY + Yᵀ(C-1)Y + λI) x =
        YᵀC·1 over the items the user touched, with confidence C = scale x weight."""
        totals: dict[str, float] = defaultdict(float)  # repeated events add up, as in training
        for item, w in positives:
            totals[item] += w
        rows, conf = [], []
        for item, w in totals.items():
            r = self.item_row.get(item)
            if r is not None and w > 0:
                rows.append(r)
                conf.append(CONFIDENCE_SCALE * w)
        if not rows:
            return None
        y = self.item_factors[rows]
        c = np.asarray(conf, dtype=np.float32)
        a = self.gram + (y.T * (c - 1.0)) @ y + self.regularization * np.eye(y.shape[1])
        return np.linalg.solve(a, (y.T * c).sum(axis=1)).astype(np.float32)

    def cals_user(self, user_id: str) -> np.ndarray | None:
        """The user's stored CALS vector (their whole history as of training), if any."""
        r = self.user_row.get(user_id)
        return None if r is None or self.cals is None else self.cals.user_factors[r]

    def user_vector(self, user_id: str, recent: Iterable[tuple[str, float]]) -> np.ndarray | None:
        r = self.user_row.get(user_id)
        if r is not None:
            return self.user_factors[r]
        return self.fold_in(recent)

    # --- items ----------------------------------------------------------------------------
    def scores(self, user_vec: np.ndarray, items: Sequence[str]) -> np.ndarray:
        """x·y per item; NaN where the model has never seen the item. `user_vec` may be
        (f, k), k user vectors at once: the items are then looked up once, (n, k) out."""
        out = np.full((len(items), *user_vec.shape[1:]), np.nan, dtype=np.float32)
        # one dictionary lookup per item, mapped in C: a Python loop over a few hundred
        # candidates cost more than the product
        rows = np.fromiter(map(self.item_row.get, items, repeat(-1)), dtype=np.int64,
                           count=len(items))
        known = rows >= 0
        if known.any():
            out[known] = self.item_factors[rows[known]] @ user_vec
        return out

    def top_for_user(self, user_vec: np.ndarray, n: int) -> list[str]:
        return [self.item_ids[i] for i, _ in _top(self.item_factors, user_vec, n)]

    def similar_items(self, item: str, n: int) -> list[tuple[str, float]]:
        r = self.item_row.get(item)
        if r is None:
            return []
        found = self.neighbours
        if found is not None and n <= found[0].shape[1]:
            ids = self.item_ids
            return list(zip(map(ids.__getitem__, found[0][r, :n].tolist()),
                            found[1][r, :n].tolist(), strict=True))
        return [(self.item_ids[i], s)
                for i, s in _top(self.unit_items, self.unit_items[r], n, skip=r)]

    def find_neighbours(self, k: int, block: int = 256) -> None:
        """Every item's k most similar items (what `similar_items` scans for per request
        otherwise: 1.3 ms at 100k items), by one matrix product per block of items. Each block's
        scores are (block x items) floats, so `block` bounds the memory (256: 100 MB at 100k)."""
        import torch

        units = torch.from_numpy(np.ascontiguousarray(self.unit_items, dtype=np.float32))
        n = len(units)
        k = min(k, n - 1)
        if k <= 0:
            return
        rows = np.empty((n, k), dtype=np.int32)
        scores = np.empty((n, k), dtype=np.float16)
        for start in range(0, n, block):
            stop = min(start + block, n)
            s = units[start:stop] @ units.T
            s[torch.arange(stop - start), torch.arange(start, stop)] = -torch.inf  # not itself
            values, found = torch.topk(s, k, dim=1)
            rows[start:stop], scores[start:stop] = found.numpy(), values.numpy()
        self.neighbours = (rows, scores)

    def without(self, user_id: str, items: Collection[str] = ()) -> CollabModel:
        """This model less one user's factor row and these items' rows (erasure: what came
        from that user alone goes at once; a retrain refits the rest)."""
        gone = set(items)
        users = [k for k, u in enumerate(self.user_ids) if u != user_id]
        keep = [k for k, i in enumerate(self.item_ids) if i not in gone]
        return CollabModel([self.user_ids[k] for k in users], [self.item_ids[k] for k in keep],
                           self.user_factors[users], self.item_factors[keep],
                           self.regularization, self.last_seq, self.content_map, self.ranker,
                           self.cals.without(users) if self.cals is not None else None)

    # --- storage --------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        meta: dict[str, object] = {"users": self.user_ids, "items": self.item_ids,
                                   "reg": self.regularization, "last_seq": self.last_seq}
        extra: dict[str, np.ndarray] = {}
        if self.content_map is not None:
            meta["map"] = {"layout": self.content_map.layout, "r2": self.content_map.r2}
            extra = {"map_means": self.content_map.means, "map_weights": self.content_map.weights}
        if self.cals is not None:  # absent from blobs stored before CALS existed
            c = self.cals
            meta["cals"] = {"layout": c.layout, "reg": c.regularization}
            extra.update(cals_means=c.means, cals_weights=c.weights, cals_users=c.user_factors,
                         cals_gram=c.gram)
            if c.uclf is not None:
                extra["cals_uclf"] = c.uclf
        if self.ranker is not None:
            extra["ranker"] = np.frombuffer(self.ranker.to_bytes(), dtype=np.uint8)
        arrays = {"user_factors": self.user_factors, "item_factors": self.item_factors,
                  "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **extra}
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> CollabModel:
        from medley.recs.cals import Cals
        from medley.recs.content_map import ContentMap
        from medley.recs.ranker import Ranker

        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            cmap = ranker = None
            if "map" in meta:  # models stored before the map existed have none
                cmap = ContentMap([(m, int(w)) for m, w in meta["map"]["layout"]],
                                  z["map_means"], z["map_weights"], float(meta["map"]["r2"]))
            if "ranker" in z.files:
                ranker = Ranker.from_bytes(z["ranker"].tobytes())
            cals = None
            if "cals" in meta:
                cals = Cals([(m, int(w)) for m, w in meta["cals"]["layout"]], z["cals_means"],
                            z["cals_weights"], z["cals_users"], z["cals_gram"],
                            float(meta["cals"]["reg"]),
                            z["cals_uclf"] if "cals_uclf" in z.files else None)
            return cls(meta["users"], meta["items"], z["user_factors"], z["item_factors"],
                       float(meta["reg"]), int(meta["last_seq"]), cmap, ranker, cals)


def ranker_names(blob: bytes) -> list[str] | None:
    """The features a stored model's ranker was trained on (None: it carries no ranker),
    read without loading the rest of the model."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        if "ranker" not in z.files:
            return None
        return list(json.loads(z["ranker"].tobytes().decode())["names"])


def confidences(interactions: Iterable[tuple[str, str, float]]
                ) -> tuple[list[str], list[str], sp.csr_matrix] | None:
    """(users, items, users x items confidence matrix) as ALS trains on them: per pair,
    CONFIDENCE_SCALE x the summed weight, pairs summing to <= 0 dropped; None without any."""
    import scipy.sparse as sp

    totals: dict[tuple[str, str], float] = defaultdict(float)
    for user, item, w in interactions:
        totals[(user, item)] += w
    pairs = [(u, i, w) for (u, i), w in totals.items() if w > 0]
    if not pairs:
        return None
    users = sorted({u for u, _, _ in pairs})
    items = sorted({i for _, i, _ in pairs})
    urow = {u: k for k, u in enumerate(users)}
    irow = {t: k for k, t in enumerate(items)}
    matrix = sp.csr_matrix(
        (
            np.asarray([CONFIDENCE_SCALE * w for _, _, w in pairs], dtype=np.float32),
            ([urow[u] for u, _, _ in pairs], [irow[i] for _, i, _ in pairs]),
        ),
        shape=(len(users), len(items)),
    )
    return users, items, matrix


def train(
    interactions: Iterable[tuple[str, str, float]],
    *,
    factors: int,
    iterations: int,
    regularization: float,
    last_seq: int = 0,
    seed: int = 0,
) -> CollabModel | None:
    """Fit ALS on (user, item, weight) triples; negative weights cancel positive ones."""
    from implicit.cpu.als import AlternatingLeastSquares

    found = confidences(interactions)
    if found is None:
        return None
    users, items, matrix = found
    from threadpoolctl import threadpool_limits

    # implicit parallelises over users itself; a multi-threaded BLAS underneath it thrashes.
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=factors, iterations=iterations,
                                        regularization=regularization, random_state=seed,
                                        calculate_training_loss=False)
        model.fit(matrix, show_progress=False)
    return CollabModel(users, items, np.asarray(model.user_factors, dtype=np.float32),
                       np.asarray(model.item_factors, dtype=np.float32), regularization, last_seq)


def _top(matrix: np.ndarray, vec: np.ndarray, n: int, skip: int | None = None
         ) -> list[tuple[int, float]]:
    """The n rows of `matrix` with the largest product with `vec`, best first (`skip`: a row
    left out). A scan of every item per request: with torch's matrix-vector product and top-k
    it took 0.80 ms at 75k items against 1.67 ms with numpy's product and argpartition
    (`python -m benchmarks.scan_cost`; the scan reads the whole factor matrix, so it is bound
    by memory; torch's kernels stay on the calling thread at this size). Serving has torch
    loaded already (the models)."""
    import torch  # lazily, as `items.half_rows`

    scores = torch.mv(torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32)),
                      torch.from_numpy(np.ascontiguousarray(vec, dtype=np.float32)))
    if skip is not None:
        scores[skip] = -torch.inf
    n = min(n, len(scores) - (skip is not None))
    if n <= 0:
        return []
    values, rows = torch.topk(scores, n)
    return list(zip(rows.tolist(), values.tolist(), strict=True))
