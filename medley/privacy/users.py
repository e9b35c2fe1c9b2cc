"""One user's data, as a client app (the user's own controls) or an admin (erasure) asks.

Reset and erasure share `erase.scrub`: a reset deletes the history and what was learnt from it
and keeps what the user stated (preferences, "not interested", pause); erasure deletes it all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from medley import controls
from medley.controls import Controls
from medley.errors import InvalidInput
from medley.privacy import erase
from medley.privacy.erase import Kind
from medley.recs import store

if TYPE_CHECKING:
    from medley.recs.service import Recommendations

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Receipt:
    receipt_id: str
    kind: Kind
    user_id: str
    at: datetime
    erased: dict[str, int | bool]
    retrain_scheduled: bool


class UserPrivacy:
    def __init__(self, recs: Recommendations) -> None:
        self.recs = recs

    # --- erasure and reset ------------------------------------------------------------------
    def erase(self, user_id: str) -> Receipt:
        return self._scrub(user_id, Kind.ERASE)

    def reset(self, user_id: str) -> Receipt:
        return self._scrub(user_id, Kind.RESET)

    def _scrub(self, user_id: str, kind: Kind) -> Receipt:
        recs = self.recs
        with recs.db.session() as s:
            done = erase.scrub(s, user_id, kind, recs.settings.erasure_notice_s)
        # This process forgets the user now; every process (this one too) then rebuilds its
        # aggregates from the notice within a poll of the event stream.
        held = recs.behavior.drop_users(lambda u: u == user_id) > 0
        recs.sync.wake.set()
        if done.retrain:
            try:
                recs.train_now()
            except Exception:  # the scheduled retrain still comes: `retrain_due` forces it
                log.exception("could not dispatch the retrain after an erasure")
        erased = {**done.counts, "behavior_state": held or bool(done.counts["events"])}
        return Receipt(done.receipt_id, kind, user_id, done.at, erased, done.retrain)

    # --- the user's own controls ------------------------------------------------------------
    def controls(self, user_id: str) -> Controls:
        return self.recs.controls(user_id)

    def not_interested(self, user_id: str, item_id: str | None, tag: str | None) -> Controls:
        item_id, tag = _one(item_id, tag)
        self.recs.sync.stated.add(user_id)  # before the write: its next request reads them
        with self.recs.db.session() as s:
            if item_id is not None and not store.existing_items(s, {item_id}):
                raise InvalidInput(f"item_id: item {item_id} does not exist")
            return controls.not_interested(s, user_id, item_id=item_id, tag=tag)

    def interested_again(self, user_id: str, item_id: str | None, tag: str | None) -> Controls:
        item_id, tag = _one(item_id, tag)
        self.recs.sync.stated.add(user_id)
        with self.recs.db.session() as s:
            return controls.interested_again(s, user_id, item_id=item_id, tag=tag)

    def pause_history(self, user_id: str, paused: bool) -> Controls:
        self.recs.sync.stated.add(user_id)
        with self.recs.db.session() as s:
            return controls.set_paused(s, user_id, paused)


def _one(item_id: str | None, tag: str | None) -> tuple[str | None, str | None]:
    item_id = item_id.strip() if item_id else None
    tag = tag.strip() if tag else None
    if (item_id is None) == (tag is None):
        raise InvalidInput("name exactly one of item_id or tag")
    return item_id, tag
