"""Keeps a serving process's recommendation state in step with the database: items (and their
fused vectors), the event stream, the newest collaborative model, editorial settings.

Every source of truth is a table, so any number of API processes converge on the same state,
and a restarted one rebuilds it (events are replayed).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from index.base import Where
from medley import dates, erasures, fusion, fusion_state, repo
from medley.config import Settings
from medley.db import Database
from medley.db.models import Item
from medley.domain import Modality, age_min
from medley.recs import neighbours, snapshot, store, table_file, user_lists
from medley.recs.answers import Editorial
from medley.recs.behavior import Behavior
from medley.recs.cache import AnswerCache
from medley.recs.collab import CollabModel
from medley.recs.engine import Recommender
from medley.recs.events import Event
from medley.recs.items import FusionView, ItemInfo, ItemTable
from medley.recs.predicted import Predicted
from medley.recs.signals import Priors
from medley.recs.stated import StatedUsers

log = logging.getLogger(__name__)
Vectors = dict[Modality, np.ndarray]

ITEM_BATCH = 2000
RECONCILE_EVERY_S = 30.0  # full id comparison, catching deletions made by other processes
MODEL_CHECK_EVERY_S = 5.0
SLOW_TICK_S = 1.0
WARM_PRIORS_PER_TICK = 50  # neighbour searches (~1 ms each at 100k items), once a second
REFRESH_PRIORS_PER_TICK = 500  # prior values (~0.1 ms each), once a second
# Items' neighbour lists searched per tick (2.6 ms each at 100k items, bench/serve-lists.md, so
# about half of each second while filling): new and changed items first, within the second they
# arrive unless an import brings more; then the rest of the catalog, about 100k items in 8
# minutes after a first start (the next start restores them from the saved file).
NEIGHBOUR_LISTS_PER_TICK = 200
# Seconds of the slow tick (once a second) spent finding users' nearline candidates (~5 ms a
# user at 100k items): beside requests, and while none came.
USER_LISTS_BUSY_S, USER_LISTS_IDLE_S = 0.1, 0.7
SNAPSHOT_AFTER_REPLAY = 50_000  # events replayed at start-up (~3 s) worth a snapshot at once


def _freeze_heap() -> None:
    # The state built at start-up is millions of long-lived objects (a million events: users,
    # counters, co-engagement). Every full collection walks them all and holds the GIL for
    # hundreds of milliseconds, which requests see as latency spikes. Moved out of the
    # collector's reach here; garbage they turn into later is still freed by reference
    # counting (the state holds no cycles).
    gc.collect()
    gc.freeze()


ITEM_COLUMNS = (Item.id, Item.title, Item.tags, Item.age_rating, Item.published_at,
                Item.created_at, Item.updated_at, Item.indexed)


def with_vectors(s: Session, rows: Sequence[Any], dims: Mapping[Modality, int]
                 ) -> Iterator[tuple[Any, Callable[[], tuple[ItemInfo, Vectors]]]]:
    """Item rows (selected as ITEM_COLUMNS), each with a call that makes what the table holds
    of it (its info and usable modality vectors), read ITEM_BATCH items per query. The call
    is the caller's to make inside its own guard: one row that cannot be read (a date out of
    range, a vector of the wrong size) must not stop the rows after it."""
    for start in range(0, len(rows), ITEM_BATCH):
        chunk = rows[start : start + ITEM_BATCH]
        vectors = repo.vectors_of_items(s, [r.id for r in chunk])
        for r in chunk:
            yield r, partial(_loaded, r, vectors.get(r.id, {}), dims)


def _loaded(r: Any, vectors: Vectors, dims: Mapping[Modality, int]) -> tuple[ItemInfo, Vectors]:
    info = ItemInfo(r.title, tuple(r.tags or ()), age_min(r.age_rating),
                    dates.epoch(r.published_at), dates.epoch(r.created_at) or 0.0)
    return info, fusion.usable(vectors, dims)


def _noting(rows: Iterable[tuple[int, Event]], seqs: deque[int]) -> Iterable[tuple[int, Event]]:
    for seq, ev in rows:
        seqs.append(seq)  # a bounded deque: the newest seqs, for the tail's overlap window
        yield seq, ev


def _read_model(s: Session, model_id: int | None) -> CollabModel | None:
    found = store.load_model_blob(s, model_id) if model_id is not None else None
    return CollabModel.from_bytes(found[0]) if found else None


def _write_beside(what: str, path: Path, write: Callable[[], object]) -> threading.Thread:
    """Run a save on a thread of its own, beside the loop; a failed one is logged (the next
    interval tries again: saves are speed-ups for the next start)."""
    def run() -> None:
        try:
            write()
        except OSError:
            log.exception("%s could not be saved to %s; serving on", what, path)

    thread = threading.Thread(target=run, name=f"medley-save-{path.name}", daemon=True)
    thread.start()
    return thread


class RecSync:
    def __init__(self, settings: Settings, db: Database, rec: Recommender) -> None:
        self.settings = settings
        self.db = db
        self.rec = rec
        self.items_seen_at: datetime | None = None
        self._seen_moved_at = 0.0  # monotonic time the watermark last advanced
        self._loaded_at: dict[str, datetime] = {}  # item -> updated_at as loaded
        self.model_id: int | None = None
        self._applied: set[int] = set()  # seqs inside the tail overlap window
        self._last_reconcile = 0.0
        self._last_model_check = 0.0
        self._last_slow_tick = 0.0
        self.erasures_seen = 0  # the newest erasure notice this process's state reflects
        self._snapshot_at = 0.0  # monotonic time of the last snapshot save (or try)
        self._snapshot_seq = -1  # behavior.last_seq it saved; -1: state changed regardless
        self._snapshot_failing: str | None = None  # the last save's error, logged once
        self._snapshot_writer: threading.Thread | None = None  # a save being written
        # An erasure's delete and a save's rename take turns; a save captured before the
        # erasure (an older epoch) is thrown away instead of renamed into place.
        self._snapshot_lock = threading.Lock()
        self._snapshot_epoch = 0
        self.saves_snapshots = True  # False in a peer process: the owner saves (one writer)
        self._table_saved = -1  # table.version the item table file was saved at
        self._table_saved_at = 0.0  # monotonic time of that save (or try)
        self._table_writer: threading.Thread | None = None
        self._lists_saved = 0  # the neighbour lists' version at the last save (or restore)
        self._lists_saved_at = 0.0  # monotonic time of that save
        self._lists_writer: threading.Thread | None = None
        self.wake = threading.Event()
        self.ready = threading.Event()
        self.answers: AnswerCache | None = None  # the service's, cleared here on erasure
        self.stated = StatedUsers()  # who has preferences or controls to read per request
        self._served_seen = 0  # the recommender's request count at the last slow tick
        self.set_aside: dict[str, str] = {}  # items that cannot be served, with why
        # The loop's own health: since when (monotonic) and why its passes fail; None: fine.
        self.failing_since: float | None = None
        self.failing_why: str | None = None

    @property
    def table(self) -> ItemTable:
        return self.rec.table

    @property
    def behavior(self) -> Behavior:
        return self.rec.behavior

    # --- items ------------------------------------------------------------------------------
    def load_items(self, ids: Iterable[str] | None = None) -> int:
        """(Re)load items changed since the last call (or these ids) into the table."""
        dims = self.table.dims
        n = 0
        with self.db.session() as s:
            q = select(*ITEM_COLUMNS)
            if ids is not None:
                q = q.where(Item.id.in_(list(ids)))
            elif self.items_seen_at is not None:
                # Overlap the watermark for a while: a slow transaction may commit an older
                # timestamp after a newer one was seen.
                overlap = dates.WATERMARK_OVERLAP_S
                recent = time.monotonic() - self._seen_moved_at < 2 * overlap
                since = self.items_seen_at - timedelta(seconds=overlap if recent else 0)
                q = q.where(Item.updated_at > since)
            rows = [r for r in s.execute(q).all() if self._loaded_at.get(r.id) != r.updated_at]
            for r, load in with_vectors(s, rows, dims):
                try:
                    info, usable = load()
                    if self.table.get(r.id) is not None and usable:
                        self.rec.priors.forget(r.id)
                        self.rec.predicted.forget(self.table.row[r.id])
                    self.table.upsert(r.id, info, usable or None)
                    # Its neighbours are searched again, and it enters theirs, once the index
                    # holds it: a search before then would miss the items stored beside it
                    # whose index writes had not landed either (a bulk import), and none of
                    # those lists would ever gain the others. Its index write moves
                    # `updated_at`, so this loop sees that too.
                    if usable and r.indexed:
                        self.rec.neighbours.changed([self.table.row[r.id]])
                    elif usable:
                        self.rec.neighbours.not_indexed([self.table.row[r.id]])
                    self.set_aside.pop(r.id, None)
                    n += 1
                except Exception as exc:
                    self._set_aside(r.id, exc)
                # Loaded or set aside, the row is done with until it changes again; the
                # watermark moves past it either way.
                self._loaded_at[r.id] = r.updated_at
                seen = dates.naive_utc(r.updated_at)
                if self.items_seen_at is None or seen > self.items_seen_at:
                    self.items_seen_at = seen
                    self._seen_moved_at = time.monotonic()
        return n

    def _set_aside(self, item_id: str, exc: Exception) -> None:
        """Out of serving until it changes: an old version of it stays out too, since its
        stored state is no longer what answers would show."""
        log.warning("item %s set aside by the serving sync: %r", item_id, exc)
        self.set_aside[item_id] = f"cannot be loaded for serving: {exc!r}"[:300]
        if self.table.get(item_id) is not None:
            self.table.remove(item_id)

    def reconcile(self) -> None:
        with self.db.session() as s:
            present = set(s.scalars(select(Item.id)))
        for item_id in list(self.table.row):
            if item_id not in present and self.table.get(item_id) is not None:
                self.table.remove(item_id)
                self._loaded_at.pop(item_id, None)
        for item_id in [i for i in self.set_aside if i not in present]:  # deleted since
            del self.set_aside[item_id]

    def restore_items(self) -> int | None:
        """Start-up: map the saved item table (`table_file`), then reload from the database
        only the items whose rows changed since and drop those it no longer has. Returns the
        items restored, or None (nothing usable saved: `load_items` reads them all)."""
        path = self.settings.items_snapshot_file
        if path is None or self.table.ids:
            return None
        saved = table_file.load(path, self.table)
        if saved is None:
            return None
        self._table_saved = self.table.version  # as saved: what changes below is saved later
        with self.db.session() as s:
            current = {r.id: r.updated_at for r in s.execute(select(Item.id, Item.updated_at))}
        for item_id in [i for i in self.table.ids if i not in current]:
            self.table.remove(item_id)
        self._loaded_at = {i: u for i, u in current.items() if saved.get(i) == str(u)}
        stale = [i for i in current if i not in self._loaded_at]
        try:
            for start in range(0, len(stale), ITEM_BATCH):
                self.load_items(stale[start : start + ITEM_BATCH])
        except BaseException:
            # Half caught up: the next try (`catch_up` again) must read every item, not
            # only those past a watermark some of the stale ones are older than.
            self.items_seen_at, self._loaded_at = None, {}
            raise
        if current:
            self.items_seen_at = max(dates.naive_utc(u) for u in current.values())
            self._seen_moved_at = time.monotonic()
        log.info("item table restored from %s: %d items, %d reloaded from the database",
                 path, len(saved), len(stale))
        return len(saved)

    def save_items(self) -> bool:
        """Copy the item table here (the sync is its only writer) and write it beside the
        loop, when it changed since the last save; a failed save is logged and retried after
        the snapshot interval. Returns whether a save was begun."""
        path = self.settings.items_snapshot_file
        if (path is None or not self.saves_snapshots or self.table.version == self._table_saved
                or (self._table_writer is not None and self._table_writer.is_alive())):
            return False
        self._table_saved_at = time.monotonic()
        try:
            captured = table_file.capture(self.table, self._loaded_at)
        except Exception:  # a save is a speed-up: the loop goes on, and tries again later
            log.exception("the item table could not be copied for saving; serving on")
            return False
        self._table_saved = self.table.version
        self._table_writer = _write_beside("the item table", path,
                                           partial(table_file.save, captured, path))
        return True

    @staticmethod
    def neighbours_file(items_file: Path) -> Path:
        return items_file.with_name("neighbours.npz")

    def restore_neighbours(self) -> int:
        """Start-up: the saved neighbour lists of the items loaded at the version they were
        saved at (the others are searched by the ticks)."""
        path = self.settings.items_snapshot_file
        if path is None:
            return 0
        try:
            taken = neighbours.load(self.rec.neighbours, self.table, self.neighbours_file(path),
                                    self._loaded_at)
        except Exception:  # a speed-up only: the ticks search every list instead
            log.exception("saved neighbour lists not restored; searching them again")
            self.rec.neighbours.serve((None, "not restored"))  # drops whatever half-loaded
            return 0
        self._lists_saved = self.rec.neighbours.version  # nothing new to save yet
        return taken

    def save_neighbours(self) -> bool:
        """Copy the neighbour lists here (this loop is their only writer) and write them
        beside it, when lists were found since the last save."""
        path = self.settings.items_snapshot_file
        version = self.rec.neighbours.version
        if (path is None or not self.saves_snapshots or version == self._lists_saved
                or (self._lists_writer is not None and self._lists_writer.is_alive())):
            return False
        self._lists_saved, self._lists_saved_at = version, time.monotonic()
        captured = neighbours.capture(self.rec.neighbours, self.table, self._loaded_at)
        target = self.neighbours_file(path)
        self._lists_writer = _write_beside("the neighbour lists", target,
                                           partial(neighbours.write, captured, target))
        return True

    # --- events -----------------------------------------------------------------------------
    def tail_events(self) -> int:
        start = max(self.behavior.last_seq - store.TAIL_OVERLAP, 0)
        with self.db.session() as s:
            # Sequence numbers first (cheap): the overlap window is almost always all seen.
            unseen = [q for q in store.seqs_after(s, start) if q not in self._applied]
            if not unseen:
                return 0
            fresh: list[tuple[int, Event]] = [
                (seq, ev) for seq, ev in store.events_after(s, min(unseen) - 1)
                if seq not in self._applied
            ]
        n = self.behavior.apply(fresh)
        self.rec.user_lists.changed(dict.fromkeys(ev.user_id for _, ev in fresh))
        self._applied.update(seq for seq, _ in fresh)
        # A row no reader could parse counts as done: otherwise every poll would re-read the
        # tail from it until it left the overlap window.
        self._applied.update(q for q in unseen if q in store.skipped_events)
        floor = self.behavior.last_seq - store.TAIL_OVERLAP
        self._applied = {q for q in self._applied if q > floor}
        return n

    # --- erasures ---------------------------------------------------------------------------
    def apply_erasures(self) -> int:
        """Erasures and resets recorded by any process: drop those users' state at once, then
        rebuild what their deleted events fed (decayed sums cannot be unwound exactly)."""
        with self.db.session() as s:
            notices = erasures.notices_after(s, self.erasures_seen)
            # The same poll, the same session: whose wishes a request reads must not wait for
            # the slow tick either (`medley/recs/stated.py`).
            self.stated.refresh(s)
        if not notices:
            return 0
        self.drop_snapshot()  # the file on disk may hold them: gone before anything else
        hashes = {n.user_hash for n in notices if n.user_hash}
        if hashes:
            self.behavior.drop_users(lambda u: erasures.user_hash(u) in hashes)
        if self.answers is not None:  # nothing derived from them may outlive the erasure
            if all(n.user_hash for n in notices):
                self.answers.forget(lambda u: erasures.user_hash(u) in hashes)
            else:  # a notice past its hash's lifetime: whose it was is unknown
                self.answers.clear()
        if all(n.user_hash for n in notices):  # their nearline candidates, likewise
            self.rec.user_lists.forget(lambda u: erasures.user_hash(u) in hashes)
        else:
            self.rec.user_lists.clear()
        with self.db.session() as s:  # an erased user's id leaves; a reset keeps their wishes
            self.stated.recheck(s, (lambda u: erasures.user_hash(u) in hashes)
                                if all(n.user_hash for n in notices) else None)
        if any(n.rebuild for n in notices):
            self.rebuild()
        self.erasures_seen = notices[-1].id
        return len(notices)

    def rebuild(self) -> None:
        """Replay the event table into fresh state beside the live one, then swap it in with
        the newest stored model (already rewritten without the erased user): the state a
        restart would build. Costs one replay, like start-up; erasures are rare."""
        started = time.perf_counter()
        fresh = self.behavior.empty()
        recent: deque[int] = deque(maxlen=store.TAIL_OVERLAP)
        with self.db.session() as s:
            latest = store.latest_model_id(s)
            model = _read_model(s, latest)
            fresh.cooc_after_seq = model.last_seq if model else 0  # as `check_model` counts
            n = fresh.apply(_noting(store.events_after(s, 0), recent))
        self.behavior.replace(fresh)
        self._applied = {q for q in recent if q > fresh.last_seq - store.TAIL_OVERLAP}
        self.rec.collab, self.model_id = model, latest
        if model is None:  # priors are keyed by the model object; without one, start afresh
            self.rec.priors = Priors(self.settings.prior_neighbours)
        _freeze_heap()
        log.info("recommendation state rebuilt after an erasure: %d events in %.1f s", n,
                 time.perf_counter() - started)

    # --- snapshot of the behaviour state ---------------------------------------------------
    @property
    def snapshot_path(self) -> Path | None:
        """Where this process saves and restores the behaviour state; None: snapshots off."""
        if self.settings.behavior_snapshot_interval_s <= 0:
            return None
        return self.settings.behavior_snapshot_file

    def restore_snapshot(self) -> snapshot.Restored | None:
        """Start from the saved state, if it may stand for a replay; `tail_events` then reads
        only what came after it (from its last_seq, minus the overlap window it recorded)."""
        path = self.snapshot_path
        if path is None or self.behavior.last_seq > 0:  # start-up only, never over live state
            return None
        restored = snapshot.load(path, self.behavior)
        if restored is None:
            return None
        with self.db.session() as s:
            latest_notice = erasures.latest_notice(s)
            since = erasures.notices_after(s, restored.erasures_seen)
            newest_seq = store.max_seq(s)
            has_model = store.latest_model_id(s) is not None
        if any(n.rebuild for n in since):
            # Written before an erasure of someone with events: it may hold their state and
            # what it fed, which must not come back. Replay the table (their events are gone).
            log.info("behaviour snapshot predates an erasure: deleted, replaying the events")
            self.drop_snapshot()
            return None
        if restored.erasures_seen > latest_notice or restored.behavior.last_seq > newest_seq:
            log.warning("behaviour snapshot %s is ahead of this database (another database's?):"
                        " replaying the events", path)
            return None
        if restored.behavior.cooc_after_seq and not has_model:
            # Counted after a model that is gone; a replay counts co-engagement from the start.
            log.info("behaviour snapshot counted co-engagement after a model no longer stored:"
                     " replaying the events")
            return None
        self.behavior.replace(restored.behavior)
        self._applied = restored.applied
        self.erasures_seen = latest_notice
        self._snapshot_seq = restored.behavior.last_seq
        return restored

    def save_snapshot(self, wait: bool = True) -> bool:
        """Save the behaviour state for the next start-up: copied here (under the behaviour
        lock), written here or, without `wait`, by a thread of its own, so the loop goes on
        tailing events meanwhile (seconds at a million events). A failure (a full disk, no
        permission) is logged once and changes nothing else: the next start-up replays what
        no snapshot covers. Returns whether a save was made (or, without `wait`, begun)."""
        path = self.snapshot_path
        if path is None or not self.saves_snapshots or (self._snapshot_writer is not None
                            and self._snapshot_writer.is_alive()):
            return False
        self._snapshot_at = time.monotonic()  # a failing disk is retried after the interval
        try:
            captured = snapshot.capture(self.behavior, self._applied, self.erasures_seen,
                                        self.model_id)
        except Exception as exc:
            self._snapshot_failed(path, exc)
            return False
        if wait:
            return self._write_snapshot(captured, path, self._snapshot_epoch)
        self._snapshot_writer = threading.Thread(
            target=self._write_snapshot, args=(captured, path, self._snapshot_epoch),
            name="medley-behaviour-snapshot", daemon=True)
        self._snapshot_writer.start()
        return True

    def _write_snapshot(self, captured: snapshot.Captured, path: Path, epoch: int) -> bool:
        started = time.perf_counter()
        try:
            tmp, size = snapshot.write(captured, path)
            with self._snapshot_lock:
                if epoch != self._snapshot_epoch:  # an erasure came meanwhile: they may be in it
                    tmp.unlink(missing_ok=True)
                    return False
                snapshot.publish(tmp, path)
                self._snapshot_seq = captured.last_seq
        except Exception as exc:
            self._snapshot_failed(path, exc)
            return False
        self._snapshot_failing = None
        log.info("behaviour snapshot saved: events up to seq %d, %.1f MB in %.1f s",
                 captured.last_seq, size / 1e6, time.perf_counter() - started)
        return True

    def _snapshot_failed(self, path: Path, exc: Exception) -> None:
        if repr(exc) != self._snapshot_failing:
            log.warning("behaviour snapshot not saved to %s (%s); repeats are not logged",
                        path, exc)
        self._snapshot_failing = repr(exc)

    def finish_snapshot(self, timeout: float | None = None) -> None:
        """Wait for a save being written (tests, benchmarks)."""
        if self._snapshot_writer is not None:
            self._snapshot_writer.join(timeout)

    def drop_snapshot(self) -> None:
        """Delete the saved state (an erasure: it may hold the user), and void a save being
        written; the next periodic save writes the state without them."""
        path = self.settings.behavior_snapshot_file  # even with saving off: an older file
        with self._snapshot_lock:
            self._snapshot_epoch += 1
            self._snapshot_seq = -1
            if path is None:
                return
            try:
                if snapshot.discard(path):
                    log.info("behaviour snapshot %s deleted after an erasure", path)
            except OSError:  # start-up still never uses it: it predates the erasure
                log.exception("behaviour snapshot %s could not be deleted after an erasure",
                              path)

    # --- fusion, models and editorial ------------------------------------------------------
    def load_fusion(self) -> bool:
        """Serve the published fusion profile: its weights for the table, its slot for index
        searches, in one assignment (requests see the old view or the new, never a mix)."""
        with self.db.session() as s:
            live = fusion_state.serving(s, self.settings.fusion_weights)
            view = FusionView(fusion_state.weights_of(live.profile.weights),
                              fusion_state.surfaces_of(live.profile.surfaces or {}),
                              live.slot, live.profile.id)
        current = self.table.view
        if (current.profile_id, current.slot) == (view.profile_id, view.slot):
            return False
        self.table.view = view
        log.info("serving fusion profile %s v%s from slot %s", live.profile.name,
                 live.profile.version, live.slot)
        return True

    # --- models and editorial --------------------------------------------------------------
    def check_model(self, warm: bool = True) -> bool:
        """Serve the newest stored model if it is not served yet. `warm`: predict every item's
        content-map outputs before the swap (a running process: the first requests under the
        new model find them all); False at start-up, where nothing is served yet and waiting
        for them (4.5 s at 100,000 items, `bench/startup-stages.md`) would only delay
        readiness: requests then predict their candidates' rows as they come, and `catch_up`
        warms the rest beside them."""
        with self.db.session() as s:
            latest = store.latest_model_id(s)
            if latest is None or latest == self.model_id:
                return False
            model = _read_model(s, latest)
        if model is None:
            return False
        self.behavior.reset_cooc(model.last_seq)
        with self.db.session() as s:
            self.behavior.add_cooc(store.events_after(s, model.last_seq))
        # Every item's content-map prediction before the swap, here in the background: the
        # first requests under the new model then find them all (~0.3 s at 100k items).
        predicted = Predicted(model)
        if warm:
            predicted.warm(self.table)
        if model.ranker is not None:
            try:  # parses the trees and compiles their walk (~1 s the first time)
                model.ranker.load()
            except Exception:  # a ranker nothing can score with must not stop the model
                log.exception("model %s: its ranker cannot be loaded; the hand blend serves",
                              latest)
                model.ranker = None
        self.rec.use_model(model, predicted)
        self.model_id = latest
        # Beside the loop, which must keep folding events in: ~15 s at 100k items (`similar`
        # scans for its model neighbours per request until they are found).
        threading.Thread(target=self._find_collab_neighbours, args=(model,),
                         name="medley-collab-neighbours", daemon=True).start()
        log.info("serving collaborative model %s (events up to %s)", latest, model.last_seq)
        return True

    def _warm_predictions(self) -> None:
        """Start-up's deferred `Predicted.warm`, beside the first requests (a speed-up only)."""
        try:
            self.rec.predicted.warm(self.table)
        except Exception:
            log.exception("content-map predictions not warmed; requests predict as they go")

    def _find_collab_neighbours(self, model: CollabModel) -> None:
        try:
            model.find_neighbours(self.settings.candidates_per_source)
        except Exception:
            log.exception("collaborative neighbour lists not found; requests scan for them")

    def load_editorial(self) -> None:
        with self.db.session() as s:
            row = store.get_editorial(s)
            pins = tuple((p["item_id"], int(p["position"])) for p in row.pins or [])
            boosts = {(f"tag:{b['tag']}" if b.get("tag") else b["item_id"]): float(b["factor"])
                      for b in row.boosts or []}
        self.rec.editorial = Editorial(pins, boosts)  # a new generation only if it differs

    # --- the loop ---------------------------------------------------------------------------
    def catch_up(self) -> None:
        """Everything at once (start-up)."""
        started = time.perf_counter()
        with self.db.session() as s:  # events read below already lack anything erased so far
            self.erasures_seen = erasures.latest_notice(s)
            self.stated.refresh(s)
        restored = self.restore_snapshot()
        self.load_fusion()
        mapped = self.restore_items()
        n_items = self.load_items()
        lists = self.restore_neighbours()
        n_events = self.tail_events()
        self.check_model(warm=False)  # recounts co-engagement after the model, as a replay
        self.load_editorial()
        _freeze_heap()
        self.ready.set()
        threading.Thread(target=self._warm_predictions, name="medley-warm-predictions",
                         daemon=True).start()
        if restored is not None:
            log.info("behaviour restored from the snapshot: %d events (up to seq %d), %d "
                     "tailed after it", restored.events, restored.behavior.last_seq, n_events)
        log.info("recommendations ready: %d items (%d mapped from the saved table, %d "
                 "neighbour lists restored), %d events in %.1f s", len(self.table), mapped or 0,
                 lists, n_events, time.perf_counter() - started)
        self._snapshot_at = time.monotonic()
        if n_events >= SNAPSHOT_AFTER_REPLAY:  # the next start-up need not replay them again
            self.save_snapshot(wait=False)
        self._table_saved_at = self._lists_saved_at = time.monotonic()
        if mapped is None and n_items:  # nor read every item's vectors again
            self.save_items()

    def tick(self) -> None:
        """Events every poll (they must show within seconds); the rest at most once a second,
        since each step scans something and holds the GIL beside the requests."""
        now = time.monotonic()
        self.apply_erasures()  # indexed queries; an erasure must not wait for the slow tick
        self.tail_events()
        # Here, not on a request: the audience mask new items read (a no-op unless engagement
        # arrived since the last build, and that build is TOP_REFRESH_S old).
        self.behavior.audience_by_row(self.table.row, len(self.table.ids), refresh=True)
        if now - self._last_slow_tick < SLOW_TICK_S:
            return
        self._last_slow_tick = now
        if (self.snapshot_path is not None and self.behavior.last_seq != self._snapshot_seq
                and now - self._snapshot_at >= self.settings.behavior_snapshot_interval_s):
            self.save_snapshot(wait=False)  # written beside the loop; never raises
        if now - self._table_saved_at >= self.settings.behavior_snapshot_interval_s:
            self.save_items()
        if now - self._lists_saved_at >= self.settings.behavior_snapshot_interval_s:
            # Its own interval: the item table's clock only moves when the table changed, and
            # lists change every tick while they are filled (95 MB at 100k items).
            self.save_neighbours()
        self.load_fusion()
        self.load_items()
        if now - self._last_model_check >= MODEL_CHECK_EVERY_S:
            self._last_model_check = now
            self.check_model()
            self.load_editorial()
        if now - self._last_reconcile >= RECONCILE_EVERY_S:
            self._last_reconcile = now
            self.reconcile()
        self.warm_priors()
        neighbours.fill(self.rec.neighbours, self.table, self.rec.search,
                        NEIGHBOUR_LISTS_PER_TICK)
        self.fill_user_lists()

    def fill_user_lists(self) -> int:
        """Users' nearline candidates: most of a core while no request came in since the last
        tick, a tenth of one beside requests."""
        busy = self.rec.served != self._served_seen
        self._served_seen = self.rec.served
        return user_lists.fill(self.rec.user_lists, lambda: list(self.behavior.users),
                               self.rec.personal.warm,
                               USER_LISTS_BUSY_S if busy else USER_LISTS_IDLE_S,
                               self.rec.personal.walk_key())

    def warm_priors(self) -> None:
        """New items first, then whatever requests found without a prior."""
        young = self.rec.young(Where(), self.rec.clock())
        done = self.rec.warm_priors(young, WARM_PRIORS_PER_TICK)
        wanted = list(self.rec.priors.wanted)[: WARM_PRIORS_PER_TICK - done]
        if wanted:
            self.rec.warm_priors(wanted, len(wanted))
        self.rec.priors.refresh(self.behavior, self.rec.collab, self.rec.clock(),
                                REFRESH_PRIORS_PER_TICK)

    def run(self, stop: threading.Event, index_up: threading.Event | None = None) -> None:
        """Build the state, then keep it in step until `stop`. `index_up`: set once the index
        answers; the state builds before it (nothing in it needs the index), the ticks, which
        search the index for new items' neighbours, wait for it."""
        try:
            self.catch_up()
        except Exception:
            log.exception("recommendation state could not be built; retrying")
        while index_up is not None and not index_up.wait(0.1):
            if stop.is_set():
                return
        while not stop.is_set():
            self.wake.wait(self.settings.events_poll_interval_s)
            self.wake.clear()
            if stop.is_set():
                return
            try:
                if not self.ready.is_set():
                    self.catch_up()
                else:
                    self.tick()
                self.failing_since = self.failing_why = None
            except Exception as exc:
                why = f"the serving sync fails: {exc!r}"[:300]
                # Once per kind of failure, not once per poll: an index outage would otherwise
                # write a traceback every quarter second until it ends.
                if why != self.failing_why:
                    log.exception("recommendation sync failed (repeats are not logged)")
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                self.failing_why = why

    def stale_for(self) -> float:
        """Seconds the loop has been failing (0: it is not): what it serves may be that old."""
        return 0.0 if self.failing_since is None else time.monotonic() - self.failing_since
