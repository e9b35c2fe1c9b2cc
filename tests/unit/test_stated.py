"""Who has stated preferences or controls (`medley/recs/stated.py`): a request reads the
database for those users only, so the set must never miss a user with a row, and must let go
of an erased one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from medley import controls
from medley.db import Database
from medley.db.models import UserControls, UserPreferences
from medley.recs import store
from medley.recs.stated import StatedUsers


@pytest.fixture()
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 't.db'}")
    database.migrate()
    return database


def _prefer(db: Database, user: str) -> None:  # as another process writes them
    with db.session() as s:
        store.put_preferences(s, user, liked_items=[], text="jazz", text_vector=None,
                              disliked_tags=[])


def test_before_its_first_read_every_user_may_have_something(db: Database) -> None:
    stated = StatedUsers()
    assert stated.may_have("anyone")
    with db.session() as s:
        stated.refresh(s)
    assert not stated.may_have("anyone")


@pytest.mark.parametrize("write", ["preferences", "not_interested", "paused"])
def test_a_row_written_elsewhere_is_seen_by_the_next_read(db: Database, write: str) -> None:
    stated = StatedUsers()
    with db.session() as s:
        stated.refresh(s)
    with db.session() as s:
        if write == "preferences":
            store.put_preferences(s, "u1", liked_items=[], text="jazz", text_vector=None,
                                  disliked_tags=[])
        elif write == "not_interested":
            controls.not_interested(s, "u1", item_id=None, tag="horror")
        else:
            controls.set_paused(s, "u1", True)
    assert not stated.may_have("u1")  # not read yet: a request would miss it for one poll
    with db.session() as s:
        assert stated.refresh(s) >= 1
    assert stated.may_have("u1") and not stated.may_have("u2")


def test_a_late_commit_with_an_older_timestamp_is_still_found(db: Database) -> None:
    """A transaction stamped before the newest row seen, committed after that read: the
    overlap takes it in; a row older than the overlap was read already."""
    stated = StatedUsers()
    _prefer(db, "early")
    with db.session() as s:
        stated.refresh(s)
    _prefer(db, "late")
    with db.session() as s:  # its stamp 3 s before the newest the set has seen
        s.execute(update(UserPreferences).where(UserPreferences.user_id == "late").values(
            updated_at=datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=3)))
    with db.session() as s:
        stated.refresh(s)
    assert stated.may_have("late")


def test_a_user_marked_locally_is_read_before_any_refresh(db: Database) -> None:
    stated = StatedUsers()
    with db.session() as s:
        stated.refresh(s)
    stated.add("me")
    assert stated.may_have("me")


@pytest.mark.parametrize(("keeps_a_row", "stays"), [(True, True), (False, False)])
def test_after_an_erasure_notice_only_users_with_a_row_left_stay(db: Database,
                                                                keeps_a_row: bool,
                                                                stays: bool) -> None:
    stated = StatedUsers()
    _prefer(db, "gone")
    _prefer(db, "other")
    with db.session() as s:
        stated.refresh(s)
        if not keeps_a_row:  # an erasure deleted their rows; a reset keeps them
            s.query(UserPreferences).filter_by(user_id="gone").delete()
            s.query(UserControls).filter_by(user_id="gone").delete()
    with db.session() as s:
        stated.recheck(s, lambda u: u == "gone")
    assert stated.may_have("gone") == stays
    assert stated.may_have("other")  # not picked: untouched


def test_a_notice_whose_user_is_unknown_rereads_everyone(db: Database) -> None:
    stated = StatedUsers()
    _prefer(db, "gone")
    _prefer(db, "kept")
    with db.session() as s:
        stated.refresh(s)
        s.query(UserPreferences).filter_by(user_id="gone").delete()
    with db.session() as s:
        stated.recheck(s, None)
    assert not stated.may_have("gone") and stated.may_have("kept")
