"""One suite, every index backend: embedded Qdrant Edge and qdrant-client (server API)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from index.base import IndexPoint, IndexUnavailable, VectorIndex, Where
from index.edge import EdgeIndex
from index.qdrant import QdrantIndex

DIMS = {"image": 4, "text": 3, "fused": 7}


@pytest.fixture(params=["edge", "qdrant-client"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    idx: VectorIndex
    if request.param == "edge":
        idx = EdgeIndex(tmp_path / "shard")
    else:
        idx = QdrantIndex.connect(":memory:", "items")
    idx.ensure(DIMS)
    yield idx
    idx.close()


def _point(image: list[float] | None, text: list[float], **payload: object) -> IndexPoint:
    vectors: dict[str, list[float]] = {"text": text}
    if image is not None:
        vectors["image"] = image
    return IndexPoint(str(uuid.uuid4()), vectors, payload)


def test_nearest_on_a_named_vector_ranks_by_cosine(index: VectorIndex) -> None:
    a = _point([1, 0, 0, 0], [1, 0, 0], title="a")
    b = _point([0.9, 0.1, 0, 0], [0, 1, 0], title="b")
    c = _point(None, [0, 0, 1], title="c")  # no image vector at all
    index.upsert([a, b, c])
    assert index.count() == 3
    hits = index.search("image", [1, 0, 0, 0], 10)
    assert [h.id for h in hits] == [a.id, b.id]  # c has no image: not returned
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].payload["title"] == "a"


def test_exclude_ids_and_delete(index: VectorIndex) -> None:
    pts = [_point(None, list(np.eye(3)[i % 3] + 0.01 * i)) for i in range(5)]
    index.upsert(pts)
    hits = index.search("text", [1, 0, 0], 10, where=Where(exclude_ids=frozenset({pts[0].id})))
    assert pts[0].id not in {h.id for h in hits} and len(hits) == 4
    index.delete([pts[1].id])
    assert index.count() == 4
    assert index.retrieve([pts[1].id]) == []


def test_business_filters_apply_inside_the_search(index: VectorIndex) -> None:
    kids = _point(None, [1, 0, 0], tags=["comedy", "family"], age_min=0, published_ts=100.0)
    teen = _point(None, [0.9, 0.1, 0], tags=["comedy"], age_min=13, published_ts=200.0)
    adult = _point(None, [0.8, 0.2, 0], tags=["drama"], age_min=18, published_ts=300.0)
    unrated = _point(None, [0.7, 0.3, 0], tags=["comedy"], age_min=99, published_ts=400.0)
    index.upsert([kids, teen, adult, unrated])

    def ids(where: Where) -> list[str]:
        return [h.id for h in index.search("text", [1, 0, 0], 10, where=where)]

    assert ids(Where(max_age=13)) == [kids.id, teen.id]  # the unrated item is not "all ages"
    assert ids(Where(include_tags=frozenset({"drama", "family"}))) == [kids.id, adult.id]
    assert ids(Where(exclude_tags=frozenset({"comedy"}))) == [adult.id]
    assert ids(Where(published_from=150.0, published_to=300.0)) == [teen.id, adult.id]
    assert ids(Where(max_age=18, exclude_ids=frozenset({kids.id}))) == [teen.id, adult.id]


def test_new_items_filter_on_when_they_entered_the_catalog(index: VectorIndex) -> None:
    old = _point(None, [1, 0, 0], created_at=1_000.0)
    new = _point(None, [0.9, 0.1, 0], created_at=2_000.0)
    index.upsert([old, new])
    hits = index.search("text", [1, 0, 0], 10, where=Where(created_from=1_500.0))
    assert [h.id for h in hits] == [new.id]


def test_new_items_filter_on_when_they_were_published_as_the_table_does(
        index: VectorIndex) -> None:
    from medley.domain import Modality
    from medley.recs.items import ItemInfo, ItemTable

    now = 10_000.0
    table = ItemTable({Modality.TEXT: 3})
    items = {  # name -> (published_at, created_at): all entered the catalog recently
        "back-catalog": (100.0, 9_000.0), "undated": (None, 9_500.0),
        "released": (9_800.0, 5_000.0), "scheduled": (12_000.0, 9_900.0)}
    points = []
    for name, (published, created) in items.items():
        # The payload as the indexing task writes it: published_ts falls back to created_at.
        point = _point(None, [1, 0, 0], created_at=created, published_ts=published or created)
        points.append(point)
        table.upsert(point.id, ItemInfo(name, (), 0, published, created), np.array([1, 0, 0]))
    index.upsert(points)
    names = {p.id: name for p, name in zip(points, items, strict=True)}

    def both(where: Where) -> set[str]:
        hits = {names[h.id] for h in index.search("text", [1, 0, 0], 10, where=where)}
        in_table = {names[table.ids[r]] for r in np.flatnonzero(table.mask(where))}
        assert hits == in_table, where
        return hits

    young = Where().published_within(now - 1_000.0, now)
    assert both(young) == {"undated", "released"}
    # A client's own published range still holds inside the new-item window.
    assert both(Where(published_from=9_600.0).published_within(now - 1_000.0, now)) == {
        "released"}
    assert both(Where(published_to=50.0).published_within(now - 1_000.0, now)) == set()


def test_upsert_replaces_vectors_and_payload(index: VectorIndex) -> None:
    p = _point([1, 0, 0, 0], [1, 0, 0], title="old")
    index.upsert([p])
    index.upsert([IndexPoint(p.id, {"text": [0, 1, 0]}, {"title": "new"})])
    got = index.retrieve([p.id], with_vectors=True)[0]
    assert got.payload["title"] == "new"
    assert "image" not in got.vectors  # the upsert replaced the whole point
    assert index.search("text", [0, 1, 0], 1)[0].id == p.id


def test_reopening_with_other_dimensions_is_refused(tmp_path: Path) -> None:
    idx = EdgeIndex(tmp_path / "shard")
    idx.ensure(DIMS)
    idx.upsert([_point([1, 0, 0, 0], [1, 0, 0])])
    idx.close()
    again = EdgeIndex(tmp_path / "shard")
    with pytest.raises(IndexUnavailable, match="incompatible"):
        again.ensure({"image": 5, "text": 3, "fused": 8})
    reopened = EdgeIndex(tmp_path / "shard")
    reopened.ensure(DIMS)
    assert reopened.count() == 1  # durable across close/open
    reopened.close()


def test_second_process_cannot_open_an_open_shard(tmp_path: Path) -> None:
    first = EdgeIndex(tmp_path / "shard")
    first.ensure(DIMS)
    second = EdgeIndex(tmp_path / "shard")
    with pytest.raises(IndexUnavailable):
        second.ensure(DIMS)
    first.close()


def test_set_vectors_replaces_one_named_vector_and_keeps_the_rest(index: VectorIndex) -> None:
    a = _point([1, 0, 0, 0], [1, 0, 0], title="a")
    b = _point([0, 1, 0, 0], [0, 1, 0], title="b")
    index.upsert([a, b])
    index.set_vectors("text", {a.id: [0, 0, 1]})
    [got] = index.retrieve([a.id], with_vectors=True)
    assert np.allclose(got.vectors["text"], [0, 0, 1]) and got.payload["title"] == "a"
    assert np.allclose(np.array(got.vectors["image"]), [1, 0, 0, 0])
    assert index.search("text", [0, 0, 1], 1)[0].id == a.id


def test_a_named_vector_added_later_is_created_on_open(tmp_path: Path) -> None:
    """An index made before the second fused slot existed gains it, keeping its points."""
    old = EdgeIndex(tmp_path / "shard")
    old.ensure({"text": 3, "fused": 3})
    p = _point(None, [1, 0, 0])
    old.upsert([p])
    old.close()
    new = EdgeIndex(tmp_path / "shard")
    new.ensure({"text": 3, "fused": 3, "fused_alt": 3})
    assert new.count() == 1
    new.set_vectors("fused_alt", {p.id: [0, 1, 0]})
    assert new.search("fused_alt", [0, 1, 0], 1)[0].id == p.id
    new.close()
