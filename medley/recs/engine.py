"""Answers for client apps: similar items, for-you, new items. Candidates from several
sources, one blended score, then re-ranking (diversity, boosts, exploration, pins).

Search lives in `medley.recs.search`; reason wording in `medley.recs.reasons`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from itertools import compress, repeat
from typing import TYPE_CHECKING

import numpy as np

from index.base import FUSED, Where
from medley.config import RankingSettings
from medley.recs import audience, features, neighbours, reasons, user_lists
from medley.recs.answers import Answer, Editorial, Preferences, Scored
from medley.recs.behavior import Behavior
from medley.recs.collab import CollabModel
from medley.recs.items import ItemTable
from medley.recs.knn import ItemKnn
from medley.recs.neighbours import NeighbourLists
from medley.recs.predicted import Predicted
from medley.recs.ranking import BlendWeights, behaviour_weight, blend, interleave, mmr, place_pins
from medley.recs.signals import Priors, SearchFn, Taste, taste_of
from medley.recs.user_lists import UserCandidates, UserLists

if TYPE_CHECKING:
    from medley.recs.ranker import Ranker

LIKED_WEIGHT = 3.0  # a stated liked item counts as a like
EXPLORE_POOL = 300  # newest in-grace items (and fastest movers) considered for exploration
# Surfaces a fusion profile may weigh differently (`FusionView.surfaces`).
SIMILAR, FOR_YOU = "similar", "recommendations"


@dataclass
class Pool:
    """Candidates and their signals for one request."""

    ids: list[str]
    sources: dict[str, set[str]] = field(default_factory=dict)  # item -> which sources found it

    def add(self, found: Sequence[str], source: str) -> None:
        sources = self.sources  # one lookup per item: pools are hundreds long, per request
        for item in found:
            have = sources.get(item)
            if have is None:
                self.ids.append(item)
                sources[item] = {source}
            else:
                have.add(source)


class Recommender:
    def __init__(
        self, settings: RankingSettings, table: ItemTable, behavior: Behavior, search: SearchFn,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.s = settings
        self.table = table
        self.behavior = behavior
        self.search = search
        self.clock = clock
        self._collab: CollabModel | None = None
        self._editorial = Editorial()
        self._changes = 0  # models and editorial settings served (see `generation`)
        self.priors = Priors(settings.prior_neighbours)
        # Each item's content candidates for `similar`, found ahead of requests (the sync's
        # ticks, `neighbours.fill`).
        self.neighbours = NeighbourLists(settings.candidates_per_source)
        # Each user's personal candidates, found ahead of requests (the sync's ticks,
        # `warm_user`) or by their first request, while their stamps hold.
        self.user_lists = UserLists(settings.user_lists_size, settings.user_lists_max_age_s)
        self._model_serial = 0  # moves with every model served (a user list's stamp)
        # Requests answered (counted by the service; approximate under threads): the
        # background fill of user lists only asks whether any came since its last tick.
        self.served = 0
        self.predicted = Predicted()  # the content map's output per item, for `collab`
        # Neighbour searches one request may spend on priors. Serving leaves it at 0: the
        # background warmer (`warm_priors`) searches what requests asked for; offline callers
        # raise it.
        self.prior_budget = 0
        # False: the hand blend scores even where the model carries a learned ranker (an
        # experiment arm comparing the two, medley/experiments/arms.py).
        self.use_ranker = True
        self.weights = BlendWeights(settings.blend_content, settings.blend_collab,
                                    settings.blend_popularity, settings.behavior_confidence)

    @property
    def generation(self) -> int:
        """Moves whenever something every answer depends on changes: an item, the fusion
        view, the model, editorial settings. Answer caches stamp with it."""
        return self._changes + self.table.version

    @property
    def editorial(self) -> Editorial:
        return self._editorial

    @editorial.setter
    def editorial(self, editorial: Editorial) -> None:
        if editorial != self._editorial:
            self._editorial = editorial
            self._changes += 1

    @property
    def collab(self) -> CollabModel | None:
        return self._collab

    @collab.setter
    def collab(self, model: CollabModel | None) -> None:
        self.use_model(model)

    def use_model(self, model: CollabModel | None, predicted: Predicted | None = None) -> None:
        """Serve this model, with its content-map cache (`predicted`, warmed by the caller;
        else an empty one that fills as requests ask)."""
        self.predicted = predicted if predicted is not None and predicted.model is model \
            else Predicted(model)
        self._collab = model
        self._changes += 1
        self._model_serial += 1

    # --- shared steps -----------------------------------------------------------------------
    def user_taste(self, user_id: str | None, prefs: Preferences | None) -> tuple[Taste, set[str]]:
        now = self.clock()
        user = self.behavior.user(user_id) if user_id else None
        positives = list(user.positives) if user else []
        if prefs:
            positives = [(i, LIKED_WEIGHT, now) for i in prefs.liked_items] + positives
        negatives = dict(user.negatives) if user else {}
        consumed = set(user.consumed) if user else set()
        taste = taste_of(self.table, positives, negatives, now, FOR_YOU)
        taste.events = user.events if user else 0
        taste.user = user_id
        return taste, consumed

    def user_vector(self, taste: Taste, collab: CollabModel | None) -> np.ndarray | None:
        """The user's collaborative vector under `collab`, folded in from their recent
        positives once per request (kept on the taste)."""
        if collab is None or not taste.positives:
            return None
        if taste.folded is None or taste.folded[0] is not collab:
            taste.folded = (collab, collab.fold_in(taste.positives))
        return taste.folded[1]

    def _item_knn(self) -> ItemKnn | None:
        """The served ranker's item-to-item weights, a candidate source of its own: the items
        that follow what the user engaged with lately, which ALS's and content's top items
        miss. Only where the ranker scores them (the hand blend has no term for them)."""
        ranker = self._ranker(self.collab)
        return ranker.knn if ranker is not None else None

    def _ranker(self, collab: CollabModel | None) -> Ranker | None:
        """The model's learned ranker, where `score` uses it: this recommender ranks with it
        and its features are this code's (`features.NAMES`); else None (the hand blend)."""
        ranker = collab.ranker if collab is not None and self.use_ranker else None
        return ranker if ranker is not None and tuple(ranker.names) == features.NAMES else None

    def _signals(self, taste: Taste, collab: CollabModel | None) -> features.UserSignals:
        return features.UserSignals(taste.vector, self.user_vector(taste, collab),
                                    taste.liked_rows, taste.events,
                                    liked_vectors=taste.liked_vectors,
                                    trained=features.trained_of(collab, taste.user))

    def score(self, ids: list[str], taste: Taste, prefs: Preferences | None,
              kept: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Score per candidate: the learned ranker when the model carries one that fits this
        catalog's features, else the hand-set blend (see `medley.recs.ranking`). `kept`: the
        user's personal features found ahead (`UserCandidates.kept`)."""
        now = self.clock()
        collab = self.collab
        user_vec = self.user_vector(taste, collab)
        stated = None
        if prefs is not None and prefs.text_vector is not None:
            stated = self._block_cos(self.table.vectors_of(self.table.rows(ids), FOR_YOU),
                                     "text", prefs.text_vector)
        ranker = self._ranker(collab)
        if ranker is not None:
            user = self._signals(taste, collab)
            x = features.compute(self.table, self.behavior, collab, self.predicted, now, user,
                                 ids, FOR_YOU, ranker.knn, kept)
            if stated is not None:  # what they asked for counts as taste matched
                k = features.NAMES.index("content")
                x[:, k] = np.fmax(x[:, k], stated)
            extra = None
            new = ranker.new_rows(x)
            if len(new) > 1 and ranker.cold_needs_extra:  # only new items need CALS
                user.cals = features.cals_vector(self.table, collab, self.predicted, taste.user,
                                                 taste.positives)
                user.uclf = features.uclf_of(collab, taste.user)
                extra = np.full((len(ids), len(features.COLD)), np.nan, dtype=np.float32)
                extra[new] = features.cold(self.table, collab, self.predicted, user,
                                           [ids[k] for k in new])
            return self._boost(ids, ranker.score(x, extra))
        rows = self.table.rows(ids)
        content = (self.table.dots(rows, taste.vector, FOR_YOU, centred=True)[:, 0]
                   if taste.vector is not None else np.full(len(ids), np.nan))
        if stated is not None:
            content = np.fmax(content, stated)
        observed = (collab.scores(user_vec, ids) if collab is not None and user_vec is not None
                    else np.full(len(ids), np.nan))
        pops = np.array(self.behavior.popularity_log(ids, now))
        counts = np.array(self.behavior.counts(ids), dtype=np.float64)
        need = [i for i, a in zip(ids, behaviour_weight(counts, self.weights.confidence),
                                   strict=True) if a < 0.5]  # the least known items first
        self.priors.search_neighbours(need, self.table, self.search, self.prior_budget)
        col_prior, pop_prior = self.priors.predict(ids, self.behavior, collab, user_vec, now)
        scores = blend(content, observed, pops, col_prior, pop_prior, counts, self.weights)
        return self._boost(ids, scores)

    def _block_cos(self, vecs: np.ndarray, modality: str, query: np.ndarray) -> np.ndarray:
        from medley.domain import Modality

        sl = self.table.layout.get(Modality(modality))
        if sl is None or query.shape != (sl.stop - sl.start,):
            return np.full(len(vecs), np.nan)
        block = vecs[:, sl]
        norms = np.linalg.norm(block, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(norms > 0, block @ query / norms / np.linalg.norm(query), np.nan)

    def _boost(self, ids: list[str], scores: np.ndarray) -> np.ndarray:
        boosts = self.editorial.boosts
        if not boosts or not len(scores):
            return scores
        factor = np.ones(len(ids))
        for k, item in enumerate(ids):
            info = self.table.get(item)
            tags = info.tags if info else ()
            for key in (item, *(f"tag:{t}" for t in tags)):
                factor[k] *= boosts.get(key, 1.0)
        base = scores.min()
        return base + (scores - base + 1e-3) * factor

    def filters(self, where: Where | None, prefs: Preferences | None, consumed: set[str]) -> Where:
        where = (where or Where()).but_not(consumed)
        return where.without_tags(prefs.disliked_tags) if prefs and prefs.disliked_tags else where

    def young(self, where: Where, now: float, *, any_age: bool = False,
              max_audience: int | None = None) -> list[str]:
        """Items published within the new-item age (or any), passing the filters (and the
        audience cap, if any), newest first. Age counts from published_at when the content
        team gave one, else from entering the catalog (`ItemTable.published`): a back catalog
        imported with its release dates is not new."""
        m = self.table.mask(where)
        published = self.table.published[: len(m)]
        m &= published <= now  # dated in the future: not new yet (clock skew, scheduled items)
        if not any_age:
            m &= published >= now - self.s.new_item_max_age_days * 86400
        if max_audience is not None:
            m &= self.behavior.audience_by_row(self.table.row, len(m)) <= max_audience
        rows = np.flatnonzero(m)
        rows = rows[np.argsort(-published[rows])]
        ids = [self.table.ids[r] for r in rows]
        return ids if max_audience is None else self.behavior.within_audience(ids, max_audience)

    def _keep(self, ids: Sequence[str], allowed: np.ndarray) -> list[str]:
        """The ids the table knows whose rows pass `allowed` (a mask from `table.mask`)."""
        rows = self.table.rows(ids)
        ok = (rows >= 0) & (rows < len(allowed))
        ok[ok] = allowed[rows[ok]]
        return list(compress(ids, ok.tolist()))

    def popular(self, n: int, where: Where, context: dict[str, str] | None = None) -> list[str]:
        """Trending (in this context first), then popular over the longer half-life."""
        ranked = self.behavior.trending_top(max(n * 4, 50), context)
        ranked += self.behavior.popularity_top(max(n * 4, 50))
        return self._keep(list(dict.fromkeys(ranked)), self.table.mask(where))[:n]

    # --- endpoints --------------------------------------------------------------------------
    def similar(self, item_id: str, n: int, where: Where | None) -> Answer:
        r = self.table.row.get(item_id)
        base = (where or Where()).but_not({item_id})
        if r is None or not self.table.has_vector(r):
            return self.fallback(n, base, "this item has no content vector yet")
        q = self.table.vectors_of(np.array([r]), SIMILAR)[0]
        # Content candidates: the item's nearline list (found when it was indexed; what it
        # holds is filtered below), else an index search. A business filter searches: it may
        # pass too few of the list's items.
        c = self.s.candidates_per_source
        lists = self.neighbours  # an experiment arm's copy shares the live lists
        plain = replace(base, exclude_ids=frozenset()) == Where()
        listed = (lists.get(r) if plain and lists.key == neighbours.view_key(self.table)
                  and lists.k >= c else None)
        if listed is not None:
            listed = listed[:c]  # best first: an arm may ask for fewer
        content_rows = (listed if listed is not None else
                        self.table.rows([i for i, _ in self.search(FUSED, q, c, base)]))
        co: dict[str, float] = {}
        if self.collab is not None:
            co.update(self.collab.similar_items(item_id, c))
        for other, cnt in self.behavior.co_engagement(item_id, c):
            co[other] = max(co.get(other, 0.0), cnt / (cnt + 3.0))
        rows = np.concatenate([content_rows, self.table.rows(list(co))])
        _, first = np.unique(rows, return_index=True)  # each once, in the order found
        rows = rows[np.sort(first)]
        rows = rows[self.table.admits(rows, base, need_vector=True)]
        if not len(rows):
            return Answer([])
        ids = [self.table.ids[x] for x in rows.tolist()]
        content = self.table.dots(rows, q, SIMILAR)[:, 0]
        coeng = np.fromiter(map(co.get, ids, repeat(0.0)), dtype=np.float64, count=len(ids))
        beta = float(behaviour_weight(np.array([self.behavior.interactions.get(item_id, 0)]),
                                      self.weights.confidence)[0])
        scores = self._boost(ids, content + beta * self.weights.collab * np.fmax(coeng, 0.0))
        order = np.argsort(-scores)[:n]
        vecs = self.table.vectors_of(rows[order], SIMILAR)  # the answer's rows only: reasons
        title = self.table.get(item_id)
        out = []
        for j, k in enumerate(order):
            parts = self.table.contributions(q, vecs[j])
            why = reasons.similar(parts, co.get(ids[k], 0.0) * beta,
                                  title.title if title else "this")
            out.append(Scored(ids[k], float(scores[k]), why,
                              {m.value: v for m, v in parts.items()}))
        return Answer(out)

    def for_user(
        self, user_id: str, n: int, where: Where | None, prefs: Preferences | None,
        context: dict[str, str] | None = None, *, only_new: bool = False,
        max_audience: int | None = None,
    ) -> Answer:
        """For-you (or, `only_new`, new items) for a user. `max_audience`: only items at most
        that many distinct users engaged with (new items default to the setting)."""
        now = self.clock()
        taste, consumed = self.user_taste(user_id, prefs)
        flt = self.filters(where, prefs, consumed)
        allowed = self.table.mask(flt, need_vector=True)  # once per request: ~1 ms at 100k
        cap = audience.cap_for(self.s, only_new, max_audience)
        if cap is not None:  # a behaviour filter: the index cannot apply it, every source can
            allowed &= self.behavior.audience_by_row(self.table.row, len(allowed)) <= cap
        c = self.s.candidates_per_source
        young = flt.published_within(now - self.s.new_item_max_age_days * 86400, now)
        pool = Pool([])
        explorers: list[str] = []
        found: UserCandidates | None = None
        new = self._matching(taste, young, allowed, c, now, capped=cap is not None)
        pool.add(new, "new")
        if not only_new:
            # Without filters of its own the request's personal searches are the user's
            # nearline entry's (`medley.recs.user_lists`): read, not searched, when it holds.
            plain = (where is None or where == Where()) and prefs is None
            found = self._personal(user_id, taste, consumed, flt, reuse=plain)
            pool.add(self._kept_rows(found.content, allowed), "content")
            if prefs and prefs.text_vector is not None:
                pool.add([i for i, _ in self.search("text", prefs.text_vector, c, flt)], "stated")
            pool.add(self._kept_rows(found.collab, allowed)[:c], "collab")
            pool.add(self._kept_rows(found.knn, allowed), "knn")
            pool.add(self._keep(self.behavior.trending_top(c // 2, context), allowed), "trending")
            pool.add(self._keep(self.behavior.popularity_top(c // 2), allowed), "popular")
            explorers = self._explorers(taste, new, allowed, now)
            pool.add(explorers, "explore")
        pool.ids = self._keep(pool.ids, allowed)
        if cap is not None:  # exact now: the row counts behind `allowed` may lag by 0.5 s
            pool.ids = self.behavior.within_audience(pool.ids, cap)
        if not pool.ids:  # nothing behavioural or new to go on: the newest items, flagged
            return self.fallback(n, flt, "no signal for this user yet", context,
                                 max_audience=cap)
        scores = self.score(pool.ids, taste, prefs, found.kept if found else None)
        by_id = dict(zip(pool.ids, scores, strict=True))
        best = np.argsort(-scores)[: 3 * n]
        shortlist = [pool.ids[k] for k in best]
        vecs = self.table.vectors_of(self.table.rows(shortlist), FOR_YOU)
        ranked = [shortlist[k] for k in mmr(scores[best], vecs, self.s.mmr_lambda, n)]
        if not only_new:
            explore = sorted((i for i in explorers if i in by_id), key=lambda i: -by_id[i])
            ranked = interleave(ranked, explore, n, self.s.exploration_share)
            pinned_ok = set(self._keep([i for i, _ in self.editorial.pins], allowed))
            pins = [(i, p) for i, p in self.editorial.pins if i in pinned_ok]
            ranked = place_pins(ranked, pins, n)
        pinned = {i for i, _ in self.editorial.pins}
        explain = reasons.Explainer(self.table, taste, prefs, self.behavior, now,
                                    self.s.new_item_max_age_days * 86400)
        explain.prepare(ranked)
        return Answer([
            Scored(i, float(by_id.get(i, 0.0)),
                   explain(i, pool.sources.get(i, set()), i in pinned or self._boosted(i)))
            for i in ranked
        ])

    def user_stamp(self, user_id: str) -> tuple[int, tuple[int | None, str | None]]:
        """What a user's nearline candidates depend on, the model aside: their events, the
        view."""
        user = self.behavior.user(user_id)
        return (user.events if user else 0, neighbours.view_key(self.table))

    def personal_walk_key(self) -> tuple[int, tuple[int | None, str | None]]:
        """What every user's nearline entry depends on: a change refinds them all."""
        return self._model_serial, neighbours.view_key(self.table)

    def _personal(self, user_id: str | None, taste: Taste, consumed: set[str], flt: Where,
                  *, reuse: bool) -> UserCandidates:
        """The personal sources' candidates: the user's nearline entry when `reuse` and it
        holds (the taste is then given the folded-in vector it was found with; under a newer
        model, its model's part is found again), else found now, and kept when `reuse` (a
        request without filters of its own)."""
        if not reuse or not user_id:  # nothing kept: the request scores its own pool
            return self.find_personal(taste, consumed, flt, (), keep=False)
        stamp = self.user_stamp(user_id)
        entry = self.user_lists.get(user_id, stamp, self.table.version)
        if entry is None:
            entry = self.find_personal(taste, consumed, flt, stamp)
            self.user_lists.put(user_id, entry)
        elif entry.model != self._model_serial:
            entry = self._with_model(entry, taste, consumed)
            self.user_lists.put(user_id, entry)
        elif entry.user_vector is not None and self.collab is not None:
            taste.folded = (self.collab, entry.user_vector)
        return entry

    def find_personal(self, taste: Taste, consumed: set[str], flt: Where,
                      stamp: Hashable, *, ahead: bool = False, keep: bool = True
                      ) -> UserCandidates:
        """Search the personal sources for this taste: content (the index), the
        collaborative model's top items, the ranker's item-to-item neighbours. `ahead`:
        background work, ahead of the user's request; `keep`: an entry to keep (with the
        personal features of its candidates)."""
        c = self.s.candidates_per_source
        version, found_at = self.table.version, self.user_lists.clock()  # before: a change
        content = user_lists.EMPTY  # meanwhile makes it the older
        if taste.vector is not None:
            content = self._rows_of([i for i, _ in self.search(FUSED, taste.vector, c, flt)])
        young = user_lists.EMPTY
        if ahead and keep and taste.vector is not None and self._ranks():
            # Ahead of a request the new items matching the taste are searched too, for the
            # personal features kept (`_with_model`).
            now = self.clock()
            within = flt.published_within(now - self.s.new_item_max_age_days * 86400, now)
            young = self._rows_of([i for i, _ in self.search(FUSED, taste.vector, c, within)])
        entry = UserCandidates(stamp, version, found_at, content, user_lists.EMPTY,
                               user_lists.EMPTY, None, None, -1, young)
        return self._with_model(entry, taste, consumed, keep)

    def _ranks(self) -> bool:
        """Whether `score` uses the learned ranker (its features are what an entry keeps)."""
        return self._ranker(self.collab) is not None

    def _with_model(self, entry: UserCandidates, taste: Taste, consumed: set[str],
                    keep: bool = True) -> UserCandidates:
        """The entry's model part found under the served model: the collaborative and
        item-to-item candidates, the folded-in vector and, where the ranker scores, the
        personal features kept. The content part stays: the same taste, the same view (a
        new model costs each user a product with the model, not index searches)."""
        c = self.s.candidates_per_source
        collab = self.collab
        serial = self._model_serial
        collab_rows = knn_rows = user_lists.EMPTY
        uv = self.user_vector(taste, collab)
        if collab is not None and uv is not None:  # (consumed ones cannot return: stamped)
            top = collab.top_for_user(uv, c + len(consumed))
            collab_rows = self._rows_of([i for i in top if i not in consumed])
        item_knn = self._item_knn()
        if item_knn is not None and len(taste.liked_rows):
            history = [self.table.ids[r] for r in taste.liked_rows]
            knn_rows = self._rows_of(item_knn.top(history, c // 2, consumed))
        kept = None
        if keep and self._ranks():
            # With the other candidates a request is likely to find: trending and popular
            # items move slowly; what a request finds beyond these it computes itself.
            old = entry.kept[0] if entry.kept is not None else user_lists.EMPTY
            rows = np.unique(np.concatenate([
                entry.content, collab_rows[:c], knn_rows, entry.young,
                self._rows_of(self.behavior.trending_top(c // 2)),
                self._rows_of(self.behavior.popularity_top(c // 2))]))
            user = self._signals(taste, collab)
            values = np.empty((len(rows), len(features.PERSONAL)), dtype=np.float32)
            reuse = np.isin(rows, old) if entry.kept is not None else np.zeros(len(rows), bool)
            if reuse.any():  # their taste products stand; only the model's are new
                assert entry.kept is not None
                at = np.searchsorted(old, rows[reuse])
                values[reuse] = entry.kept[1][at]
                values[reuse, 2:] = features.personal_model(self.table, collab, user,
                                                            rows[reuse])
            if (~reuse).any():
                values[~reuse] = features.personal(self.table, collab, user, rows[~reuse],
                                                   FOR_YOU)
            kept = (rows, values)
        return replace(entry, model=serial, collab=collab_rows, knn=knn_rows,
                       user_vector=uv if collab is not None else None, kept=kept)

    def warm_user(self, user_id: str) -> bool:
        """Find a user's nearline candidates ahead of their request (background work), or
        only their model part under a newer model; False when their entry still holds."""
        stamp = self.user_stamp(user_id)
        entry = self.user_lists.peek(user_id, stamp, self.table.version)
        if entry is not None and entry.model == self._model_serial:
            return False
        taste, consumed = self.user_taste(user_id, None)
        if entry is not None:
            self.user_lists.put(user_id, self._with_model(entry, taste, consumed))
        else:
            self.user_lists.put(user_id, self.find_personal(
                taste, consumed, self.filters(None, None, consumed), stamp, ahead=True))
        return True

    def _rows_of(self, ids: Sequence[str]) -> np.ndarray:
        rows = self.table.rows(ids)
        return rows[rows >= 0].astype(np.int32)

    def _kept_rows(self, rows: np.ndarray, allowed: np.ndarray) -> list[str]:
        """`_keep` for table rows: the ids of those that pass `allowed`."""
        ok = rows < len(allowed)
        ok[ok] = allowed[rows[ok]]
        ids = self.table.ids
        return [ids[r] for r in rows[ok].tolist()]

    def _matching(self, taste: Taste, young: Where, allowed: np.ndarray, limit: int,
                  now: float, *, capped: bool = False) -> list[str]:
        """New items for this user: the best content matches (an index search restricted to
        new items; `capped`: `allowed` also holds an audience cap the index cannot see), else
        the fastest-moving and the newest."""
        if taste.vector is not None:
            if capped:
                return audience.search_within(self.search, self.table, taste.vector, young,
                                              allowed, limit)
            return [i for i, _ in self.search(FUSED, taste.vector, limit, young)]
        m = self.table.mask(young)
        fresh = self._keep(self.behavior.trending_top(limit), m[: len(allowed)] & allowed)
        return list(dict.fromkeys(fresh + self._newest(young, allowed, now, limit)))[:limit]

    def _newest(self, young: Where, allowed: np.ndarray, now: float, limit: int) -> list[str]:
        published = self.table.published[: len(allowed)]
        rows = np.flatnonzero(allowed & (published >= (young.published_from or 0.0))
                              & (published <= (now if young.published_to is None
                                                else min(young.published_to, now))))
        rows = rows[np.argsort(-published[rows])[:limit]]
        return [self.table.ids[r] for r in rows]

    def _boosted(self, item_id: str) -> bool:
        info = self.table.get(item_id)
        keys = (item_id, *(f"tag:{t}" for t in (info.tags if info else ())))
        return any(self.editorial.boosts.get(k, 1.0) > 1.0 for k in keys)

    def warm_priors(self, items: Sequence[str], budget: int) -> int:
        """Fill the neighbour cache for these items (background work); returns searches run."""
        return self.priors.search_neighbours(items, self.table, self.search, budget)

    def _explorers(self, taste: Taste, new: list[str], allowed: np.ndarray, now: float
                   ) -> list[str]:
        """New items that keep an exploration slot: inside the grace period (in the order
        `new` has them: best content matches first), or, after it, engaging fast enough."""
        half = self.s.candidates_per_source // 2
        grace = now - self.s.exploration_grace_hours * 3600
        young = now - self.s.new_item_max_age_days * 86400
        published = self.table.published  # new-ness counts from release (`young`)
        fresh = [i for i in new if published[self.table.row[i]] >= grace][:half]
        movers = self.behavior.trending_top(EXPLORE_POOL)  # under the lock
        rows = self.table.rows(movers)
        ok = (rows >= 0) & (rows < len(allowed))
        ok[ok] = allowed[rows[ok]] & (published[rows[ok]] >= young) & (published[rows[ok]] <= now)
        fast = [i for i in compress(movers, ok.tolist())  # few: the young among the movers
                if self.behavior.velocity(i, now) >= self.s.exploration_min_velocity]
        return list(dict.fromkeys(fresh + fast[:half]))

    def fallback(self, n: int, where: Where, note: str,
                 context: dict[str, str] | None = None, *,
                 max_audience: int | None = None) -> Answer:
        """Popularity, for when the index or a model cannot answer; flagged as such. Under an
        audience cap, popular items mostly fail it: the newest items under it fill in."""
        items = self.popular(n, where, context)[:n]
        if max_audience is not None:
            items = self.behavior.within_audience(items, max_audience)
        popular = set(items)
        if len(items) < n:  # a catalog without events yet: newest first
            now = self.clock()
            items += [i for i in self.young(where, now, any_age=True, max_audience=max_audience)
                      if i not in popular][: n - len(items)]
        trending = set(self.behavior.trending_top(n))
        return Answer([Scored(i, 0.0, ["trending" if i in trending else
                                       "popular" if i in popular else "newest"])
                       for i in items], fallback=True, note=note)
