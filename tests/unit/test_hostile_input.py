"""Regressions for inputs the schemathesis fuzz (tests/api/test_fuzz.py) found answering 500."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from index.base import IndexPoint, Where, point_ids
from medley.domain import age_min
from medley.errors import NotFound


@pytest.mark.parametrize(("rating", "age"), [("²", 18), ("x²", 18), ("16+", 16), ("١٦", 16),
                                             ("FSK 12", 12), ("PG-13", 13)])
def test_age_min_reads_only_decimal_digits(rating: str, age: int) -> None:
    assert age_min(rating) == age


def test_point_ids_keeps_only_uuids() -> None:
    good = str(uuid.uuid4())
    assert point_ids(frozenset({good, "not-a-uuid", "Ü", ""})) == [good]


def test_edge_search_ignores_exclusions_that_name_no_point(tmp_path: Path) -> None:
    from index.edge import EdgeIndex

    index = EdgeIndex(tmp_path / "index")
    index.ensure({"v": 2})
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    index.upsert([IndexPoint(a, {"v": [1.0, 0.0]}), IndexPoint(b, {"v": [0.0, 1.0]})])
    try:
        hits = index.search("v", [1.0, 0.0], 5, where=Where(exclude_ids=frozenset({b, "x", "Ü"})))
        assert [h.id for h in hits] == [a]
    finally:
        index.close()


def test_profile_id_past_64_bits_is_not_found(tmp_path: Path) -> None:
    from medley.db import Database
    from medley.editor import profiles

    db = Database(f"sqlite:///{tmp_path / 'medley.db'}")
    db.migrate()
    try:
        with db.session() as s, pytest.raises(NotFound):
            profiles.get(s, 2**64)
        with db.session() as s, pytest.raises(NotFound):
            profiles.get(s, -(2**70))
    finally:
        db.dispose()


@pytest.mark.parametrize("boost", [{"tag": "", "factor": 1.5}, {"item_id": "", "factor": 2}])
def test_a_boost_names_a_nonempty_tag_or_item(boost: dict[str, object]) -> None:
    from pydantic import ValidationError

    from api.rec_schemas import BoostIn

    with pytest.raises(ValidationError):
        BoostIn.model_validate(boost)
