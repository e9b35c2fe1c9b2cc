"""Embedded index: Qdrant Edge (Qdrant's engine in-process, HNSW). One process per folder."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index.base import (
    PAYLOAD_INDEXES,
    Hit,
    IndexPoint,
    IndexUnavailable,
    Vector,
    Where,
    point_ids,
)


class EdgeIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._shard: Any = None
        # The shard object is shared by the API's threads; serialise writes, let reads run.
        self._write_lock = threading.Lock()

    def ensure(self, dims: Mapping[str, int]) -> None:
        import qdrant_edge as qe

        if self._shard is not None:
            return
        # Every search here finds candidate ids; ranking re-scores them from the serving
        # table's own vectors. So the graph is walked on int8 copies kept in memory (a quarter
        # of the bytes) with no rescoring, and the float originals stay on disk. At 100,000
        # items (`python -m benchmarks serve`): 3.9 -> 1.1 ms per fused query, HNSW build 1,278 ->
        # 291 s, 0.99 of the exact top 100 found. A shard made before this loads with the
        # new config and keeps its data.
        config = qe.EdgeConfig(
            vectors={
                name: qe.EdgeVectorParams(
                    size=dim, distance=qe.Distance.Cosine, on_disk=True,
                    quantization_config=qe.ScalarQuantizationConfig(
                        qe.ScalarType.Int8, quantile=0.99, always_ram=True))
                for name, dim in dims.items()
            }
        )
        try:
            if (self.path / "edge_config.json").exists():
                self._add_missing(dims)
                # Loading with the config validates it against what the shard holds.
                self._shard = qe.EdgeShard.load(str(self.path), config)
            else:
                self.path.mkdir(parents=True, exist_ok=True)
                self._shard = qe.EdgeShard.create(str(self.path), config)
        except Exception as exc:
            raise IndexUnavailable(f"cannot open the embedded index at {self.path}: {exc}") from exc
        self._index_payload()

    def _add_missing(self, dims: Mapping[str, int]) -> None:
        """Named vectors added since the shard was made (the second fused slot) are created
        empty; the items fill them when they are next written or re-fused."""
        import json

        import qdrant_edge as qe

        have = json.loads((self.path / "edge_config.json").read_text()).get("vectors", {})
        missing = {name: dim for name, dim in dims.items() if name not in have}
        if missing:
            shard = qe.EdgeShard.load(str(self.path))
            for name, dim in missing.items():
                shard.update(qe.UpdateOperation.create_dense_vector(name, dim, qe.Distance.Cosine))
            shard.close()

    def _index_payload(self) -> None:
        """Payload indexes on the filter fields: with them the engine plans a filtered search
        (a restrictive filter such as "added in the last 48 h" is answered from the index
        instead of walking the HNSW graph past thousands of non-matching points)."""
        import qdrant_edge as qe

        have = set(self.shard.info().payload_schema)
        kinds = {"keyword": qe.PayloadSchemaType.Keyword, "float": qe.PayloadSchemaType.Float}
        for name, kind in PAYLOAD_INDEXES.items():
            if name not in have:
                with self._write_lock:
                    self.shard.update(qe.UpdateOperation.create_field_index(name, kinds[kind]))

    @property
    def shard(self) -> Any:
        if self._shard is None:
            raise IndexUnavailable("the index is not open")
        return self._shard

    def upsert(self, points: Sequence[IndexPoint]) -> None:
        import qdrant_edge as qe

        ops = [
            qe.Point(p.id, {k: list(map(float, v)) for k, v in p.vectors.items()}, dict(p.payload))
            for p in points
        ]
        with self._write_lock:
            self.shard.update(qe.UpdateOperation.upsert_points(ops))

    def set_vectors(self, name: str, vectors: Mapping[str, Vector]) -> None:
        import qdrant_edge as qe

        ops = [qe.PointVectors(i, {name: _floats(v)}) for i, v in vectors.items()]
        with self._write_lock:
            self.shard.update(qe.UpdateOperation.update_vectors(ops))

    def delete(self, ids: Sequence[str]) -> None:
        import qdrant_edge as qe

        with self._write_lock:
            self.shard.update(qe.UpdateOperation.delete_points(list(ids)))

    def search(
        self, using: str, vector: Sequence[float], limit: int, *, where: Where | None = None,
        with_payload: bool = True,
    ) -> list[Hit]:
        import qdrant_edge as qe

        res = self.shard.query(
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(list(map(float, vector)), using=using),
                filter=_edge_filter(where) if where else None,
                with_payload=with_payload,
                params=qe.SearchParams(quantization=qe.QuantizationSearchParams(rescore=False)),
            )
        )
        return [Hit(str(p.id), float(p.score), p.payload or {}) for p in res]

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[IndexPoint]:
        recs = self.shard.retrieve(list(ids), with_payload=True, with_vector=with_vectors)
        return [
            IndexPoint(str(r.id), dict(r.vector or {}) if with_vectors else {}, r.payload or {})
            for r in recs
        ]

    def count(self) -> int:
        import qdrant_edge as qe

        return int(self.shard.count(qe.CountRequest()))

    def optimize(self) -> None:
        with self._write_lock:
            self.shard.optimize()

    def close(self) -> None:
        if self._shard is not None:
            self._shard.flush()
            self._shard.close()
            self._shard = None


def _edge_filter(where: Where) -> Any:
    import qdrant_edge as qe

    must: list[Any] = []
    must_not: list[Any] = []
    if where.max_age is not None:
        must.append(qe.FieldCondition("age_min", range=qe.RangeFloat(lte=where.max_age)))
    if where.include_tags:
        must.append(qe.FieldCondition("tags", match=qe.MatchAny(sorted(where.include_tags))))
    if where.exclude_tags:
        must_not.append(qe.FieldCondition("tags", match=qe.MatchAny(sorted(where.exclude_tags))))
    if where.published_from is not None or where.published_to is not None:
        rng = qe.RangeFloat(gte=where.published_from, lte=where.published_to)
        must.append(qe.FieldCondition("published_ts", range=rng))
    if excluded := point_ids(where.exclude_ids):
        must_not.append(qe.HasIdCondition(set(excluded)))
    if where.created_from is not None:
        must.append(qe.FieldCondition("created_at", range=qe.RangeFloat(gte=where.created_from)))
    return qe.Filter(must=must or None, must_not=must_not or None)


def _floats(v: Vector) -> list[float]:
    # numpy rows convert in C; plain sequences one float at a time.
    return v.tolist() if isinstance(v, np.ndarray) else list(map(float, v))
