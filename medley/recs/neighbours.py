"""Nearline item neighbour lists: each item's content candidates for `similar`, found when the
item is indexed (or changes, or the served fusion view does), so that a `similar` request reads
a list instead of searching the index on the request path.

A list holds the item's nearest items by the index's fused-vector search (the same search the
request made before), as table rows with their cosines. The request still re-scores its
candidates exactly from the table and applies every filter, so a list only decides which
items are considered, as the search did.

Kept current the way an HNSW graph is: an item indexed later is searched once, and it enters
the list of each of its own neighbours whose weakest entry it beats (cosine is symmetric, so
those are the lists it belongs to). A removed item is filtered out at request time. Another
fusion view invalidates every list (they were found on the old fused vectors); until an item's
list is found again its requests search the index as before.
"""

from __future__ import annotations

import logging
import threading
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from index.base import FUSED, IndexUnavailable, Where
from medley.recs.items import ItemTable

# (named vector, query, limit, where) -> [(item_id, cosine)]: the index (`signals.SearchFn`).
Search = Callable[[str, np.ndarray, int, Where | None], list[tuple[str, float]]]
SURFACE = "similar"  # the lists serve `similar`: its query vector is the item's on that surface
EMPTY = -1  # an unused slot in a list

log = logging.getLogger(__name__)


class NeighbourLists:
    """Per table row, up to `k` neighbour rows (best first) and their cosines, found under one
    fusion view (`key`)."""

    def __init__(self, k: int, capacity: int = 1024) -> None:
        self.k = k
        self.key: tuple[int | None, str | None] | None = None
        self.rows = np.full((capacity, k), EMPTY, dtype=np.int32)
        self.scores = np.zeros((capacity, k), dtype=np.float32)
        self.found = np.zeros(capacity, dtype=bool)  # whether row r's list is current
        self.pending: dict[int, None] = {}  # rows to search first (new or changed), in order
        # Rows whose items the index does not hold yet: not searched (not even by the
        # backfill) until `changed` says it does (see `medley.recs.sync.load_items`).
        self.unindexed: set[int] = set()
        self.backfill = 0  # the next row the background fill looks at
        self.version = 0  # moves with every list found or dropped (what a save compares)
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return int(self.found.sum())

    def _fit(self, n: int) -> None:
        if n <= len(self.found):
            return
        size = max(n, 2 * len(self.found))
        rows = np.full((size, self.k), EMPTY, dtype=np.int32)
        scores = np.zeros((size, self.k), dtype=np.float32)
        found = np.zeros(size, dtype=bool)
        rows[: len(self.rows)], scores[: len(self.scores)] = self.rows, self.scores
        found[: len(self.found)] = self.found
        self.rows, self.scores, self.found = rows, scores, found

    def get(self, r: int) -> np.ndarray | None:
        """Row r's neighbour rows, best first; None when its list is not current."""
        if r >= len(self.found) or not self.found[r]:
            return None
        got = self.rows[r]
        return got[got != EMPTY]

    # --- keeping them current ---------------------------------------------------------------
    def serve(self, key: tuple[int | None, str | None]) -> None:
        """Lists under this fusion view only: another view drops them all."""
        with self.lock:
            if key != self.key:
                self.key = key
                self.version += 1
                self.found[:] = False
                self.pending.clear()
                self.backfill = 0

    def changed(self, rows: Iterable[int]) -> None:
        """These rows' vectors are new or changed, and in the index: their lists are searched
        first."""
        with self.lock:
            for r in rows:
                if r < len(self.found):
                    self.found[r] = False
                self.unindexed.discard(int(r))
                self.pending[int(r)] = None

    def not_indexed(self, rows: Iterable[int]) -> None:
        """These rows' items are stored but not in the index yet: a search for their lists
        would miss the items stored beside them, and would be dropped again when the index
        write lands. Until `changed`, their requests search the index as before."""
        with self.lock:
            for r in rows:
                if r < len(self.found):
                    self.found[r] = False
                self.pending.pop(int(r), None)
                self.unindexed.add(int(r))

    def put(self, r: int, rows: np.ndarray, scores: np.ndarray) -> None:
        """Row r's list, and r into the lists it now belongs to (`rows` best first)."""
        with self.lock:
            self._fit(max(r, int(rows.max(initial=0))) + 1)
            n = min(len(rows), self.k)
            self.rows[r] = EMPTY
            self.rows[r, :n], self.scores[r, :n] = rows[:n], scores[:n]
            self.scores[r, n:] = 0.0
            self.found[r] = True
            self.version += 1
            for other, s in zip(rows[:n].tolist(), scores[:n].tolist(), strict=True):
                self._offer(other, r, s)

    def _offer(self, r: int, candidate: int, score: float) -> None:
        """`candidate` into row r's list if that list is current and it beats its weakest."""
        if not self.found[r] or r == candidate:
            return
        mine = self.rows[r]
        if candidate in mine:
            return
        free = np.flatnonzero(mine == EMPTY)
        if len(free):
            at = int(free[0])
        else:
            at = int(np.argmin(self.scores[r]))
            if self.scores[r, at] >= score:
                return
        mine[at], self.scores[r, at] = candidate, score
        live = mine != EMPTY
        order = np.argsort(-np.where(live, self.scores[r], -np.inf), kind="stable")
        self.rows[r], self.scores[r] = mine[order], self.scores[r][order]

    def next_rows(self, table: ItemTable, limit: int) -> list[int]:
        """Up to `limit` rows whose lists to search: changed ones first, then the backfill."""
        with self.lock:
            out: list[int] = []
            while self.pending and len(out) < limit:
                r = next(iter(self.pending))
                del self.pending[r]
                out.append(r)
            # The backfill: the next rows without a current list, found in one array pass
            # (a restart restores nearly all of them: a Python walk over 100k found rows would
            # hold the GIL beside the requests for tens of milliseconds).
            n = len(table.ids)
            if len(out) < limit and self.backfill < n:
                known = np.zeros(n - self.backfill, dtype=bool)
                have = self.found[self.backfill : n]
                known[: len(have)] = have
                if self.unindexed:
                    held = np.fromiter(self.unindexed, dtype=np.int64)
                    held = held[(held >= self.backfill) & (held < n)] - self.backfill
                    known[held] = True
                todo = np.flatnonzero(~known)[: limit - len(out)] + self.backfill
                self.backfill = int(todo[-1]) + 1 if len(todo) == limit - len(out) else n
                out += todo.tolist()
            return out


def view_key(table: ItemTable) -> tuple[int | None, str | None]:
    """What lists are found under: the served fusion profile and its index slot."""
    return table.view.profile_id, table.view.slot


def fill(lists: NeighbourLists, table: ItemTable, search: Search, budget: int) -> int:
    """Search up to `budget` lists (background work: the sync loop's ticks). Returns searches run.
    An item without a vector gets no list; one the index cannot search for stays unfound."""
    lists.serve(view_key(table))
    done = 0
    batch = lists.next_rows(table, budget)
    for at, r in enumerate(batch):
        if r >= len(table.ids) or not table.alive[r] or not table.has_vector(r, SURFACE):
            continue
        item = table.ids[r]
        q = table.vectors_of(np.array([r]), SURFACE)[0]
        try:
            found = search(FUSED, q, lists.k, Where().but_not({item}))
        except IndexUnavailable:
            lists.changed(batch[at:])  # an outage: these are searched once the index answers
            raise
        except Exception:  # this item alone: its requests search the index, as before
            log.exception("neighbour list of item %s not found; skipped", item)
            continue
        done += 1
        rows = table.rows([i for i, _ in found])
        scores = np.array([s for _, s in found], dtype=np.float32)
        keep = rows >= 0
        lists.put(r, rows[keep].astype(np.int32), scores[keep])
    return done


def capture(lists: NeighbourLists, table: ItemTable, stamps: Mapping[str, object]
            ) -> dict[str, np.ndarray]:
    """A copy of the lists to save (`write`), by item id (rows differ between a saved table and
    one rebuilt from the database), with each item's version as loaded (`stamps`: its
    `updated_at`), so that a start takes only the lists of items unchanged since."""
    with lists.lock:
        n = min(len(table.ids), len(lists.found))
        ids = table.ids[:n]
        return {"ids": np.array(ids), "stamps": np.array([str(stamps.get(i)) for i in ids]),
                "rows": lists.rows[:n].copy(), "scores": lists.scores[:n].copy(),
                "found": lists.found[:n].copy(), "key": np.array([str(lists.key)])}


def write(captured: dict[str, np.ndarray], path: Path) -> None:
    """Atomically: a reader finds the old file or the new one."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, ids=captured["ids"], stamps=captured["stamps"], rows=captured["rows"],
                 scores=captured["scores"], found=captured["found"], key=captured["key"])
    tmp.replace(path)


def load(lists: NeighbourLists, table: ItemTable, path: Path, stamps: Mapping[str, object]
         ) -> int:
    """Saved lists for the items this table holds at the version it loaded (`stamps`, as in
    `capture`), if they were found under its view; returns how many lists were taken (they are
    not searched again). A missing or damaged file takes none."""
    key = view_key(table)
    try:
        with np.load(path, allow_pickle=False) as z:
            # Found under another view, or shorter than the lists wanted now (another
            # MEDLEY_CANDIDATES_PER_SOURCE): searched again. Longer ones are cut, best first.
            if str(z["key"][0]) != str(key) or z["rows"].shape[1] < lists.k:
                return 0
            ids, rows, scores, found = (z["ids"], z["rows"][:, : lists.k],
                                        z["scores"][:, : lists.k], z["found"])
            saved_stamps = z["stamps"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return 0  # missing or damaged: every list is searched again
    to_row = table.rows(ids.tolist())  # saved row -> this table's row (-1: gone)
    mapped = np.where(rows >= 0, to_row[np.clip(rows, 0, None)], EMPTY).astype(np.int32)
    lists.serve(key)
    taken = 0
    with lists.lock:
        lists._fit(len(table.ids))
        for saved, r in enumerate(to_row.tolist()):
            if (r < 0 or not found[saved] or not table.alive[r]
                    or str(stamps.get(str(ids[saved]))) != str(saved_stamps[saved])):
                continue
            lists.pending.pop(r, None)
            live = mapped[saved] >= 0
            got, sc = mapped[saved][live], scores[saved][live]
            lists.rows[r] = EMPTY
            lists.rows[r, : len(got)], lists.scores[r, : len(got)] = got, sc
            lists.found[r] = True
            taken += 1
    return taken
