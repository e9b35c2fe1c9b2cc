"""Keeps a serving process's recommendation state in step with the database: items (and their
fused vectors), the event stream, the newest collaborative model, editorial settings.

Every source of truth is a table, so any number of API processes converge on the same state,
and a restarted one rebuilds it (events are replayed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from index.base import Where
from medley import fusion, repo
from medley.config import Settings
from medley.db import Database
from medley.db.models import Item
from medley.domain import Modality, age_min
from medley.editor import profiles
from medley.privacy import erase
from medley.recs import store
from medley.recs.answers import Editorial
from medley.recs.behavior import Behavior
from medley.recs.collab import CollabModel
from medley.recs.engine import Recommender
from medley.recs.events import Event
from medley.recs.items import FusionView, ItemInfo, ItemTable
from medley.recs.predicted import Predicted
from medley.recs.signals import Priors

log = logging.getLogger(__name__)

ITEM_BATCH = 2000
RECONCILE_EVERY_S = 30.0  # full id comparison, catching deletions made by other processes
MODEL_CHECK_EVERY_S = 5.0
SLOW_TICK_S = 1.0
WARM_PRIORS_PER_TICK = 50  # neighbour searches (~1 ms each at 100k items), once a second
REFRESH_PRIORS_PER_TICK = 500  # prior values (~0.1 ms each), once a second
WATERMARK_OVERLAP_S = 5.0


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value else None


ITEM_COLUMNS = (Item.id, Item.title, Item.tags, Item.age_rating, Item.published_at,
                Item.created_at, Item.updated_at)


def with_vectors(s: Session, rows: Sequence[Any], dims: Mapping[Modality, int]
                 ) -> Iterator[tuple[Any, ItemInfo, dict[Modality, np.ndarray]]]:
    """Item rows (selected as ITEM_COLUMNS) with what the table holds of them: their info and
    their usable modality vectors, read ITEM_BATCH items per query."""
    for start in range(0, len(rows), ITEM_BATCH):
        chunk = rows[start : start + ITEM_BATCH]
        vectors = repo.vectors_of_items(s, [r.id for r in chunk])
        for r in chunk:
            info = ItemInfo(r.title, tuple(r.tags or ()), age_min(r.age_rating),
                            _ts(r.published_at), _ts(r.created_at) or 0.0)
            yield r, info, fusion.usable(vectors.get(r.id, {}), dims)


def _noting(rows: Iterable[tuple[int, Event]], seqs: deque[int]) -> Iterable[tuple[int, Event]]:
    for seq, ev in rows:
        seqs.append(seq)  # a bounded deque: the newest seqs, for the tail's overlap window
        yield seq, ev


def _read_model(s: Session, model_id: int | None) -> CollabModel | None:
    found = store.load_model_blob(s, model_id) if model_id is not None else None
    return CollabModel.from_bytes(found[0]) if found else None


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
        self.wake = threading.Event()
        self.ready = threading.Event()

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
                recent = time.monotonic() - self._seen_moved_at < 2 * WATERMARK_OVERLAP_S
                since = self.items_seen_at - timedelta(seconds=WATERMARK_OVERLAP_S if recent else 0)
                q = q.where(Item.updated_at > since)
            rows = [r for r in s.execute(q).all() if self._loaded_at.get(r.id) != r.updated_at]
            for r, info, usable in with_vectors(s, rows, dims):
                if self.table.get(r.id) is not None and usable:
                    self.rec.priors.forget(r.id)
                    self.rec.predicted.forget(self.table.row[r.id])
                self.table.upsert(r.id, info, usable or None)
                self._loaded_at[r.id] = r.updated_at
                n += 1
                if self.items_seen_at is None or r.updated_at > self.items_seen_at:
                    self.items_seen_at = r.updated_at
                    self._seen_moved_at = time.monotonic()
        return n

    def reconcile(self) -> None:
        with self.db.session() as s:
            present = set(s.scalars(select(Item.id)))
        for item_id in list(self.table.row):
            if item_id not in present and self.table.get(item_id) is not None:
                self.table.remove(item_id)
                self._loaded_at.pop(item_id, None)

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
        self._applied.update(seq for seq, _ in fresh)
        floor = self.behavior.last_seq - store.TAIL_OVERLAP
        self._applied = {q for q in self._applied if q > floor}
        return n

    # --- erasures ---------------------------------------------------------------------------
    def apply_erasures(self) -> int:
        """Erasures and resets recorded by any process: drop those users' state at once, then
        rebuild what their deleted events fed (decayed sums cannot be unwound exactly)."""
        with self.db.session() as s:
            notices = erase.notices_after(s, self.erasures_seen)
        if not notices:
            return 0
        hashes = {n.user_hash for n in notices if n.user_hash}
        if hashes:
            self.behavior.drop_users(lambda u: erase.user_hash(u) in hashes)
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
        log.info("recommendation state rebuilt after an erasure: %d events in %.1f s", n,
                 time.perf_counter() - started)

    # --- fusion, models and editorial ------------------------------------------------------
    def load_fusion(self) -> bool:
        """Serve the published fusion profile: its weights for the table, its slot for index
        searches, in one assignment (requests see the old view or the new, never a mix)."""
        with self.db.session() as s:
            live = profiles.serving(s, self.settings.fusion_weights)
            view = FusionView(profiles.weights_of(live.profile.weights),
                              profiles.surfaces_of(live.profile.surfaces or {}),
                              live.slot, live.profile.id)
        current = self.table.view
        if (current.profile_id, current.slot) == (view.profile_id, view.slot):
            return False
        self.table.view = view
        log.info("serving fusion profile %s v%s from slot %s", live.profile.name,
                 live.profile.version, live.slot)
        return True

    # --- models and editorial --------------------------------------------------------------
    def check_model(self) -> bool:
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
        predicted.warm(self.table)
        self.rec.use_model(model, predicted)
        self.model_id = latest
        log.info("serving collaborative model %s (events up to %s)", latest, model.last_seq)
        return True

    def load_editorial(self) -> None:
        with self.db.session() as s:
            row = store.get_editorial(s)
            pins = tuple((p["item_id"], int(p["position"])) for p in row.pins or [])
            boosts = {(f"tag:{b['tag']}" if b.get("tag") else b["item_id"]): float(b["factor"])
                      for b in row.boosts or []}
        self.rec.editorial = Editorial(pins, boosts)

    # --- the loop ---------------------------------------------------------------------------
    def catch_up(self) -> None:
        """Everything at once (start-up)."""
        started = time.perf_counter()
        with self.db.session() as s:  # events read below already lack anything erased so far
            self.erasures_seen = erase.latest_notice(s)
        self.load_fusion()
        n_items = self.load_items()
        n_events = self.tail_events()
        self.check_model()
        self.load_editorial()
        self.ready.set()
        log.info("recommendations ready: %d items, %d events in %.1f s", n_items, n_events,
                 time.perf_counter() - started)

    def tick(self) -> None:
        """Events every poll (they must show within seconds); the rest at most once a second,
        since each step scans something and holds the GIL beside the requests."""
        now = time.monotonic()
        self.apply_erasures()  # one indexed query; an erasure must not wait for the slow tick
        self.tail_events()
        if now - self._last_slow_tick < SLOW_TICK_S:
            return
        self._last_slow_tick = now
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

    def warm_priors(self) -> None:
        """New items first, then whatever requests found without a prior."""
        young = self.rec.young(Where(), self.rec.clock())
        done = self.rec.warm_priors(young, WARM_PRIORS_PER_TICK)
        wanted = list(self.rec.priors.wanted)[: WARM_PRIORS_PER_TICK - done]
        if wanted:
            self.rec.warm_priors(wanted, len(wanted))
        self.rec.priors.refresh(self.behavior, self.rec.collab, self.rec.clock(),
                                REFRESH_PRIORS_PER_TICK)

    def run(self, stop: threading.Event) -> None:
        failing: str | None = None
        try:
            self.catch_up()
        except Exception:
            log.exception("recommendation state could not be built; retrying")
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
                failing = None
            except Exception as exc:
                # Once per kind of failure, not once per poll: an index outage would otherwise
                # write a traceback every quarter second until it ends.
                if repr(exc) != failing:
                    log.exception("recommendation sync failed (repeats are not logged)")
                failing = repr(exc)
