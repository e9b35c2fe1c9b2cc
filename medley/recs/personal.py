"""A for-you request's personal candidate sources, and the nearline entries that keep them.

The sources: the index search of the user's content taste, the collaborative model's top items
for their folded-in vector, and the ranker's item-to-item neighbours of what they engaged with
lately. A request without filters of its own reads them from the user's entry
(`medley.recs.user_lists`), found by an earlier request or ahead of it by the sync's ticks
(`warm`); under a newer model only the model's part is found again.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from index.base import FUSED, Where
from medley.recs import features, neighbours, user_lists
from medley.recs.answers import FOR_YOU
from medley.recs.signals import Taste
from medley.recs.user_lists import EMPTY, UserCandidates

if TYPE_CHECKING:
    from medley.recs.engine import Recommender



class PersonalSources:
    def __init__(self, rec: Recommender) -> None:
        self.rec = rec

    def stamp(self, user_id: str) -> tuple[int, tuple[int | None, str | None]]:
        """What a user's entry depends on, the model aside: their events, the view."""
        user = self.rec.behavior.user(user_id)
        return (user.events if user else 0, neighbours.view_key(self.rec.table))

    def walk_key(self) -> tuple[int, tuple[int | None, str | None]]:
        """What every user's entry depends on: a change refinds them all."""
        return self.rec.model_serial, neighbours.view_key(self.rec.table)

    def get(self, user_id: str | None, taste: Taste, consumed: set[str], flt: Where,
            stamp: Hashable | None) -> UserCandidates:
        """The personal sources' candidates: the user's entry when it holds under `stamp`
        (the taste is then given the folded-in vector it was found with; under a newer model,
        its model's part is found again), else found now and kept under `stamp`. `stamp`:
        the user's, read before their taste; None for a request with filters of its own
        (found, not kept)."""
        rec = self.rec
        if stamp is None or not user_id:  # nothing kept: the request scores its own pool
            return self.find(taste, consumed, flt, (), keep=False)
        entry = rec.user_lists.get(user_id, stamp, rec.table.version)
        if entry is None:
            entry = self.find(taste, consumed, flt, stamp)
            rec.user_lists.put(user_id, entry)
        elif entry.model != rec.model_serial:
            entry = self._with_model(entry, taste, consumed)
            rec.user_lists.put(user_id, entry)
        elif entry.user_vector is not None and rec.collab is not None:
            taste.folded = (rec.collab, entry.user_vector)
        return entry

    def warm(self, user_id: str) -> bool:
        """Find a user's entry ahead of their request (background work), or only its model
        part under a newer model; False when their entry still holds."""
        rec = self.rec
        stamp = self.stamp(user_id)
        entry = rec.user_lists.peek(user_id, stamp, rec.table.version)
        if entry is not None and entry.model == rec.model_serial:
            return False
        taste, consumed = rec.user_taste(user_id, None)
        if entry is not None:
            rec.user_lists.put(user_id, self._with_model(entry, taste, consumed))
        else:
            rec.user_lists.put(user_id, self.find(
                taste, consumed, rec.filters(None, None, consumed), stamp))
        return True

    def window(self, flt: Where, now: float) -> Where:
        """`flt` narrowed to the items new at `now` (published within the new-item age)."""
        return flt.published_within(now - self.rec.s.new_item_max_age_days * 86400, now)

    def held(self, user_id: str, stamp: Hashable) -> UserCandidates | None:
        """The user's entry if it holds under `stamp`, under any model (its new-item matches
        do not depend on one); nothing is found when it does not."""
        return self.rec.user_lists.get(user_id, stamp, self.rec.table.version)

    def young(self, entry: UserCandidates, taste: Taste, window: Where, allowed: np.ndarray,
              limit: int) -> list[str] | None:
        """The new items matching the taste, from the entry: those it found, and those
        written or released since (scanned here: a newly indexed item is recommendable at
        once), as they pass `window` and `allowed` now, best match first. What the index
        search of `Recommender._matching` finds, without the search; an entry that outlives
        a catalog change does so for at most `UserLists.max_age_s`. None: the entry cannot
        say (it has none, or fewer than half of a full list pass now: an audience cap its
        search did not apply, or its items aged out of the window); the request searches."""
        if entry.young is None or taste.vector is None:
            return None
        table = self.rec.table
        published = table.published[: len(table.ids)]
        released = np.flatnonzero(published > entry.young_at)  # the window's end: `admits`
        rows = np.unique(np.concatenate([entry.young, table.changed_since(entry.table_version),
                                         released]))
        rows = rows[table.admits(rows, window, need_vector=True)]
        rows = rows[rows < len(allowed)]  # a row added since the mask was built: next time
        rows = rows[allowed[rows]]
        if len(rows) < limit // 2 <= len(entry.young):
            return None
        if len(rows) == 0:
            return []
        near = table.dots(rows, taste.vector)[:, 0]  # the fused vectors, as the index has them
        best = rows[np.argsort(-near, kind="stable")[:limit]]
        return [table.ids[r] for r in best.tolist()]

    def find(self, taste: Taste, consumed: set[str], flt: Where, stamp: Hashable, *,
             keep: bool = True) -> UserCandidates:
        """Search the personal sources for this taste. `keep`: an entry to keep (with the
        new items matching the taste, and the personal features of its candidates)."""
        rec = self.rec
        c = rec.s.candidates_per_source
        # Read before searching: a change meanwhile makes the entry the older.
        version, found_at = rec.table.version, rec.user_lists.clock()
        content = EMPTY
        if taste.vector is not None:
            content = self._rows([i for i, _ in rec.search(FUSED, taste.vector, c, flt)])
        young, now = None, rec.clock()
        if keep and taste.vector is not None:  # the request's "new" source (`young`)
            young = self._rows([i for i, _ in rec.search(FUSED, taste.vector, c,
                                                         self.window(flt, now))])
        entry = UserCandidates(stamp, version, found_at, content, EMPTY, EMPTY, None,
                               young=young, young_at=now)
        return self._with_model(entry, taste, consumed, keep)

    def _ranks(self) -> bool:
        """Whether `score` uses the learned ranker (its features are what an entry keeps)."""
        return self.rec.ranker_of(self.rec.collab) is not None

    def _with_model(self, entry: UserCandidates, taste: Taste, consumed: set[str],
                    keep: bool = True) -> UserCandidates:
        """The entry's model part found under the served model: the collaborative and
        item-to-item candidates, the folded-in vector and, where the ranker scores, the
        personal features kept. The content part stays: the same taste, the same view (a
        new model costs each user a product with the model, not index searches)."""
        rec = self.rec
        c = rec.s.candidates_per_source
        collab, serial = rec.collab, rec.model_serial
        collab_rows = knn_rows = EMPTY
        uv = rec.user_vector(taste, collab)
        if collab is not None and uv is not None:  # (consumed ones cannot return: stamped)
            top = collab.top_for_user(uv, c + len(consumed))
            collab_rows = self._rows([i for i in top if i not in consumed])
        item_knn = rec.item_knn()
        if item_knn is not None and len(taste.liked_rows):
            history = [rec.table.ids[r] for r in taste.liked_rows]
            knn_rows = self._rows(item_knn.top(history, c // 2, consumed))
        kept = None
        if keep and self._ranks():
            # With the other candidates a request is likely to find: trending and popular
            # items move slowly; what a request finds beyond these it computes itself.
            rows = np.unique(np.concatenate([
                entry.content, collab_rows[:c], knn_rows,
                entry.young if entry.young is not None else EMPTY,
                self._rows(rec.behavior.trending_top(c // 2)),
                self._rows(rec.behavior.popularity_top(c // 2))]))
            kept = (rows, self._features(entry, taste, rows))
        return replace(entry, model=serial, collab=collab_rows, knn=knn_rows,
                       user_vector=uv if collab is not None else None, kept=kept)

    def _features(self, entry: UserCandidates, taste: Taste, rows: np.ndarray) -> np.ndarray:
        """`features.PERSONAL` of these rows: the taste's products the entry kept stand (the
        same taste); only the model's are computed again."""
        rec = self.rec
        collab = rec.collab
        user = rec.signals(taste, collab)
        values = np.empty((len(rows), len(features.PERSONAL)), dtype=np.float32)
        old = entry.kept[0] if entry.kept is not None else EMPTY
        reuse = np.isin(rows, old)
        if reuse.any():
            assert entry.kept is not None
            at = np.searchsorted(old, rows[reuse])
            values[reuse] = entry.kept[1][at]
            values[reuse, 2:] = features.personal_model(rec.table, collab, user, rows[reuse])
        if (~reuse).any():
            values[~reuse] = features.personal(rec.table, collab, user, rows[~reuse], FOR_YOU)
        return values

    def _rows(self, ids: Sequence[str]) -> np.ndarray:
        return user_lists.rows_of(self.rec.table, ids)
