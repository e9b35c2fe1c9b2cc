"""A Qdrant server through qdrant-client (also its local mode, which tests use as a stand-in)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

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

P = ParamSpec("P")
R = TypeVar("R")


def _reachable(op: Callable[P, R]) -> Callable[P, R]:
    """A server that cannot be reached (refused, timed out, 5xx from a proxy or a restarting
    node) is IndexUnavailable, which answers fall back on and index tasks retry; a 4xx is a
    request this code got wrong, so it stays as it is."""

    @functools.wraps(op)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        try:
            return op(*args, **kwargs)
        except ResponseHandlingException as exc:
            raise IndexUnavailable(f"cannot reach Qdrant: {exc}") from exc
        except UnexpectedResponse as exc:
            if exc.status_code is not None and exc.status_code >= 500:
                raise IndexUnavailable(f"Qdrant answered {exc.status_code}") from exc
            raise

    return call


class QdrantIndex:
    def __init__(self, client: Any, collection: str, *, local: bool = False) -> None:
        self.client = client
        self.collection = collection
        self.local = local  # qdrant-client's local mode: no payload indexes there

    @classmethod
    def connect(cls, url: str, collection: str, api_key: str | None = None) -> QdrantIndex:
        from qdrant_client import QdrantClient

        if url == ":memory:":
            return cls(QdrantClient(location=":memory:"), collection, local=True)
        return cls(QdrantClient(url=url, api_key=api_key, timeout=10), collection)

    def ensure(self, dims: Mapping[str, int]) -> None:
        from qdrant_client import models as qm

        try:
            if self.client.collection_exists(self.collection):
                info = self.client.get_collection(self.collection)
                have = {k: v.size for k, v in (info.config.params.vectors or {}).items()}
                missing = {k: d for k, d in dims.items() if k not in have}
                if missing and all(have.get(k) == d for k, d in dims.items() if k in have):
                    self._add_vectors(missing)
                    have.update(missing)
                if have != dict(dims):
                    raise IndexUnavailable(
                        f"collection {self.collection} holds vectors {have}, "
                        f"the models give {dict(dims)}"
                    )
                return
            # As on the embedded index (`index.edge`): searches find candidate ids that ranking
            # re-scores, so they walk int8 copies held in RAM without rescoring, and the float
            # originals stay on disk.
            self.client.create_collection(
                self.collection,
                vectors_config={
                    name: qm.VectorParams(size=dim, distance=qm.Distance.COSINE, on_disk=True)
                    for name, dim in dims.items()
                },
                quantization_config=qm.ScalarQuantization(scalar=qm.ScalarQuantizationConfig(
                    type=qm.ScalarType.INT8, quantile=0.99, always_ram=True)),
            )
            kinds = {"keyword": qm.PayloadSchemaType.KEYWORD, "float": qm.PayloadSchemaType.FLOAT}
            for name, kind in PAYLOAD_INDEXES.items() if not self.local else ():
                self.client.create_payload_index(self.collection, name, kinds[kind])
        except IndexUnavailable:
            raise
        except Exception as exc:
            raise IndexUnavailable(f"cannot reach Qdrant: {exc}") from exc

    @_reachable
    def upsert(self, points: Sequence[IndexPoint]) -> None:
        from qdrant_client import models as qm

        self.client.upsert(
            self.collection,
            points=[
                qm.PointStruct(
                    id=p.id,
                    vector={k: list(map(float, v)) for k, v in p.vectors.items()},
                    payload=dict(p.payload),
                )
                for p in points
            ],
            wait=True,
        )

    def _add_vectors(self, missing: Mapping[str, int]) -> None:
        """Named vectors added since the collection was made (the second fused slot); the
        items fill them when they are next written or re-fused."""
        from qdrant_client import models as qm

        for name, dim in missing.items():
            config = qm.DenseVectorConfig(size=dim, distance=qm.Distance.COSINE)
            self.client.create_vector_name(self.collection, name,
                                           qm.DenseVectorNameConfig(dense=config))

    @_reachable
    def set_vectors(self, name: str, vectors: Mapping[str, Vector]) -> None:
        from qdrant_client import models as qm

        self.client.update_vectors(
            self.collection,
            points=[qm.PointVectors(id=i, vector={name: _floats(v)})
                    for i, v in vectors.items()],
            wait=True,
        )

    @_reachable
    def delete(self, ids: Sequence[str]) -> None:
        from qdrant_client import models as qm

        self.client.delete(
            self.collection, points_selector=qm.PointIdsList(points=list(ids)), wait=True
        )

    @_reachable
    def search(
        self, using: str, vector: Sequence[float], limit: int, *, where: Where | None = None,
        with_payload: bool = True,
    ) -> list[Hit]:
        from qdrant_client import models as qm

        flt = _qdrant_filter(where) if where else None
        res = self.client.query_points(
            self.collection,
            query=list(map(float, vector)),
            using=using,
            limit=limit,
            query_filter=flt,
            with_payload=with_payload,
            search_params=None if self.local else qm.SearchParams(  # local mode: exact anyway
                quantization=qm.QuantizationSearchParams(rescore=False)),
        )
        return [Hit(_sid(p.id), float(p.score), p.payload or {}) for p in res.points]

    @_reachable
    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[IndexPoint]:
        recs = self.client.retrieve(
            self.collection, ids=list(ids), with_payload=True, with_vectors=with_vectors
        )
        return [
            IndexPoint(_sid(r.id), dict(r.vector or {}) if with_vectors else {}, r.payload or {})
            for r in recs
        ]

    @_reachable
    def count(self) -> int:
        return int(self.client.count(self.collection, exact=True).count)

    def close(self) -> None:
        self.client.close()


def _sid(pid: Any) -> str:
    return str(uuid.UUID(str(pid)))


def _qdrant_filter(where: Where) -> Any:
    from qdrant_client import models as qm

    must: list[Any] = []
    must_not: list[Any] = []
    if where.max_age is not None:
        must.append(qm.FieldCondition(key="age_min", range=qm.Range(lte=where.max_age)))
    if where.include_tags:
        must.append(
            qm.FieldCondition(key="tags", match=qm.MatchAny(any=sorted(where.include_tags)))
        )
    if where.exclude_tags:
        must_not.append(
            qm.FieldCondition(key="tags", match=qm.MatchAny(any=sorted(where.exclude_tags)))
        )
    if where.published_from is not None or where.published_to is not None:
        rng = qm.Range(gte=where.published_from, lte=where.published_to)
        must.append(qm.FieldCondition(key="published_ts", range=rng))
    if excluded := point_ids(where.exclude_ids):
        must_not.append(qm.HasIdCondition(has_id=list(excluded)))
    if where.created_from is not None:
        must.append(qm.FieldCondition(key="created_at", range=qm.Range(gte=where.created_from)))
    return qm.Filter(must=must or None, must_not=must_not or None)


def _floats(v: Vector) -> list[float]:
    # numpy rows convert in C; plain sequences one float at a time.
    return v.tolist() if isinstance(v, np.ndarray) else list(map(float, v))
