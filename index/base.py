"""What the rest of Medley may ask of an index."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

FUSED = "fused"  # the named vector holding the fused item vector


@dataclass(frozen=True)
class IndexPoint:
    id: str
    vectors: Mapping[str, Sequence[float]]  # named vectors; a missing name is simply absent
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    payload: Mapping[str, Any]


class IndexUnavailable(RuntimeError):
    """The index cannot be reached or opened."""


class VectorIndex(Protocol):
    def ensure(self, dims: Mapping[str, int]) -> None:
        """Create the collection with these named vectors (cosine) if it does not exist."""

    def upsert(self, points: Sequence[IndexPoint]) -> None: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def search(
        self,
        using: str,
        vector: Sequence[float],
        limit: int,
        *,
        exclude_ids: Sequence[str] = (),
    ) -> list[Hit]: ...

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[IndexPoint]: ...

    def count(self) -> int: ...

    def close(self) -> None: ...
