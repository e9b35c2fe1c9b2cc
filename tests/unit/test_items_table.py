"""The in-memory item table: storage, business filters, growth and exact nearest-neighbour
search on the fused vector or one modality's block."""

from __future__ import annotations

import numpy as np
import pytest

from index.base import FUSED, Where
from medley import fusion
from medley.domain import Modality
from medley.recs.items import FusionView, ItemInfo, ItemTable

DIMS = {Modality.TEXT: 3, Modality.IMAGE: 2}
WEIGHTS = {Modality.TEXT: 1.0, Modality.IMAGE: 1.0}
DAY = 86400.0
T = 1.7e9


def _fused(text: list[float] | None, image: list[float] | None) -> np.ndarray:
    parts = {}
    if text is not None:
        parts[Modality.TEXT] = np.array(text, dtype=np.float32)
    if image is not None:
        parts[Modality.IMAGE] = np.array(image, dtype=np.float32)
    vec = fusion.fuse(parts, WEIGHTS, DIMS)
    assert vec is not None
    return vec


def _info(title: str, tags: tuple[str, ...] = (), age: int | None = 0,
          published: float | None = None, created: float = T) -> ItemInfo:
    return ItemInfo(title, tags, age, published, created)


# (id, info, text block, image block)
CATALOG: list[tuple[str, ItemInfo, list[float] | None, list[float] | None]] = [
    ("cats", _info("Cats", ("animals", "cute"), 0, T - 10 * DAY), [1, 0, 0], [1, 0]),
    ("dogs", _info("Dogs", ("animals",), 12, T - 5 * DAY), [0.9, 0.1, 0], [0, 1]),
    ("war", _info("War", ("history", "drama"), 17, T - 1 * DAY), [0, 0, 1], [0, 1]),
    ("unrated", _info("Unrated", ("drama",), None, None, created=T - 2 * DAY), [0, 1, 0], None),
    ("pics", _info("Pictures only", ("art",), 0, T - 3 * DAY), None, [1, 0.2]),
]


@pytest.fixture
def table() -> ItemTable:
    t = ItemTable(DIMS, capacity=8)
    for item, info, text, image in CATALOG:
        t.upsert(item, info, _fused(text, image))
    t.upsert("novec", _info("No vector yet", ("animals",), 0, T), None)
    return t


def _ids(table: ItemTable, mask: np.ndarray) -> set[str]:
    return {table.ids[r] for r in np.flatnonzero(mask)}


ALL = {"cats", "dogs", "war", "unrated", "pics", "novec"}


# --- storage ----------------------------------------------------------------------------------
def test_upsert_get_remove(table: ItemTable) -> None:
    assert len(table) == 6
    info = table.get("dogs")
    assert info is not None and info.title == "Dogs"
    assert table.get("missing") is None

    table.upsert("dogs", _info("Dogs, remastered", ("remaster",), 7, T), None)
    info = table.get("dogs")
    assert info is not None and info.title == "Dogs, remastered"
    assert len(table) == 6  # an update, not a new row
    # its old tags no longer select it, the new ones do
    assert "dogs" not in _ids(table, table.mask(Where(include_tags=frozenset({"animals"}))))
    assert _ids(table, table.mask(Where(include_tags=frozenset({"remaster"})))) == {"dogs"}

    table.remove("dogs")
    assert table.get("dogs") is None
    assert len(table) == 5
    assert "dogs" not in _ids(table, table.mask(None))
    assert all(i != "dogs" for i, _ in table.nearest(FUSED, _fused([0.9, 0.1, 0], [0, 1]), 10,
                                                     None))
    table.remove("never-there")  # harmless
    assert len(table) == 5


def test_reinserted_item_comes_back() -> None:
    t = ItemTable(DIMS, capacity=4)
    vec = _fused([1, 0, 0], [1, 0])
    t.upsert("a", _info("A"), vec)
    t.remove("a")
    t.upsert("a", _info("A again"), vec)
    assert len(t) == 1
    assert t.nearest(FUSED, vec, 5, None)[0][0] == "a"


def test_growth_past_initial_capacity() -> None:
    t = ItemTable(DIMS, capacity=2)
    vecs = {f"i{k}": _fused([1, k, 0], [0, 1]) for k in range(5)}
    for k, (item, vec) in enumerate(vecs.items()):
        t.upsert(item, _info(item, (f"tag{k}",), k), vec)
    assert len(t) == 5
    for k, (item, vec) in enumerate(vecs.items()):
        info = t.get(item)
        assert info is not None and info.title == item
        assert t.nearest(FUSED, vec, 1, None)[0][0] == item
        assert _ids(t, t.mask(Where(include_tags=frozenset({f"tag{k}"})))) == {item}
    assert _ids(t, t.mask(Where(max_age=2))) == {"i0", "i1", "i2"}


# --- mask -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (None, ALL),
        (Where(), ALL),
        # an age ceiling keeps items rated at or below it; an unrated item is never let through
        (Where(max_age=12), {"cats", "dogs", "pics", "novec"}),
        (Where(max_age=0), {"cats", "pics", "novec"}),
        (Where(max_age=18), ALL - {"unrated"}),
        (Where(include_tags=frozenset({"animals"})), {"cats", "dogs", "novec"}),
        (Where(include_tags=frozenset({"cute", "history"})), {"cats", "war"}),  # any of
        (Where(include_tags=frozenset({"nope"})), set()),
        (Where(exclude_tags=frozenset({"drama"})), {"cats", "dogs", "pics", "novec"}),
        (Where(exclude_tags=frozenset({"cute", "art"})), {"dogs", "war", "unrated", "novec"}),
        # published window (inclusive); an item without a publish date uses its creation time
        (Where(published_from=T - 5 * DAY), {"dogs", "war", "unrated", "pics", "novec"}),
        (Where(published_to=T - 5 * DAY), {"cats", "dogs"}),
        (Where(published_from=T - 3 * DAY, published_to=T - 1 * DAY), {"war", "unrated", "pics"}),
        (Where(exclude_ids=frozenset({"cats", "war", "ghost"})), {"dogs", "unrated", "pics",
                                                                   "novec"}),
        (Where(max_age=12, include_tags=frozenset({"animals", "drama"}),
               exclude_ids=frozenset({"novec"})), {"cats", "dogs"}),
    ],
)
def test_mask(table: ItemTable, where: Where | None, expected: set[str]) -> None:
    assert _ids(table, table.mask(where)) == expected


def test_mask_can_require_a_vector(table: ItemTable) -> None:
    assert _ids(table, table.mask(None, need_vector=True)) == ALL - {"novec"}


def test_but_not_adds_exclusions(table: ItemTable) -> None:
    where = Where(include_tags=frozenset({"animals"})).but_not({"dogs"})
    assert _ids(table, table.mask(where)) == {"cats", "novec"}


# --- nearest ----------------------------------------------------------------------------------
def test_nearest_on_the_fused_vector(table: ItemTable) -> None:
    # "pics" shares the artwork only, "dogs" the description only: image and text weigh the
    # same, and a missing modality does not count against an item
    hits = table.nearest(FUSED, _fused([1, 0, 0], [1, 0]), 3, None)
    assert [i for i, _ in hits] == ["cats", "pics", "dogs"]
    assert hits[0][1] == pytest.approx(1.0, abs=1e-3)
    assert hits[0][1] > hits[1][1] > hits[2][1]


def test_nearest_ignores_the_query_scale(table: ItemTable) -> None:
    q = _fused([0, 0, 1], [0, 1])
    a = table.nearest(FUSED, q, 5, None)
    b = table.nearest(FUSED, 7.5 * q, 5, None)
    assert [i for i, _ in a] == [i for i, _ in b]
    np.testing.assert_allclose([s for _, s in a], [s for _, s in b], atol=1e-5)


def test_nearest_honours_where(table: ItemTable) -> None:
    q = _fused([1, 0, 0], [1, 0])
    hits = table.nearest(FUSED, q, 10, Where(exclude_ids=frozenset({"cats"}), max_age=12))
    assert [i for i, _ in hits] == ["pics", "dogs"]
    assert table.nearest(FUSED, q, 10, Where(include_tags=frozenset({"nope"}))) == []
    assert table.nearest(FUSED, q, 0, None) == []


def test_nearest_on_one_modality_block(table: ItemTable) -> None:
    # by text alone "dogs" is almost "cats"; items without a text block are not candidates
    hits = table.nearest("text", np.array([1.0, 0.0, 0.0], dtype=np.float32), 10, None)
    ids = [i for i, _ in hits]
    assert ids[:2] == ["cats", "dogs"]
    assert hits[0][1] == pytest.approx(1.0, abs=1e-3)
    assert hits[1][1] == pytest.approx(0.9 / np.hypot(0.9, 0.1), abs=1e-3)
    assert "pics" not in ids and "novec" not in ids
    assert set(ids) == {"cats", "dogs", "war", "unrated"}


def test_nearest_on_image_block_honours_where(table: ItemTable) -> None:
    q = np.array([1.0, 0.0], dtype=np.float32)
    assert [i for i, _ in table.nearest("image", q, 2, None)] == ["cats", "pics"]
    hits = table.nearest("image", q, 2, Where(exclude_tags=frozenset({"cute"})))
    assert len(hits) == 2
    assert hits[0][0] == "pics"
    assert "unrated" not in {i for i, _ in table.nearest("image", q, 10, None)}


# --- contributions ----------------------------------------------------------------------------
@pytest.mark.parametrize(("a", "b"), [("cats", "dogs"), ("cats", "pics"), ("war", "unrated")])
def test_contributions_sum_to_the_fused_cosine(table: ItemTable, a: str, b: str) -> None:
    va, vb = table.vectors_of(table.rows([a, b]))
    parts = table.contributions(va, vb)
    assert set(parts) == set(DIMS)
    assert sum(parts.values()) == pytest.approx(float(va @ vb), abs=1e-5)
    cos = float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))
    assert sum(parts.values()) == pytest.approx(cos, abs=2e-3)  # float16 storage


def test_contributions_name_the_modality_that_makes_items_alike(table: ItemTable) -> None:
    va, vb = table.vectors_of(table.rows(["cats", "pics"]))  # same artwork, no shared text
    parts = table.contributions(va, vb)
    assert parts[Modality.IMAGE] > 0.3
    assert parts[Modality.TEXT] == pytest.approx(0.0, abs=1e-6)


# --- weights as a view --------------------------------------------------------------------------
def test_a_new_view_reweighs_every_row_without_touching_the_vectors(table: ItemTable) -> None:
    """The table keeps unit modality blocks; the fused vector is the view's doing."""
    from medley.recs.items import FusionView

    rows = table.rows(["cats", "dogs", "war"])
    stored = table.units.copy()
    image_only = FusionView({Modality.TEXT: 0.0, Modality.IMAGE: 1.0})
    text_heavy = {Modality.TEXT: 3.0, Modality.IMAGE: 1.0}
    for weights in (WEIGHTS, image_only.weights, text_heavy):
        view = table.viewed(FusionView(weights))
        want = np.stack([_fused_with(weights, *CATALOG[k][2:]) for k in range(3)])
        assert np.allclose(view.vectors_of(rows), want, atol=2e-3)
    assert np.array_equal(table.units, stored)
    # Under image-only weights an item with text alone has no usable vector.
    assert _ids(table.viewed(image_only), table.viewed(image_only).mask(None, need_vector=True)
                ) == {"cats", "dogs", "war", "pics"}
    # Surfaces may weigh differently from the main weights.
    split = table.viewed(FusionView(WEIGHTS, {"similar": image_only.weights}))
    assert np.allclose(split.vectors_of(rows, "similar"), table.viewed(image_only).vectors_of(rows))
    assert not np.allclose(split.vectors_of(rows), split.vectors_of(rows, "similar"))


def _fused_with(weights: dict[Modality, float], text: list[float] | None,
                image: list[float] | None) -> np.ndarray:
    parts = {m: np.array(v, dtype=np.float32)
             for m, v in ((Modality.TEXT, text), (Modality.IMAGE, image)) if v is not None}
    vec = fusion.fuse(parts, weights, DIMS)
    return vec if vec is not None else np.zeros(fusion.fused_dim(DIMS), dtype=np.float32)


@pytest.mark.parametrize("centred", [False, True])
@pytest.mark.parametrize(("weights", "surface"), [
    ({}, None),  # the view's weights, every modality counted
    ({Modality.TEXT: 0.0}, None),  # a modality weighted 0 adds nothing
    ({}, "recommendations"),  # a surface with its own weights
])
def test_dots_equal_the_fused_vectors_products(weights: dict[Modality, float],
                                               surface: str | None, centred: bool) -> None:
    """Scoring candidates without building their fused (or centred) vectors gives the same
    numbers as building them: items missing modalities, a zero weight and a surface view."""
    rng = np.random.default_rng(3)
    dims = {Modality.TEXT: 8, Modality.IMAGE: 6, Modality.SPEECH: 4}
    table = ItemTable(dims)
    base = {m: 1.0 for m in dims} | weights
    table.view = FusionView(base, surfaces={"recommendations": {Modality.IMAGE: 3.0,
                                                                Modality.TEXT: 1.0}})
    for k in range(60):  # a shared offset: the catalog mean is far from zero, as real ones are
        vectors = {m: rng.normal(size=d) + 1.5 for m, d in dims.items() if rng.random() < 0.7}
        table.upsert(f"i{k}", _info(f"i{k}"), vectors)
    rows = rng.choice(60, 25, replace=False)
    queries = rng.normal(size=(4, table.dim)).astype(np.float32)
    expected = table.vectors_of(rows, surface, centred=centred) @ queries.T
    np.testing.assert_allclose(table.dots(rows, queries, surface, centred=centred), expected,
                               atol=1e-5)
    np.testing.assert_allclose(table.dots(rows, queries[0], surface, centred=centred)[:, 0],
                               expected[:, 0], atol=1e-5)
