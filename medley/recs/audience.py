"""New to the audience: the cap on how many distinct users may have engaged with an item for
an answer to offer it, and new-item searches restricted by that cap.

An item's audience is the number of distinct users with a positive event on it
(`Behavior.audience`). It lives in the serving process's memory, not in the index payload
(it changes with every event; re-writing payloads that often would swamp the index), so an
index search cannot filter on it. `search_within` still finds the best content matches among
the items under the cap, the way an uncapped new-item search would.
"""

from __future__ import annotations

import numpy as np

from index.base import FUSED, Where
from medley.config import RankingSettings
from medley.recs.items import ItemTable
from medley.recs.signals import SearchFn

# Young items over the cap are left out of the index query by id up to this many (after a bulk
# import with history, and no release dates, that is most of the catalog: ids would not scale).
EXCLUDE_MAX = 1000
EXACT_MAX = 1000  # else up to this many items under the cap are ranked exactly, in the table
OVERFETCH = 5  # else the index is asked for this many times the limit, then filtered


def cap_for(settings: RankingSettings, only_new: bool, max_audience: int | None) -> int | None:
    """The audience cap an answer applies: the caller's; for new items, by default, the
    setting (an item many people already engaged with is not new to the audience)."""
    if max_audience is not None:
        return max_audience
    return settings.new_item_max_audience if only_new else None


def search_within(search: SearchFn, table: ItemTable, vector: np.ndarray, young: Where,
                  allowed: np.ndarray, limit: int) -> list[str]:
    """The best content matches for `vector` among the rows that pass `young` and `allowed`
    (a row mask that carries the audience cap, which the index cannot see)."""
    inside = table.mask(young, need_vector=True)
    n = min(len(inside), len(allowed))
    ok = inside[:n] & allowed[:n]
    blocked = np.flatnonzero(inside[:n] & ~allowed[:n])

    def keep(ids: list[str]) -> list[str]:
        rows = [table.row.get(i) for i in ids]
        return [i for i, r in zip(ids, rows, strict=True) if r is not None and r < n and ok[r]]

    if len(blocked) <= EXCLUDE_MAX:  # the same index ranking as an uncapped search
        where = young.but_not({table.ids[r] for r in blocked}) if len(blocked) else young
        return keep([i for i, _ in search(FUSED, vector, limit, where)])
    rows = np.flatnonzero(ok)
    if len(rows) <= EXACT_MAX:  # fused vectors under the served weights, as the index has them
        scores = table.vectors_of(rows) @ vector.astype(np.float32)
        return [table.ids[rows[k]] for k in np.argsort(-scores)[:limit]]
    return keep([i for i, _ in search(FUSED, vector, limit * OVERFETCH, young)])[:limit]
