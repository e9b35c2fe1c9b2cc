"""Answers for client apps: similar items, for-you, new items. Candidates from several
sources, one blended score, then re-ranking (diversity, boosts, exploration, pins).

Search lives in `medley.recs.search`; reason wording in `medley.recs.reasons`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from itertools import compress, repeat
from typing import TYPE_CHECKING

import numpy as np

from index.base import FUSED, Where
from medley.config import RankingSettings
from medley.recs import audience, features, neighbours, reasons, user_lists
from medley.recs.answers import FOR_YOU, SIMILAR, Answer, Editorial, Preferences, Scored
from medley.recs.behavior import Behavior
from medley.recs.collab import CollabModel
from medley.recs.items import ItemTable
from medley.recs.knn import ItemKnn
from medley.recs.neighbours import NeighbourLists
from medley.recs.personal import PersonalSources
from medley.recs.predicted import Predicted
from medley.recs.ranking import BlendWeights, behaviour_weight, blend, interleave, mmr, place_pins
from medley.recs.signals import Priors, SearchFn, Taste, taste_of
from medley.recs.user_lists import UserCandidates, UserLists

if TYPE_CHECKING:
    from medley.recs.ranker import Ranker

LIKED_WEIGHT = 3.0  # a stated liked item counts as a like
EXPLORE_POOL = 300  # newest in-grace items (and fastest movers) considered for exploration


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
        # `personal.warm`) or by their first request, while their stamps hold.
        self.user_lists = UserLists(settings.user_lists_size, settings.user_lists_max_age_s)
        self.personal = PersonalSources(self)
        self.model_serial = 0  # moves with every model served (a user list's stamp)
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
        self.model_serial += 1

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

    def item_knn(self) -> ItemKnn | None:
        """The served ranker's item-to-item weights, a candidate source of its own: the items
        that follow what the user engaged with lately, which ALS's and content's top items
        miss. Only where the ranker scores them (the hand blend has no term for them)."""
        ranker = self.ranker_of(self.collab)
        return ranker.knn if ranker is not None else None

    def ranker_of(self, collab: CollabModel | None) -> Ranker | None:
        """The model's learned ranker, where `score` uses it: this recommender ranks with it
        and its features are this code's (`features.NAMES`); else None (the hand blend)."""
        ranker = collab.ranker if collab is not None and self.use_ranker else None
        return ranker if ranker is not None and tuple(ranker.names) == features.NAMES else None

    def signals(self, taste: Taste, collab: CollabModel | None) -> features.UserSignals:
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
        ranker = self.ranker_of(collab)
        if ranker is not None:
            user = self.signals(taste, collab)
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
        # Without filters of its own the request's personal searches are the user's nearline
        # entry's (`medley.recs.personal`): read, not searched, when it holds. Its stamp is
        # read before the taste: an event landing in between leaves the entry found here
        # stamped older than its taste, so the next request finds it again.
        plain = (where is None or where == Where()) and prefs is None
        stamp = self.personal.stamp(user_id) if plain and user_id else None
        taste, consumed = self.user_taste(user_id, prefs)
        flt = self.filters(where, prefs, consumed)
        allowed = self.table.mask(flt, need_vector=True)  # once per request: ~1 ms at 100k
        cap = audience.cap_for(self.s, only_new, max_audience)
        if cap is not None:  # a behaviour filter: the index cannot apply it, every source can
            allowed &= self.behavior.audience_by_row(self.table.row, len(allowed)) <= cap
        c = self.s.candidates_per_source
        young = self.personal.window(flt, now)
        pool = Pool([])
        explorers: list[str] = []
        found: UserCandidates | None = None
        if not only_new:
            found = self.personal.get(user_id, taste, consumed, flt, stamp)
        elif stamp is not None:  # new-items only reads an entry (its new-item matches)
            found = self.personal.held(user_id, stamp)
        new = self.personal.young(found, taste, young, allowed, c) if found else None
        if new is None:
            new = self._matching(taste, young, allowed, c, now, capped=cap is not None)
        pool.add(new, "new")
        if not only_new:
            assert found is not None
            pool.add(user_lists.ids_of(self.table, found.content, allowed), "content")
            if prefs and prefs.text_vector is not None:
                pool.add([i for i, _ in self.search("text", prefs.text_vector, c, flt)], "stated")
            pool.add(user_lists.ids_of(self.table, found.collab, allowed)[:c], "collab")
            pool.add(user_lists.ids_of(self.table, found.knn, allowed), "knn")
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
