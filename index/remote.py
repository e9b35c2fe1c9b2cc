"""The index another process holds open, called through that process (see medley/owner.py).

A peer serving process cannot open the embedded shard (one process per shard folder), so it
sends each call to the owner with `call(op, *args)`. A connection failure there (a
`ConnectionError`) is an unreachable index here, as a Qdrant server outage would be."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from index.base import Hit, IndexPoint, IndexUnavailable, Vector, Where

# What the owner answers for each operation: its open index's method of the same name.
OPERATIONS = ("ensure", "upsert", "set_vectors", "delete", "search", "retrieve", "count")


class RemoteIndex:
    def __init__(self, call: Callable[..., Any]) -> None:
        self._call = call

    def _send(self, op: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._call(f"index.{op}", *args, **kwargs)
        except ConnectionError as exc:
            raise IndexUnavailable(str(exc)) from exc

    def ensure(self, dims: Mapping[str, int]) -> None:
        self._send("ensure", dict(dims))

    def upsert(self, points: Sequence[IndexPoint]) -> None:
        self._send("upsert", list(points))

    def set_vectors(self, name: str, vectors: Mapping[str, Vector]) -> None:
        self._send("set_vectors", name, dict(vectors))

    def delete(self, ids: Sequence[str]) -> None:
        self._send("delete", list(ids))

    def search(self, using: str, vector: Sequence[float], limit: int, *,
               where: Where | None = None, with_payload: bool = True) -> list[Hit]:
        hits: list[Hit] = self._send("search", using, vector, limit, where=where,
                                     with_payload=with_payload)
        return hits

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[IndexPoint]:
        points: list[IndexPoint] = self._send("retrieve", list(ids), with_vectors=with_vectors)
        return points

    def count(self) -> int:
        return int(self._send("count"))

    def close(self) -> None:
        pass  # the owner's to close
