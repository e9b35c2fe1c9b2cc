"""What the rest of Medley may ask of an index."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

Vector = Sequence[float] | np.ndarray
FUSED = "fused"  # the named vector holding the fused item vector (the first slot)
# Two slots for fused vectors: one serves, the other is re-fused in the background under new
# weights and then takes over (or keeps the previous weights, for an instant rollback).
FUSED_SLOTS = (FUSED, "fused_alt")


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


# Payload fields answers filter on, and their index kinds (both backends create these).
PAYLOAD_INDEXES = {"tags": "keyword", "age_min": "float", "published_ts": "float",
                   "created_at": "float"}
UNRATED_AGE = 99  # payload age_min of an item without a known rating: only unfiltered answers


@dataclass(frozen=True)
class Where:
    """Business filters every answer honours. Payload fields: tags, age_min, published_ts
    (published_at when the content team gave it, else when the item entered the catalog: the
    same rule as `ItemTable.published`, so index and table agree on what is new)."""

    max_age: int | None = None  # age-rating ceiling: the minimum age an item may require
    include_tags: frozenset[str] = frozenset()  # any of these
    exclude_tags: frozenset[str] = frozenset()  # none of these
    published_from: float | None = None  # epoch seconds, inclusive
    published_to: float | None = None
    exclude_ids: frozenset[str] = frozenset()
    created_from: float | None = None  # entered the catalog at or after (payload created_at)

    def but_not(self, ids: set[str] | frozenset[str]) -> Where:
        return replace(self, exclude_ids=self.exclude_ids | frozenset(ids))

    def without_tags(self, tags: frozenset[str]) -> Where:
        return replace(self, exclude_tags=self.exclude_tags | tags)

    def created_since(self, when: float) -> Where:
        return replace(self, created_from=when)

    def published_within(self, start: float, end: float) -> Where:
        """Narrowed to items published in [start, end], inside any range it already had (a
        client's published_after/before stays honoured; disjoint ranges match nothing)."""
        lo = start if self.published_from is None else max(self.published_from, start)
        hi = end if self.published_to is None else min(self.published_to, end)
        return replace(self, published_from=lo, published_to=hi)


def point_ids(ids: frozenset[str] | set[str]) -> list[str]:
    """The ids that can name an index point (item ids are UUIDs), sorted. Any other string
    names no point, so leaving it out of a filter changes nothing; both engines refuse it."""
    out = []
    for i in ids:
        try:
            uuid.UUID(i)
        except ValueError:
            continue
        out.append(i)
    return sorted(out)


class IndexUnavailable(RuntimeError):
    """The index cannot be reached or opened."""


class VectorIndex(Protocol):
    def ensure(self, dims: Mapping[str, int]) -> None:
        """Create the collection with these named vectors (cosine) if it does not exist; add
        named vectors an existing one lacks."""

    def upsert(self, points: Sequence[IndexPoint]) -> None: ...

    def set_vectors(self, name: str, vectors: Mapping[str, Vector]) -> None:
        """Replace one named vector of these existing points, leaving the rest as it is."""

    def delete(self, ids: Sequence[str]) -> None: ...

    def search(
        self,
        using: str,
        vector: Sequence[float],
        limit: int,
        *,
        where: Where | None = None,
        with_payload: bool = True,
    ) -> list[Hit]: ...

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[IndexPoint]: ...

    def count(self) -> int: ...

    def close(self) -> None: ...
