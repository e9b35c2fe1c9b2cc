"""The behaviour state on disk, so a restarted serving process loads it and tails only the
events after it, instead of replaying the whole events table (57 s of an 81 s start-up at a
million events).

The events table stays the source of truth: a snapshot is a cache of what replaying it gives,
and `RecSync` ignores one whenever in doubt (another format, other half-lives, a damaged file,
an erasure newer than it, another database) and replays.

Format: a JSON header, then the state as pickle (protocol 5) in slices. Only Medley writes and
reads the file, in its own data directory (created 0600), and the state is copied into plain
dicts, lists, tuples and sets first: the reader refuses any class or function a stream names,
so even a planted file cannot run code through it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import io
import itertools
import json
import logging
import math
import os
import pickle
import tempfile
import time
import zlib
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medley.recs.behavior import _STATE, Behavior, DecayedCounter, UserState

log = logging.getLogger(__name__)

MAGIC = b"medley behaviour snapshot\n"
VERSION = 1  # bump when the state's meaning changes without its layout changing
_FIELDS = tuple(f.name for f in dataclasses.fields(UserState))
# What the state held when written: an attribute added to Behavior or a field to UserState
# makes older files unreadable on its own (ignored, replayed), with no version bump to forget.
LAYOUT = f"{','.join(_STATE)}|{','.join(_FIELDS)}"
_HEADER_LEN = 4  # bytes holding the header's length, big-endian
# Values per slice. pickle holds the GIL while it runs, and the state lies scattered in memory
# (~0.3 us a value): slices of a few milliseconds let request threads in between. One Pickler
# writes them all, so its memo still stores each string once (2.5x smaller than without).
_PER_SLICE = 20_000
STALE_TMP_S = 3600.0  # a temporary file this old belongs to no save still running


@dataclass(frozen=True)
class Restored:
    behavior: Behavior  # a fresh object to `Behavior.replace` the live one with
    applied: set[int]  # seqs inside the tail's overlap window that the state already holds
    erasures_seen: int  # the newest erasure notice the state reflects
    model_id: int | None  # the collaborative model served when it was written (for the log)
    events: int  # events folded into it (for the log)


def _half_lives(b: Behavior) -> list[float]:
    return [b._popularity_half_life_s, b._trending_half_life_s]


@dataclass
class Captured:
    """A consistent copy of the state, to be written without the lock (and off the loop)."""
    state: dict[str, Any]
    half_lives_s: list[float]
    erasures_seen: int
    model_id: int | None

    @property
    def last_seq(self) -> int:
        return int(self.state["last_seq"])


def save(behavior: Behavior, applied_seqs: Iterable[int], erasures_seen: int, path: Path,
         model_id: int | None = None) -> int:
    """Write the state to `path` at once; returns the bytes written. Raises OSError (a full
    disk, no permission): the caller decides how loud that is."""
    tmp, size = write(capture(behavior, applied_seqs, erasures_seen, model_id), path)
    publish(tmp, path)
    return size


def capture(behavior: Behavior, applied_seqs: Iterable[int], erasures_seen: int,
            model_id: int | None = None) -> Captured:
    with _no_gc(), behavior.lock:
        # Copied into plain containers under the lock, so that no `apply` or `drop_users`
        # changes the state half-way; requests that read the state wait for the copy only
        # (~0.3-0.5 s at a million events), not for it to be written. The rankings cached
        # in DecayedCounter._top and Behavior._audience_rows stay out: rebuilt on first use.
        state = _copy(behavior)
    state["applied"] = sorted(applied_seqs)
    return Captured(state, _half_lives(behavior), erasures_seen, model_id)


def write(captured: Captured, path: Path) -> tuple[Path, int]:
    """Write a temporary file beside `path` (`publish` renames it into place); returns it and
    its size. Each writer has its own temporary name: concurrent saves, by this process or
    another sharing the data directory, never mix their bytes."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)  # pickling makes few containers: gc stays on
    for part in _slices(captured.state):
        pickler.dump(part)
    del pickler  # its memo of the copy
    payload = buffer.getbuffer()
    header = json.dumps({
        "version": VERSION, "layout": LAYOUT, "half_lives_s": captured.half_lives_s,
        "last_seq": captured.last_seq, "erasures_seen": captured.erasures_seen,
        "model_id": captured.model_id, "saved_at": time.time(),
        "payload_bytes": len(payload), "crc32": zlib.crc32(payload),
    }).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob(f"{path.name}.*.tmp"):  # left by a process killed mid-save
        with contextlib.suppress(OSError):
            if time.time() - old.stat().st_mtime > STALE_TMP_S:
                old.unlink()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + len(header).to_bytes(_HEADER_LEN, "big") + header)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())  # so a crash right after the rename cannot leave an empty file
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(tmp), len(MAGIC) + _HEADER_LEN + len(header) + len(payload)


def publish(tmp: Path, path: Path) -> None:
    """Rename the written file into place: readers see the old file or the new one, never
    half of one (a rename within one folder is atomic)."""
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def load(path: Path, behavior_template: Behavior) -> Restored | None:
    """The state saved at `path`, if it is whole and was folded the way `behavior_template`
    folds (format, half-lives); otherwise None, with a warning, and the caller replays."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("behaviour snapshot %s unreadable (%s): replaying the events", path, exc)
        return None
    try:
        return _parse(data, behavior_template)
    except Exception as exc:  # damaged or foreign: never worth failing start-up over
        log.warning("behaviour snapshot %s ignored (%s): replaying the events", path, exc)
        return None


def discard(path: Path) -> bool:
    """Delete the snapshot and any temporary file a save left or is writing (an erasure: the
    state in them may hold the erased user). A save racing this fails its rename and says so.
    Returns whether anything was there; raises OSError if something could not be deleted."""
    found = False
    for p in [path, *path.parent.glob(f"{path.name}.*.tmp")]:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            found = True
    return found


def _parse(data: bytes, template: Behavior) -> Restored:
    if not data.startswith(MAGIC):
        raise ValueError("not a behaviour snapshot")
    at = len(MAGIC) + _HEADER_LEN
    size = int.from_bytes(data[len(MAGIC) : at], "big")
    header = json.loads(data[at : at + size])
    if header.get("version") != VERSION or header.get("layout") != LAYOUT:
        raise ValueError(f"format {header.get('version')} ({header.get('layout')}), this "
                         f"process reads {VERSION} ({LAYOUT})")
    saved, wanted = header.get("half_lives_s") or [], _half_lives(template)
    if len(saved) != 2 or not all(math.isclose(a, b) for a, b in zip(saved, wanted, strict=True)):
        raise ValueError(f"folded with half-lives {saved} s, this process with {wanted} s")
    at += size
    payload = memoryview(data)[at:]
    if len(payload) != header["payload_bytes"] or zlib.crc32(payload) != header["crc32"]:
        raise ValueError("truncated or damaged")
    stream = io.BytesIO(data)
    stream.seek(at)
    reader = _PlainUnpickler(stream)
    state: dict[str, Any] = {}
    with _no_gc():
        while stream.tell() < len(data):
            name, sub, values = reader.load()
            target = state if name == "" else state.setdefault(name, {})
            (target if sub is None else target.setdefault(sub, {})).update(values)
        fresh = _restore(template.empty(), state)
    if fresh.last_seq != header["last_seq"]:
        raise ValueError("header and state disagree")
    events = sum(fresh.interactions.values()) + sum(fresh.impressions.values())
    return Restored(fresh, set(state["applied"]), int(header["erasures_seen"]),
                    header.get("model_id"), events)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """No cyclic collections while millions of containers are made: each would walk the whole
    state (nothing here makes cycles, and whatever is garbage is collected after)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # The state is plain containers, which pickle writes without naming any class: a
        # stream that names one was not written by `save`.
        raise pickle.UnpicklingError(f"{module}.{name} in a behaviour snapshot")


def _slices(state: dict[str, Any]) -> Iterator[tuple[str, Any, dict[Any, Any]]]:
    """The state as (name, sub-key, entries): the scalars under name "", then each mapping a
    slice at a time, after an empty slice that makes it exist even when empty."""
    yield "", None, {k: v for k, v in state.items() if not isinstance(v, dict)}
    for name, mapping in state.items():
        if not isinstance(mapping, dict):
            continue
        nested = name == "trending_by_context"  # context -> item -> value
        for sub, entries in (mapping.items() if nested else [(None, mapping)]):
            yield name, sub, {}
            yield from ((name, sub, part) for part in _parts(entries))


def _parts(mapping: dict[Any, Any]) -> Iterator[dict[Any, Any]]:
    if not any(isinstance(v, dict | tuple) for v in itertools.islice(mapping.values(), 1)):
        it = iter(mapping.items())  # one value each: sliced at C speed
        while part := dict(itertools.islice(it, _PER_SLICE)):
            yield part
        return
    chunk: dict[Any, Any] = {}
    size = 0
    for key, value in mapping.items():  # users and co-engagement counts: sized by what they hold
        chunk[key] = value
        size += 1 + (len(value) if isinstance(value, dict) else
                     sum(len(v) for v in value if isinstance(v, list | dict | set)))
        if size >= _PER_SLICE:
            yield chunk
            chunk, size = {}, 0
    if chunk:
        yield chunk


# --- the state as plain values, and back ---------------------------------------------------
def _copy(b: Behavior) -> dict[str, Any]:
    state = {
        "popularity": dict(b.popularity.log),
        "trending": dict(b.trending.log),
        "trending_by_context": {k: dict(c.log) for k, c in b.trending_by_context.items()},
        "interactions": dict(b.interactions),
        "impressions": dict(b.impressions),
        "audience": dict(b.audience),
        "users": {u: _flat(st) for u, st in b.users.items()},
        "cooc": {k: dict(c) for k, c in b.cooc.items()},
        "cooc_after_seq": b.cooc_after_seq,
        "last_seq": b.last_seq,
        "latest_ts": b.latest_ts,
    }
    if state.keys() != set(_STATE):  # a test fails on it long before a deployment would
        raise RuntimeError("Behavior's state changed: snapshot.py must learn the new parts")
    return state


def _restore(b: Behavior, state: dict[str, Any]) -> Behavior:
    b.popularity.log = state["popularity"]
    b.trending.log = state["trending"]
    for key, values in state["trending_by_context"].items():
        counter = b.trending_by_context[key] = DecayedCounter(b._trending_half_life_s)
        counter.log = values
    b.interactions = Counter(state["interactions"])
    b.impressions = Counter(state["impressions"])
    b.audience = Counter(state["audience"])
    b.users = {u: _unflat(values) for u, values in state["users"].items()}
    b.cooc = {k: Counter(c) for k, c in state["cooc"].items()}
    b.cooc_after_seq = state["cooc_after_seq"]
    b.last_seq = state["last_seq"]
    b.latest_ts = state["latest_ts"]
    return b


def _flat(user: UserState) -> tuple[Any, ...]:
    # Copies of the mutable parts (the live ones change after the lock is released).
    values = (getattr(user, name) for name in _FIELDS)
    return tuple(list(v) if isinstance(v, deque) else v.copy() if isinstance(v, dict | set)
                 else v for v in values)


def _unflat(values: tuple[Any, ...]) -> UserState:
    user = UserState()  # its deques carry their maxlen
    for name, value in zip(_FIELDS, values, strict=True):
        current = getattr(user, name)
        if isinstance(current, deque):
            current.extend(value)
        else:
            setattr(user, name, value)
    return user
