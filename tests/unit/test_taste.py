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
