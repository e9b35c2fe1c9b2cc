"""The stale sweep: what the database says is unfinished but no live task will finish.

A broker restarted without persistence forgets every queued message, and a dispatch made while
it is down never reaches it. The database still holds the truth (every extraction's state,
every item's `indexed` flag), and tasks are idempotent, so the sweep sends such work again:
an extraction still `queued` once its queue is empty and it has waited `redispatch_idle_s`
(or `redispatch_max_wait_s` whatever the queue holds: a lost message behind a long backlog), and
an index write for an item whose extractions are all done but which is still not indexed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Protocol

from medley import repo
from medley.catalog import Dispatcher, DispatchFailed
from medley.config import LimitSettings
from medley.db import Database
from medley.db.models import utcnow
from workers.app import INDEX_QUEUE, QUEUE_OF

log = logging.getLogger(__name__)


class SweepDispatcher(Dispatcher, Protocol):
    def backlog(self, queue: str) -> int | None:
        """Messages waiting in `queue`; None when the broker cannot say."""


@dataclass
class Swept:
    expired: list[str] = field(default_factory=list)  # items with extractions timed out
    extractions: int = 0  # extractions sent again
    index_writes: int = 0  # index writes sent again


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite gives naive UTC


def queue_health(db: Database, window_s: float = 60.0) -> dict[str, dict[str, float | int]]:
    """Per extraction queue: how many extractions wait, the oldest one's age (s), and how many
    finished per minute over the last `window_s` (GET /healthz)."""
    now = utcnow()
    out: dict[str, dict[str, float | int]] = {}
    with db.session() as s:
        for queue in sorted(set(QUEUE_OF.values())):
            mods = [m for m, q in QUEUE_OF.items() if q == queue]
            p = repo.progress(s, mods, now - timedelta(seconds=window_s))
            oldest = p.oldest_queued_at
            out[queue] = {
                "queued": p.queued,
                "oldest_queued_s": round((now - _aware(oldest)).total_seconds(), 1)
                if oldest is not None else 0.0,
                "finished_per_min": round(p.finished * 60.0 / window_s, 1),
            }
    return out


@dataclass
class Sweeper:
    settings: LimitSettings  # task time limit and the re-send waits
    db: Database
    dispatch: SweepDispatcher
    # Called with a queue whose consumers stopped making progress, where the caller runs them
    # itself (the embedded worker: restarted); other deployments rely on the re-send alone.
    on_stall: Callable[[str], None] | None = None
    # item id -> monotonic time its index write was last re-sent (the item row has no field
    # for it, and re-sending every round while the index is down only piles up retries)
    _index_sent: dict[str, float] = field(default_factory=dict)

    def sweep(self) -> Swept:
        out = Swept()
        with self.db.session() as s:
            out.expired = repo.expire_stale(s, self.settings.task_time_limit_s)
        for item_id in out.expired:
            self._send(partial(self.dispatch.index, item_id))
        out.extractions = self._extractions()
        out.index_writes = self._index_writes()
        if out.extractions or out.index_writes:
            log.info("stale sweep re-sent %d extractions and %d index writes",
                     out.extractions, out.index_writes)
        return out

    def _waited(self, queue: str) -> float | None:
        """How long queued work must have waited to be re-sent, judged by progress: an empty
        queue, or one whose consumers did nothing for `redispatch_idle_s` (frozen, or gone
        with their prefetched messages), re-sends what waited that long; a queue that is
        draining waits `redispatch_max_wait_s` (a lost message behind a long backlog)."""
        backlog = self.dispatch.backlog(queue)
        if backlog is None:
            return None  # broker away: a re-send would fail too; next round
        stalled = self.stalled(queue)
        if stalled and self.on_stall is not None:
            self.on_stall(queue)  # a consumer of our own (the embedded worker): restart it
        if backlog == 0 or stalled:
            return self.settings.redispatch_idle_s
        return self.settings.redispatch_max_wait_s

    def stalled(self, queue: str) -> bool:
        """Work waits in this queue's extractions and none started or finished for
        `redispatch_idle_s`; for the index queue: an item has waited that long for its index
        write since its extractions settled (a working index queue takes a second)."""
        idle = self.settings.redispatch_idle_s
        if queue == INDEX_QUEUE:
            with self.db.session() as s:
                return bool(repo.unindexed_settled(s, utcnow() - timedelta(seconds=idle),
                                                   limit=1))
        mods = [m for m, q in QUEUE_OF.items() if q == queue]
        if not mods:
            return False
        with self.db.session() as s:
            p = repo.progress(s, mods, utcnow() - timedelta(seconds=idle))
        if p.queued == 0 or p.started or p.finished or p.oldest_queued_at is None:
            return False
        waited = (utcnow() - _aware(p.oldest_queued_at)).total_seconds()
        if waited >= idle:
            log.warning("queue %s: %d extractions wait and none started or finished in %.0f s:"
                        " re-sending them", queue, p.queued, idle)
            return True
        return False

    def _extractions(self) -> int:
        sent = 0
        for queue in sorted(set(QUEUE_OF.values())):
            wait = self._waited(queue)
            if wait is None:
                continue
            mods = [m for m, q in QUEUE_OF.items() if q == queue]
            with self.db.session() as s:
                lost = repo.queued_before(s, mods, utcnow() - timedelta(seconds=wait))
            for item_id, m in lost:
                if not self._send(partial(self.dispatch.extract, item_id, m)):
                    return sent
                with self.db.session() as s:
                    repo.mark_requeued(s, item_id, m)
                sent += 1
        return sent

    def _index_writes(self) -> int:
        wait = self._waited(INDEX_QUEUE)
        if wait is None:
            return 0
        now = time.monotonic()
        self._index_sent = {k: t for k, t in self._index_sent.items() if now - t < wait}
        with self.db.session() as s:
            lagging = repo.unindexed_settled(s, utcnow() - timedelta(seconds=wait))
        sent = 0
        for item_id in lagging:
            if item_id in self._index_sent:
                continue
            if not self._send(partial(self.dispatch.index, item_id)):
                break
            self._index_sent[item_id] = now
            sent += 1
        return sent

    @staticmethod
    def _send(send: Callable[[], None]) -> bool:
        """False: the broker is away (stop this round). Any other failure belongs to the one
        task being sent: logged, and the round goes on with the rest."""
        try:
            send()
            return True
        except DispatchFailed as exc:
            log.warning("stale sweep: broker away, trying again next round: %s", exc)
            return False
        except Exception:
            log.exception("stale sweep: could not re-send %s; going on with the rest", send)
            return True
