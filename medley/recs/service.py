"""Recommendations as a serving process runs them: state kept in step by a background thread,
answers that fall back to popularity (flagged) when the index or a model cannot answer, events
validated and stored, preferences and editorial settings read and written."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy.orm import Session

from enrich.base import ModelUnavailable
from enrich.registry import Family, Models
from index.base import FUSED, IndexUnavailable, VectorIndex, Where
from medley import controls
from medley.config import Settings
from medley.controls import Controls
from medley.db import Database
from medley.db.models import Transcript
from medley.errors import InvalidInput, NotFound, PayloadTooLarge
from medley.recs import audience, store
from medley.recs.answers import Answer, Preferences
from medley.recs.behavior import Behavior
from medley.recs.cache import AnswerCache, QueryVectorCache
from medley.recs.commit import GroupCommitter
from medley.recs.engine import Recommender
from medley.recs.events import Rejected, validate_batch
from medley.recs.items import ItemTable
from medley.recs.search import QueryVectors, search
from medley.recs.sync import RecSync

log = logging.getLogger(__name__)
DOWN = (IndexUnavailable, ModelUnavailable)
# The sync's passes may fail this long (a database blip, a restart of it) before /healthz stops
# saying ready: longer, and what it serves has fallen behind what clients wrote.
STALE_AFTER_S = 5.0
SET_ASIDE_SHOWN = 20  # set-aside items named in /healthz (the count covers them all)


class Ingested(NamedTuple):
    accepted: int
    duplicates: list[str]
    rejected: list[Rejected]
    paused: int  # valid events of users who paused their history: not stored
    repeated: list[str]  # ids sent more than once in the batch (stored once)


class Recommendations:
    def __init__(self, settings: Settings, db: Database, models: Models,
                 index: Callable[[], VectorIndex], train: Callable[[], None]) -> None:
        self.settings = settings
        self.db = db
        self.models = models
        self._index = index
        self._train = train
        self.table = ItemTable(models.dims())
        self.behavior = Behavior(settings.popularity_half_life_days * 86400,
                                 settings.trending_half_life_hours * 3600)
        self.rec = Recommender(settings.ranking, self.table, self.behavior, self.index_search)
        self.sync = RecSync(settings, db, self.rec)
        # Events of concurrent requests share transactions (its writer runs from threads());
        # until it runs, and after close(), each request writes its own.
        self.events = GroupCommitter(db)
        self.answers = AnswerCache(settings.answer_cache_size, settings.answer_cache_ttl_s)
        self.sync.answers = self.answers
        self.query_vectors = QueryVectorCache(settings.query_vector_cache_size)

    def index_search(self, using: str, vector: np.ndarray, limit: int, where: Where | None
                ) -> list[tuple[str, float]]:
        if using == FUSED:
            using = self.table.view.slot  # the slot the published profile's vectors are in
        hits = self._index().search(using, vector.tolist(), limit, where=where,
                                    with_payload=False)  # ranking reads ids and scores only
        return [(h.id, h.score) for h in hits]

    # --- background -------------------------------------------------------------------------
    def threads(self, stop: threading.Event, owner: bool = True,
                index_up: threading.Event | None = None
                ) -> list[tuple[Callable[[], None], str]]:
        """The background loops. A peer serving process (medley/owner.py) keeps its own state
        in step but leaves training and the behaviour snapshot to the owner. `index_up`: see
        `RecSync.run`."""
        self.sync.saves_snapshots = owner
        loops = [(lambda: self.sync.run(stop, index_up), "medley-rec-sync"),
                 (lambda: self.events.run(stop), "medley-event-writer")]
        if owner:
            loops.append((lambda: self._schedule_training(stop), "medley-rec-train-schedule"))
        return loops

    def close(self) -> None:
        """Write the events still queued and stop the event writer (before the database
        closes); events that come after are written by their own request."""
        self.events.close()

    def _schedule_training(self, stop: threading.Event) -> None:
        # The first model as soon as there are events; then on the interval. The task itself
        # does nothing when no event arrived since the newest model.
        wait = 5.0
        while not stop.wait(wait):
            if self.behavior.last_seq > 0:
                try:
                    self._train()
                    wait = self.settings.collab_retrain_interval_s
                except Exception:
                    log.exception("could not dispatch collaborative training")

    def status(self) -> dict[str, Any]:
        """What /healthz reports. Not ready while the sync has been failing for longer than
        STALE_AFTER_S: the catalog and behaviour it serves stopped following the database."""
        stale = self.sync.stale_for() > STALE_AFTER_S
        aside = sorted(self.sync.set_aside.items())
        out: dict[str, Any] = {
            "ready": self.sync.ready.is_set() and not stale, "items": len(self.table),
            "events_applied": self.behavior.last_seq, "collab_model": self.sync.model_id,
            "erasures_applied": self.sync.erasures_seen, "answer_cache": self.answers.stats(),
            "user_lists": self.rec.user_lists.stats(),
            "set_aside": {
                "items": len(aside),
                "examples": [{"item_id": i, "why": why} for i, why in aside[:SET_ASIDE_SHOWN]],
                "events": len(store.skipped_events)},
        }
        if stale:
            out["failing"] = self.sync.failing_why
        return out

    def train_now(self) -> None:
        """Dispatch a collaborative retrain now (after an erasure), not at the next interval."""
        self._train()

    # --- answers ----------------------------------------------------------------------------
    def _guarded(self, call: Callable[[], Answer], n: int, where: Where | None,
                 context: dict[str, str] | None = None, max_audience: int | None = None
                 ) -> Answer:
        try:
            return call()
        except DOWN as exc:
            log.warning("answering from popularity: %s", exc)
            return self.rec.fallback(n, where or Where(), str(exc), context,
                                     max_audience=max_audience)

    def _cached(self, key: tuple[Any, ...], stamp: tuple[int, ...],
                compute: Callable[[], Answer]) -> Answer:
        # `stamp` is read before computing: a change that lands meanwhile makes the entry stale.
        self.rec.served += 1  # (the background fill of user lists yields while requests come)
        answer = self.answers.get(key, stamp)
        if answer is None:
            answer = compute()
            self.answers.put(key, stamp, answer)
        return answer

    def similar(self, item_id: str, n: int, where: Where | None,
                rec: Recommender | None = None, variant: tuple[Any, ...] = ()) -> Answer:
        """`rec`, `variant`: an experiment arm's recommender and what tells its answers apart
        in the cache (medley/experiments/arms.py); by default the live one."""
        self.require_item(item_id)
        ranker = rec or self.rec
        return self._cached(
            # Its own events and co-engagement change it; the rest of the catalog's, the TTL.
            ("similar", item_id, n, where, variant),
            (self.rec.generation, self.behavior.item_changes.get(item_id, 0)),
            lambda: self._guarded(lambda: ranker.similar(item_id, n, where), n,
                                  (where or Where()).but_not({item_id})))

    def for_user(self, user_id: str, n: int, where: Where | None,
                 context: dict[str, str], *, only_new: bool = False,
                 max_audience: int | None = None, rec: Recommender | None = None,
                 variant: tuple[Any, ...] = ()) -> Answer:
        prefs, user_controls = self.personal(user_id)
        where = user_controls.apply(where)  # never what they said no to
        cap = audience.cap_for(self.settings, only_new, max_audience)
        user = self.behavior.user(user_id)
        stated = (prefs.liked_items, prefs.text, prefs.disliked_tags) if prefs else None
        key = ("new-items" if only_new else "recommendations", user_id, n, where,
               tuple(sorted(context.items())), cap, stated, variant)
        ranker = rec or self.rec
        return self._cached(
            key, (self.rec.generation, user.events if user else 0),  # a like: a new answer
            lambda: self._guarded(
                lambda: ranker.for_user(user_id, n, where, prefs, context, only_new=only_new,
                                          max_audience=cap),
                n, where, context, cap))

    def search(self, query: str, n: int, where: Where | None, user_id: str | None) -> Answer:
        if not query.strip():
            raise InvalidInput("q: the search query is empty")
        prefs, user_controls = self.personal(user_id)
        where = user_controls.apply(where)
        self.rec.served += 1
        return self._guarded(
            lambda: self.search_with(self.rec, query, n, where, user_id, prefs), n, where)

    def search_with(self, rec: Recommender, query: str, n: int, where: Where | None = None,
                    user_id: str | None = None, prefs: Preferences | None = None) -> Answer:
        """Search as `rec` answers it (the live recommender, or one under other weights)."""
        vectors = QueryVectors(self._embed(Family.TEXT, query), self._embed(Family.CLIP, query))
        return search(rec, query, vectors, n, where, user_id=user_id, prefs=prefs,
                      transcripts=self._transcripts)

    def _embed(self, family: Family, text: str) -> np.ndarray | None:
        return self.query_vectors.get_or_embed(
            family.value, text, lambda: self._run_embedder(family, text))

    def _run_embedder(self, family: Family, text: str) -> np.ndarray | None:
        try:
            model = self.models.load(family)
        except ModelUnavailable:
            return None
        embedder = model.text_embedder() if family is Family.CLIP else model
        vector = np.array(embedder.embed([text])[0], dtype=np.float32)
        vector.setflags(write=False)  # cached and shared between requests
        return vector

    def _transcripts(self, ids: list[str]) -> dict[str, list[dict[str, object]]]:
        if not ids:
            return {}
        with self.db.session() as s:
            rows = s.query(Transcript.item_id, Transcript.segments).filter(
                Transcript.item_id.in_(ids))
            return {item_id: list(segments or []) for item_id, segments in rows}

    def require_item(self, item_id: str) -> None:
        if self.table.get(item_id) is None:
            with self.db.session() as s:
                if not store.existing_items(s, {item_id}):
                    raise NotFound(f"item {item_id} does not exist")

    # --- events -----------------------------------------------------------------------------
    def ingest(self, raw: list[Any]) -> Ingested:
        """Valid events are stored before this returns, but not those of a user who paused
        their history: those are dropped (and counted), never stored."""
        limit = self.settings.max_event_batch
        self.rec.served += 1  # a request too: the background fill yields to it
        if not raw:
            raise InvalidInput("events: a batch holds at least one event")
        if len(raw) > limit:
            raise PayloadTooLarge(f"a batch holds at most {limit} events, this one {len(raw)}")
        ids = {r["item_id"] for r in raw
               if isinstance(r, dict) and isinstance(r.get("item_id"), str)}
        with self.db.session() as s:
            known = store.existing_items(s, ids)
            events, rejected, repeated = validate_batch(raw, known_items=known, now=time.time(),
                                              max_future_skew_s=self.settings.max_event_future_skew_s)
            paused = controls.paused_users(s, {e.user_id for e in events})
        kept = [e for e in events if e.user_id not in paused]
        # The pause check above and the insert (in the writer's transaction) are not one
        # transaction, and need not be: the check never locked the user's controls, so a pause
        # committing while a batch was in flight could always miss it. "Paused" has meant "as
        # the batch was checked"; the gap grows by one group write (milliseconds). The read
        # session is closed first, so no request holds a connection while it waits.
        inserted = self.events.submit(kept)
        self.sync.wake.set()  # fold them in now rather than at the next poll
        duplicates = [e.event_id for e in kept if e.event_id not in inserted]
        return Ingested(len(inserted), duplicates, rejected, len(events) - len(kept),
                        sorted(set(repeated)))

    # --- users' controls --------------------------------------------------------------------
    def controls(self, user_id: str | None) -> Controls:
        if not user_id:
            return Controls()
        with self.db.session() as s:
            return controls.get(s, user_id)

    # --- preferences and editorial ----------------------------------------------------------
    def personal(self, user_id: str | None) -> tuple[Preferences | None, Controls]:
        """A user's preferences and controls: two primary-key lookups in one session, for
        the few users who ever stated any (`medley/recs/stated.py`)."""
        if not user_id or not self.sync.stated.may_have(user_id):
            return None, Controls()
        with self.db.session() as s:
            return _preferences(s, user_id), controls.get(s, user_id)

    def preferences(self, user_id: str | None) -> Preferences | None:
        if not user_id:
            return None
        with self.db.session() as s:
            return _preferences(s, user_id)

    def put_preferences(self, user_id: str, liked: list[str], text: str | None,
                        disliked_tags: list[str]) -> Preferences:
        with self.db.session() as s:
            missing = set(liked) - store.existing_items(s, set(liked))
        if missing:
            raise InvalidInput(f"liked_items: unknown item ids: {', '.join(sorted(missing))}")
        vec = self._embed(Family.TEXT, text) if text and text.strip() else None
        self.sync.stated.add(user_id)  # before the write: this process's next read sees it
        with self.db.session() as s:
            store.put_preferences(s, user_id, liked_items=liked, text=text, text_vector=vec,
                                  disliked_tags=disliked_tags)
        prefs = self.preferences(user_id)
        assert prefs is not None
        return prefs

    def put_editorial(self, pins: list[dict[str, Any]], boosts: list[dict[str, Any]]) -> None:
        ids = {p["item_id"] for p in pins} | {b["item_id"] for b in boosts if b.get("item_id")}
        with self.db.session() as s:
            missing = ids - store.existing_items(s, ids)
            if missing:
                raise InvalidInput(f"unknown item ids: {', '.join(sorted(missing))}")
            store.put_editorial(s, pins, boosts)
        self.sync.load_editorial()


def _preferences(s: Session, user_id: str) -> Preferences | None:
    row = store.get_preferences(s, user_id)
    if row is None:
        return None
    vec = np.frombuffer(row.text_vector, dtype=np.float32) if row.text_vector else None
    return Preferences(tuple(row.liked_items or ()), row.text, vec,
                       frozenset(row.disliked_tags or ()))
