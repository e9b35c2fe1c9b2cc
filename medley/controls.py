"""Users' own controls: "not interested" in an item or a tag, and pausing their history.

Stored per user in `user_controls`; serving reads them per request (a primary-key lookup, like
preferences), so a change holds at once in every process. Users set them through
`medley.privacy.users`; they sit below both, so serving reads them without importing privacy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from index.base import Where
from medley.db.models import UserControls
from medley.errors import InvalidInput

MAX_ITEMS = 1000  # "not interested" items one user may hold
MAX_TAGS = 200


@dataclass(frozen=True)
class Controls:
    paused: bool = False
    items: tuple[str, ...] = ()  # oldest first
    tags: tuple[str, ...] = ()

    def apply(self, where: Where | None) -> Where | None:
        """The filters an answer for this user honours, with their "not interested" added."""
        if not self.items and not self.tags:
            return where
        return (where or Where()).but_not(set(self.items)).without_tags(frozenset(self.tags))


def _of(row: UserControls | None) -> Controls:
    if row is None:
        return Controls()
    return Controls(bool(row.paused), tuple(row.not_interested_items or ()),
                    tuple(row.not_interested_tags or ()))


def get(s: Session, user_id: str) -> Controls:
    return _of(s.get(UserControls, user_id))


def _row(s: Session, user_id: str) -> UserControls:
    row = s.get(UserControls, user_id)
    if row is None:
        row = UserControls(user_id=user_id, paused=False, not_interested_items=[],
                           not_interested_tags=[])
        s.add(row)
    return row


def _save(s: Session, row: UserControls) -> Controls:
    if not (row.paused or row.not_interested_items or row.not_interested_tags):
        if inspect(row).pending:
            s.expunge(row)
        else:
            s.delete(row)  # nothing set: keep no row about this user
        s.flush()
        return Controls()
    s.flush()
    return _of(row)


def not_interested(s: Session, user_id: str, *, item_id: str | None = None,
                   tag: str | None = None) -> Controls:
    """Add an item or a tag (idempotent)."""
    row = _row(s, user_id)
    if item_id is not None and item_id not in (row.not_interested_items or []):
        if len(row.not_interested_items or []) >= MAX_ITEMS:
            raise InvalidInput(f"item_id: at most {MAX_ITEMS} items can be marked not interested;"
                               " undo some first")
        row.not_interested_items = [*(row.not_interested_items or []), item_id]
    if tag is not None and tag not in (row.not_interested_tags or []):
        if len(row.not_interested_tags or []) >= MAX_TAGS:
            raise InvalidInput(f"tag: at most {MAX_TAGS} tags can be marked not interested;"
                               " undo some first")
        row.not_interested_tags = [*(row.not_interested_tags or []), tag]
    return _save(s, row)


def interested_again(s: Session, user_id: str, *, item_id: str | None = None,
                     tag: str | None = None) -> Controls:
    """Undo "not interested" (idempotent: undoing what is not marked changes nothing)."""
    row = s.get(UserControls, user_id)
    if row is None:
        return Controls()
    row.not_interested_items = [i for i in row.not_interested_items or [] if i != item_id]
    row.not_interested_tags = [t for t in row.not_interested_tags or [] if t != tag]
    return _save(s, row)


def set_paused(s: Session, user_id: str, paused: bool) -> Controls:
    row = _row(s, user_id)
    row.paused = paused
    return _save(s, row)


def paused_users(s: Session, user_ids: Iterable[str]) -> set[str]:
    """Which of these users paused their history (one query per event batch)."""
    ids = set(user_ids)
    if not ids:
        return set()
    return set(s.scalars(select(UserControls.user_id).where(
        UserControls.user_id.in_(ids), UserControls.paused.is_(True))))


def delete(s: Session, user_id: str) -> Controls:
    """Drop every control of this user (erasure); returns what there was."""
    row = s.get(UserControls, user_id)
    before = _of(row)
    if row is not None:
        s.delete(row)
        s.flush()
    return before
