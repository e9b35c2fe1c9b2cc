"""The owner channel between serving processes of one data folder (medley/owner.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.base import Hit, IndexUnavailable, Where
from index.remote import RemoteIndex
from medley import owner
from medley.catalog import DispatchFailed
from medley.domain import Modality
from workers.dispatch import ForwardingDispatcher


class Refused(ValueError):
    pass


def _refuse(x: int) -> int:
    raise Refused(f"no {x}")


def _serve(data_dir: Path, **handlers: object) -> owner.OwnerServer:
    server = owner.OwnerServer(data_dir, handlers)  # type: ignore[arg-type]
    server.start()
    return server


def test_only_one_process_at_a_time_owns_a_folder(tmp_path: Path) -> None:
    first = owner.claim(tmp_path)
    assert first is not None
    assert owner.claim(tmp_path) is None  # taken (flock is per open file, so this counts)
    first.close()  # the owner stops (or dies: the kernel drops its lock)
    again = owner.claim(tmp_path)
    assert again is not None
    again.close()


def test_calls_return_values_and_raise_the_owners_errors(tmp_path: Path) -> None:
    server = _serve(tmp_path, add=lambda a, b=0: a + b, refuse=_refuse)
    client = owner.OwnerClient(tmp_path)
    try:
        assert client.call("add", 2, b=3) == 5
        assert client.call("add", 4) == 4  # the pooled connection, again
        with pytest.raises(Refused, match="no 7"):
            client.call("refuse", 7)
        with pytest.raises(ValueError, match="no operation 'missing'"):
            client.call("missing")
        assert client.call("add", 1, b=1) == 2  # an error leaves the connection usable
    finally:
        client.close()
        server.close()


def test_a_peer_without_its_owner_is_told_so_and_reconnects_after_a_restart(
    tmp_path: Path
) -> None:
    client = owner.OwnerClient(tmp_path, timeout_s=2)
    with pytest.raises(owner.OwnerUnavailable):
        client.call("add", 1)  # nobody has started yet
    server = _serve(tmp_path, add=lambda a: a + 1)
    assert client.call("add", 1) == 2
    server.close()
    with pytest.raises(owner.OwnerUnavailable):
        client.call("add", 1)  # gone
    restarted = _serve(tmp_path, add=lambda a: a + 10)  # a new key, a new socket
    try:
        assert client.call("add", 1) == 11
    finally:
        client.close()
        restarted.close()


def test_a_client_without_the_folders_key_is_refused(tmp_path: Path) -> None:
    server = _serve(tmp_path, add=lambda a: a + 1)
    try:
        (tmp_path / "owner.key").write_bytes(b"not the key")
        with pytest.raises(owner.OwnerUnavailable):
            owner.OwnerClient(tmp_path, timeout_s=2).call("add", 1)
    finally:
        server.close()


class _Index:
    """What the owner holds open, recording what peers asked of it."""

    def __init__(self) -> None:
        self.asked: list[tuple[object, ...]] = []

    def search(self, using: str, vector: list[float], limit: int, *, where: Where | None = None,
               with_payload: bool = True) -> list[Hit]:
        self.asked.append((using, tuple(vector), limit, where))
        return [Hit("a", 0.9, {"tags": ["x"]})]

    def count(self) -> int:
        return 3


def test_a_peers_index_searches_the_owners_and_falls_back_when_it_is_gone(
    tmp_path: Path
) -> None:
    held = _Index()
    server = _serve(tmp_path, **{"index.search": held.search, "index.count": held.count})
    index = RemoteIndex(owner.OwnerClient(tmp_path, timeout_s=2).call)
    where = Where(include_tags=frozenset({"x"}))
    assert index.search("fused", [0.5, 0.5], 7, where=where) == [Hit("a", 0.9, {"tags": ["x"]})]
    assert held.asked == [("fused", (0.5, 0.5), 7, where)]  # the filter arrives whole
    assert index.count() == 3
    server.close()
    with pytest.raises(IndexUnavailable):  # what answers fall back on, as for a server outage
        index.search("fused", [0.5, 0.5], 7)


def test_a_peers_dispatch_goes_to_the_owners_queue_or_fails_for_the_sweep(
    tmp_path: Path
) -> None:
    sent: list[tuple[str, str]] = []
    server = _serve(tmp_path, **{"dispatch.extract": lambda i, m: sent.append((i, m)),
                                 "dispatch.backlog": lambda q: 4})
    dispatch = ForwardingDispatcher(owner.OwnerClient(tmp_path, timeout_s=2).call)
    dispatch.extract("item-1", Modality.TEXT)
    assert sent == [("item-1", "text")]
    assert dispatch.backlog("text") == 4
    server.close()
    with pytest.raises(DispatchFailed):  # the upload is stored; the owner's sweep re-sends
        dispatch.extract("item-2", Modality.TEXT)
    assert dispatch.backlog("text") is None  # unknown, as for an unreachable broker
