"""A user's liked items, newest first: the ranker's closest-liked-item feature reads only the
newest few (`features.LIKED_MAX_RECENT`), so the order decides what it sees."""

from __future__ import annotations

import numpy as np

from medley.domain import Modality
from medley.recs.items import ItemInfo, ItemTable
from medley.recs.signals import taste_of


def _table() -> ItemTable:
    table = ItemTable({Modality.TEXT: 4})
    for k in range(4):
        table.upsert(f"i{k}", ItemInfo(f"i{k}", (), None, None, 0.0), {Modality.TEXT: np.eye(4)[k]})
    return table


def test_liked_rows_are_newest_first_by_time_each_once() -> None:
    table = _table()
    now = 1_000_000.0
    # As `Recommender.user_taste` builds them: stated likes (dated now) first, then the
    # user's events oldest to newest, an item liked twice among them.
    positives = [("i3", 3.0, now), ("i0", 3.0, now - 300), ("i1", 3.0, now - 200),
                 ("i0", 3.0, now - 100), ("i2", 3.0, now - 50)]
    taste = taste_of(table, positives, {}, now)
    assert [table.ids[r] for r in taste.liked_rows] == ["i3", "i2", "i0", "i1"]


def test_the_closest_liked_item_feature_is_the_same_from_the_tastes_vectors() -> None:
    """The ranker's features read the liked items' centred vectors the taste computed; they
    must be what centring those rows again gives, row for row, or the trees would be served
    features they were not trained on."""
    from medley.recs import features
    from medley.recs.behavior import Behavior
    from medley.recs.predicted import Predicted

    rng = np.random.default_rng(0)
    table = ItemTable({Modality.TEXT: 8, Modality.IMAGE: 6})
    for k in range(30):
        vecs = {Modality.TEXT: rng.normal(size=8) + 2.0}
        if k % 3:  # some items lack artwork
            vecs[Modality.IMAGE] = rng.normal(size=6)
        table.upsert(f"i{k}", ItemInfo(f"i{k}", (), None, None, 0.0), vecs)
    now = 1_000_000.0
    positives = [(f"i{k}", 3.0, now - 10 * k) for k in (4, 9, 2, 17, 9, 11, 1, 5, 8, 13, 21, 3)]
    taste = taste_of(table, positives, {"i7": 1.0}, now, "recommendations")
    newest = taste.liked_rows[: features.LIKED_MAX_RECENT]
    assert taste.liked_vectors is not None and len(taste.liked_vectors) == len(newest)
    np.testing.assert_array_equal(
        taste.liked_vectors, table.vectors_of(newest, "recommendations", centred=True))
    ids = [f"i{k}" for k in range(30)]
    args = (table, Behavior(86400.0, 3600.0), None, Predicted(None), now)
    with_vectors = features.UserSignals(taste.vector, None, taste.liked_rows, 12,
                                        liked_vectors=taste.liked_vectors)
    without = features.UserSignals(taste.vector, None, taste.liked_rows, 12)
    got = features.compute(*args, with_vectors, ids, "recommendations")
    again = features.compute(*args, without, ids, "recommendations")
    k = features.NAMES.index("liked_max")
    assert np.isfinite(got[:, k]).all()
    np.testing.assert_array_equal(got, again)
