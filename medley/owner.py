"""One serving process owns what only one process may open, and the others call it.

The embedded index (a Qdrant Edge shard) takes a lock on its folder, and the embedded broker
lives in one process's memory. So when several API processes serve one data folder
(`medley serve --workers N`), the first to take `owner.lock` in that folder becomes the
*owner*: it opens the index, runs the in-process worker, the stale sweep and the training
schedule, and answers the other processes (*peers*) over a local socket. A peer keeps its own
serving state (item table, behaviour, answer cache), kept in step from the database like the
owner's, and calls the owner only for what the owner alone holds: index searches and writes,
and dispatches to the embedded queues.

The channel is `multiprocessing.connection` over a Unix socket: pickled (op, args) in,
("ok", value) or ("err", exception) out, authenticated with a key only the data folder's
owner can read. A peer whose owner is away gets `OwnerUnavailable` (a ConnectionError), which
the index turns into `IndexUnavailable`: answers fall back, flagged, until the owner is back.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import secrets
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from multiprocessing import AuthenticationError
from multiprocessing.connection import (
    Client,
    Connection,
    Listener,
    answer_challenge,
    deliver_challenge,
)
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

Handlers = Mapping[str, Callable[..., Any]]
ACCEPT_RETRY_S = 0.5


class OwnerUnavailable(ConnectionError):
    """The owner process is not answering (not started yet, restarting, or gone)."""


def claim(data_dir: Path) -> IO[bytes] | None:
    """Become the owner of `data_dir`: the open lock file (keep it open while owning), or None
    when another process owns it. The lock goes with the process, however it ends."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "owner.lock", "ab")  # noqa: SIM115 - held for the process's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


@contextmanager
def one_at_a_time(data_dir: Path, what: str) -> Iterator[None]:
    """Processes of one data folder take turns here (schema migrations at start-up)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / f"{what}.lock", "ab") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _address(data_dir: Path, name: str) -> str:
    # Unix socket paths are limited to ~107 bytes, and data folders can be deep: the socket
    # lives in the temp folder under a name derived from the data folder.
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return str(Path(tempfile.gettempdir()) / f"medley-{name}-{digest}.sock")


def _key_path(data_dir: Path, name: str) -> Path:
    return data_dir / f"{name}.key"


class OwnerServer:
    """The owner's side: one thread accepts, one thread per peer connection answers. `name`:
    which channel of the data folder ("owner"; "index" for the index process, index/process.py)."""

    def __init__(self, data_dir: Path, handlers: Handlers, name: str = "owner") -> None:
        self.handlers = handlers
        self.address = _address(data_dir, name)
        self._key = secrets.token_bytes(32)
        key_path = _key_path(data_dir, name)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self._key)
        if os.path.exists(self.address):
            os.unlink(self.address)  # a crashed owner's: we hold the lock, so it is stale
        # No authkey here: the handshake runs on each connection's own thread, so a slow or
        # hostile client cannot hold up the accept loop.
        self._listener = Listener(self.address, family="AF_UNIX")
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="medley-owner-accept",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _accept(self) -> None:
        failing: str | None = None
        while not self._closed.is_set():
            try:
                conn = self._listener.accept()
                if self._closed.is_set():
                    conn.close()
                    return
                failing = None
            except OSError as exc:
                if self._closed.is_set():
                    return
                # A failure that repeats (out of file descriptors) is logged once, and the
                # loop backs off instead of spinning; peers meanwhile fall back, flagged.
                if repr(exc) != failing:
                    log.exception("owner channel: accept failed (repeats are not logged)")
                failing = repr(exc)
                self._closed.wait(ACCEPT_RETRY_S)
                continue
            threading.Thread(target=self._answer, args=(conn,), name="medley-owner-peer",
                             daemon=True).start()

    def _answer(self, conn: Connection) -> None:
        try:
            deliver_challenge(conn, self._key)
            answer_challenge(conn, self._key)
            while not self._closed.is_set():
                op, args, kwargs = conn.recv()
                if self._closed.is_set():
                    break  # closing: the peer sees the connection end, as for a stop
                handler = self.handlers.get(op)
                try:
                    if handler is None:
                        raise ValueError(f"owner channel: no operation {op!r}")
                    reply: tuple[str, Any] = ("ok", handler(*args, **kwargs))
                except Exception as exc:  # the peer raises it as its own
                    reply = ("err", exc)
                try:
                    conn.send(reply)
                except Exception:  # an exception that does not pickle: say what it was
                    conn.send(("err", RuntimeError(f"{type(reply[1]).__name__}: {reply[1]}")))
        except (EOFError, OSError):
            pass  # the peer went away
        except AuthenticationError:
            log.warning("owner channel: a connection without this folder's key was refused")
        except Exception:
            log.exception("owner channel: a peer connection failed")
        finally:
            conn.close()

    def close(self) -> None:
        self._closed.set()
        with suppress(OSError), socket.socket(socket.AF_UNIX) as s:
            s.connect(self.address)  # wakes accept(), which closing the listener would not
        self._thread.join(timeout=5)
        self._listener.close()
        with suppress(OSError):
            os.unlink(self.address)


class OwnerClient:
    """A peer's side: calls on pooled connections, one caller at a time on each."""

    def __init__(self, data_dir: Path, timeout_s: float = 10.0, name: str = "owner") -> None:
        self.name = name
        self.address = _address(data_dir, name)
        self._key_path = _key_path(data_dir, name)
        self.timeout_s = timeout_s
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    def _connect(self) -> Connection:
        try:
            key = self._key_path.read_bytes()  # re-read: a restarted owner writes a new one
            return Client(self.address, family="AF_UNIX", authkey=key)
        except (OSError, EOFError, AuthenticationError) as exc:
            raise OwnerUnavailable(f"the {self.name} process is not answering: {exc}") from exc

    def call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            pooled = self._idle.pop() if self._idle else None
        conn = pooled or self._connect()
        try:
            status, value = self._exchange(conn, (op, args, kwargs))
        except OwnerUnavailable:
            if pooled is None:
                raise
            # A pooled connection can outlive its owner (a restart). Every operation on this
            # channel may be sent twice (index writes are upserts, tasks are idempotent), so
            # one fresh try is safe.
            conn = self._connect()
            status, value = self._exchange(conn, (op, args, kwargs))
        with self._lock:
            self._idle.append(conn)
        if status == "err":
            raise value
        return value

    def _exchange(self, conn: Connection, message: tuple[Any, ...]) -> tuple[str, Any]:
        try:
            conn.send(message)
            if not conn.poll(self.timeout_s):
                raise TimeoutError(f"no answer in {self.timeout_s:g} s")
            reply: tuple[str, Any] = conn.recv()
            return reply
        except (OSError, EOFError) as exc:  # TimeoutError is an OSError
            conn.close()
            raise OwnerUnavailable(f"the {self.name} process is not answering: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
