"""The serving item table on disk: a starting serving process maps the catalog's vectors from
one file instead of reading and normalising every item's vectors from the database (11 s of a
28.8 s restart at 100,000 items, `bench/serve.md`), and every serving process on the machine
maps the same file, so the largest part of their state (the half-float unit vectors, 0.46 GB
at 100,000 items) is one copy in the page cache instead of one per process.

The database stays the source of truth: the file carries the `updated_at` of every item as
it was loaded, and the restoring sync (`RecSync.load_items`) reloads each item whose row
differs and drops items the database no longer has. A file of another layout (other vector
sizes, another format) or a damaged one is ignored: the sync then loads from the database.

Layout: a folder per save, `<name>.<stamp>/`, holding `meta.json` (format, layout, rows),
`info.json` (ids, titles, tags, age limits, dates, `updated_at`) and one `.npy` per array;
`<name>` is a small JSON file naming the current folder, replaced atomically. A process that
maps an older folder keeps reading it after a newer save deletes it (the kernel keeps the
pages until the last map goes). Arrays are mapped copy-on-write: an item written afterwards
changes this process's pages only, never the file.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medley.recs.items import ItemInfo, ItemTable

FORMAT = 1
SPARE_ROWS = 1024
ARRAYS = ("units", "present", "bits", "alive", "age", "published", "created")


@dataclass
class Captured:
    """A copy of the table taken on the sync thread (the table's only writer), to be written
    off it."""
    layout: str
    ids: list[str]
    info: list[list[Any] | None]
    updated: list[str | None]
    arrays: dict[str, np.ndarray]
    block_sum: np.ndarray
    block_count: np.ndarray


def layout_of(table: ItemTable) -> str:
    return ",".join(f"{m}:{table.dims[m]}" for m in table.modalities)


def capture(table: ItemTable, updated: Mapping[str, object]) -> Captured:
    """`updated`: each item's `updated_at` as loaded (written as text, compared as text)."""
    with table.lock:
        n = len(table.ids)
        ids = list(table.ids)
        info = [None if i is None else [i.title, list(i.tags), i.age_min, i.published_ts,
                                        i.created_ts] for i in table.info]
        # Spare rows, so that the items that arrive after a restore fill mapped pages
        # instead of growing the arrays (a grown array is a private copy in each process).
        rows = n + max(SPARE_ROWS, n // 8)
        arrays = {}
        for name in ARRAYS:
            live = getattr(table, name)
            arrays[name] = np.zeros((rows, *live.shape[1:]), dtype=live.dtype)
            arrays[name][:n] = live[:n]
        block_sum, block_count = table._block_sum.copy(), table._block_count.copy()
    # Only what is served: an item set aside (not alive) is tried again by the next start.
    stamps = [str(updated[i]) if arrays["alive"][r] and updated.get(i) is not None else None
              for r, i in enumerate(ids)]
    return Captured(layout_of(table), ids, info, stamps, arrays, block_sum, block_count)


def save(captured: Captured, path: Path) -> Path:
    """Write a new folder beside `path`, point `path` at it, delete older folders; returns
    the folder. Raises OSError (a full disk): the caller says so and serves on."""
    folder = path.parent / f"{path.name}.{time.time_ns()}"
    folder.mkdir(parents=True)
    try:
        for name, arr in captured.arrays.items():
            np.save(folder / f"{name}.npy", arr)
        np.save(folder / "block_sum.npy", captured.block_sum)
        np.save(folder / "block_count.npy", captured.block_count)
        (folder / "info.json").write_text(json.dumps(
            {"ids": captured.ids, "info": captured.info, "updated": captured.updated}))
        (folder / "meta.json").write_text(json.dumps(
            {"format": FORMAT, "layout": captured.layout, "rows": len(captured.ids)}))
        pointer = path.parent / f"{path.name}.{os.getpid()}.tmp"
        pointer.write_text(json.dumps({"folder": folder.name}))
        os.replace(pointer, path)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    for old in path.parent.glob(f"{path.name}.*"):
        if old.is_dir() and old.name != folder.name:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def load(path: Path, table: ItemTable) -> dict[str, str] | None:
    """Fill the empty `table` from the current save (vectors mapped, not read); returns each
    item's `updated_at` as saved, or None (nothing loaded) when there is no usable save."""
    try:
        folder = path.parent / json.loads(path.read_text())["folder"]
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("format") != FORMAT or meta.get("layout") != layout_of(table):
            return None
        body = json.loads((folder / "info.json").read_text())
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="c") for name in ARRAYS}
        block_sum = np.load(folder / "block_sum.npy")
        block_count = np.load(folder / "block_count.npy")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    ids, info, updated = body["ids"], body["info"], body["updated"]
    n = int(meta["rows"])
    if not (len(ids) == len(info) == len(updated) == n
            and len({len(a) for a in arrays.values()}) == 1 and len(arrays["units"]) >= n
            and arrays["units"].shape[1:] == (table.dim,)):
        return None
    infos = [None if i is None else ItemInfo(i[0], tuple(i[1]), i[2], i[3], i[4]) for i in info]
    table.adopt(ids, infos, arrays, block_sum, block_count)
    return {i: u for i, u in zip(ids, updated, strict=True) if u is not None}

