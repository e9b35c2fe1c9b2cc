"""Offline evaluation of Medley's answers: the split, the fitted world, the metrics.

The protocol: a history of ratings (one per user and item, at its time) loses a seeded share of
the items with enough ratings altogether (new items); the rest is split by time within each
user's history, 80/20. Behaviour, ALS and the recommender are fitted on the training part with
the clock at its last rating; Medley then answers for every user with a past and a future
(overall, held-out items excluded) and scores the held-out items (the new-items slice), and
NDCG@10, recall@10 and coverage@10 say how its top 10 met the items each user liked later.

Two callers: the fusion editor's evaluate (`medley.editor.evaluate`, on the platform's own
event log) and the MovieLens benchmark (`python -m benchmarks eval`, `benchmarks/evaluate.py`),
which ranks its peers on the same fitted world through `Others`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np

from index.base import FUSED, Where
from medley.config import RankingSettings, RecommendationSettings
from medley.recs.behavior import Behavior
from medley.recs.collab import CollabModel, train
from medley.recs.engine import Recommender
from medley.recs.events import Event, EventType
from medley.recs.items import ItemTable
from medley.recs.learn import learn

LIKE_RATING = 4.0
K = 10
MEDLEY = ("medley", "medley_explore")  # Medley as evaluated, and with the shipped exploration
SHIPPED_EXPLORATION = float(RankingSettings.model_fields["exploration_share"].default)


# --- the split ------------------------------------------------------------------------------
class Rating(NamedTuple):
    user: str
    item: str
    rating: float
    ts: float


@dataclass
class Split:
    """One evaluation split. `now` is the last training time; `held_out` items have no
    training rating and are ranked only in the new-items slice."""

    train: list[Rating]
    test: list[Rating]
    held_out: frozenset[str]
    held_out_ratings: list[Rating]
    now: float
    catalog: list[str]  # every item, held out or not
    created: dict[str, float] = field(default_factory=dict)

    @property
    def candidates(self) -> list[str]:
        """The overall catalog: every item that is not held out."""
        return [i for i in self.catalog if i not in self.held_out]

    def train_items(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for r in self.train:
            out.setdefault(r.user, set()).add(r.item)
        return out

    def relevant(self) -> dict[str, set[str]]:
        """Users with history -> test items they liked that they had not rated in training."""
        return self._liked(self.test, unseen_only=True)

    def relevant_new(self) -> dict[str, set[str]]:
        """Users with history -> held-out items they liked (at any time)."""
        return self._liked(self.held_out_ratings, unseen_only=False)

    def _liked(self, ratings: list[Rating], *, unseen_only: bool) -> dict[str, set[str]]:
        seen = self.train_items()
        out: dict[str, set[str]] = {}
        for r in ratings:
            if r.rating >= LIKE_RATING and r.user in seen and not (
                    unseen_only and r.item in seen[r.user]):
                out.setdefault(r.user, set()).add(r.item)
        return out


def split(
    ratings: Sequence[Rating],
    catalog: Iterable[str],
    *,
    per_user: bool = True,
    holdout_share: float = 0.15,
    min_ratings: int = 5,
    test_share: float = 0.2,
    seed: int = 0,
) -> Split:
    """Hold out `holdout_share` of the items with >= `min_ratings` ratings (seeded), then split
    the rest by time, 1 - `test_share` train / `test_share` test: within each user's history
    (`per_user`, the default), or at one global moment.

    A global cut leaves few users with both a past and a future on MovieLens (people rate in
    bursts: 28 of 610 here), too few to tell systems apart; per user, nearly all of them.

    created_ts: an item's first training rating; held-out items are created at `now` (new).
    Items with no training rating are dated at the start of the data: dating them by their
    first (future) rating would tell the ranker which items are about to be rated.
    """
    counts: dict[str, int] = {}
    for r in ratings:
        counts[r.item] = counts.get(r.item, 0) + 1
    eligible = sorted((i for i, c in counts.items() if c >= min_ratings), key=_item_key)
    rng = np.random.default_rng(seed)
    n_hold = round(holdout_share * len(eligible))
    picked = rng.choice(len(eligible), size=n_hold, replace=False)
    held_out = frozenset(eligible[k] for k in picked)
    rest = sorted((r for r in ratings if r.item not in held_out),
                  key=lambda r: (r.ts, r.user, r.item))
    if per_user:
        by_user: dict[str, list[Rating]] = {}
        for r in rest:
            by_user.setdefault(r.user, []).append(r)
        train, test = [], []
        for history in by_user.values():
            cut = round((1.0 - test_share) * len(history))
            train += history[:cut]
            test += history[cut:]
        train.sort(key=lambda r: (r.ts, r.user, r.item))
    else:
        cut = round((1.0 - test_share) * len(rest))
        train, test = rest[:cut], rest[cut:]
    now = train[-1].ts if train else 0.0
    start = min((r.ts for r in ratings), default=0.0)
    items = list(dict.fromkeys([*catalog, *(r.item for r in ratings)]))
    created = dict.fromkeys(items, start)
    for r in reversed(train):
        created[r.item] = r.ts
    for item in held_out:
        created[item] = now
    return Split(train, test, held_out, [r for r in ratings if r.item in held_out], now, items,
                 created)


def _item_key(item: str) -> tuple[int, str]:
    return (int(item), item) if item.isdigit() else (1 << 62, item)


def events(ratings: Iterable[Rating]) -> list[tuple[int, Event]]:
    """(seq, event) in rating order: a view for every rating, then a like for a rating >= 4."""
    out: list[tuple[int, Event]] = []
    for r in ratings:
        base = f"{r.user}:{r.item}"
        out.append((len(out) + 1, Event(f"{base}:v", r.user, r.item, EventType.VIEW, None, r.ts)))
        if r.rating >= LIKE_RATING:
            out.append((len(out) + 1,
                        Event(f"{base}:l", r.user, r.item, EventType.LIKE, None, r.ts)))
    return out


# --- metrics (binary relevance) ---------------------------------------------------------------
def ndcg_at_k(ranked: Sequence[str], relevant: set[str], k: int = K) -> float:
    dcg = sum(1.0 / math.log2(p + 2) for p, i in enumerate(ranked[:k]) if i in relevant)
    ideal = sum(1.0 / math.log2(p + 2) for p in range(min(k, len(relevant))))
    return dcg / ideal if ideal > 0 else 0.0


def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int = K) -> float:
    """Hits in the top k / min(k, |relevant|): 1.0 for a perfect top k, whatever |relevant|."""
    if not relevant:
        return 0.0
    return len(set(ranked[:k]) & relevant) / min(k, len(relevant))


def coverage(lists: Iterable[Sequence[str]], catalog_size: int, k: int = K) -> float:
    """Distinct items in the top k over all users / candidate catalog size."""
    seen = {i for ranked in lists for i in ranked[:k]}
    return len(seen) / catalog_size if catalog_size else 0.0


# --- one fitted world per split ---------------------------------------------------------------
class ExactSearch:
    """`ItemTable.nearest` on the fused vector with the float32 matrix converted once (the
    eval runs ~10k neighbour searches); other named vectors go to the table itself."""

    def __init__(self, table: ItemTable) -> None:
        self.table = table
        self.matrix = table.vectors_of(np.arange(len(table.ids)))

    def __call__(self, using: str, vector: np.ndarray, limit: int,
                 where: Where | None) -> list[tuple[str, float]]:
        if using != FUSED:
            return self.table.nearest(using, vector, limit, where)
        mask = self.table.mask(where, need_vector=True)
        rows = np.flatnonzero(mask)
        k = min(limit, len(rows))
        if k <= 0:
            return []
        q = vector.astype(np.float32)
        q = q / max(float(np.linalg.norm(q)), 1e-9)
        if 4 * len(rows) < len(mask):  # a narrow filter (new items): score only its rows
            s = np.full(len(mask), -np.inf, dtype=np.float32)
            s[rows] = self.matrix[rows] @ q
        else:
            s = np.where(mask, self.matrix @ q, -np.inf)
        part = np.argpartition(-s, k - 1)[:k]
        return [(self.table.ids[r], float(s[r])) for r in part[np.argsort(-s[part])]]


@dataclass
class World:
    split: Split
    table: ItemTable
    behavior: Behavior
    search: ExactSearch
    collab: CollabModel | None
    rec: Recommender
    rec_explore: Recommender  # the same state, with the shipped exploration share


def train_collab(split: Split, settings: RecommendationSettings,
                 stream: Sequence[tuple[int, Event]] | None = None,
                 table: ItemTable | None = None) -> CollabModel | None:
    """The model on the training events: `stream` if given (numbered from 1), else the split's
    ratings as events. With the `table`, everything serving learns (ALS, content map, ranker:
    `medley.recs.learn`, as the worker's training task runs it); without, ALS alone."""
    import implicit.cpu.als  # noqa: F401  (loads its BLAS before the limit applies)
    import scipy.sparse  # noqa: F401
    from threadpoolctl import threadpool_limits

    stream = events(split.train) if stream is None else stream
    with threadpool_limits(1, "blas"):  # implicit's own threads; BLAS threads would fight them
        if table is not None:
            return learn(stream, table, settings, last_seq=len(stream))[0]
        return train(((e.user_id, e.item_id, e.weight) for _, e in stream),
                     factors=settings.collab_factors, iterations=settings.collab_iterations,
                     regularization=settings.collab_regularization, last_seq=len(stream))


def fit(split: Split, table: ItemTable, settings: RecommendationSettings, *,
        base: World | None = None, collab: CollabModel | None = None,
        stream: Sequence[tuple[int, Event]] | None = None) -> World:
    """Behaviour, ALS and the recommender on the training events (`stream`, numbered from 1,
    else the split's ratings as events); `base` lends its behaviour, and its search and
    neighbour cache if it ranks the same `table` (none of these depend on blend or ALS
    settings; the latter two do on the table's fusion view)."""
    if base is None:
        stream = events(split.train) if stream is None else stream
        behavior = Behavior(settings.popularity_half_life_days * 86400,
                            settings.trending_half_life_hours * 3600)
        behavior.reset_cooc(len(stream))  # as in serving: the model covers these events
        behavior.apply(stream)
        search = ExactSearch(table)
    else:
        behavior = base.behavior
        search = base.search if base.table is table else ExactSearch(table)
    if collab is None:
        collab = train_collab(split, settings, stream, table)
    recs: list[Recommender] = []
    for share in (settings.exploration_share, SHIPPED_EXPLORATION):
        rec = Recommender(settings.ranking.model_copy(update={"exploration_share": share}), table,
                          behavior, search, clock=lambda: split.now)
        rec.collab = collab
        rec.prior_budget = len(table.ids) + 1  # offline: no item's prior is budget-limited
        if base is not None and base.table is table:
            rec.priors = base.rec.priors
        elif recs:
            rec.priors = recs[0].priors
        else:
            rec.warm_priors(table.ids, len(table.ids) + 1)
        recs.append(rec)
    return World(split, table, behavior, search, collab, recs[0], recs[1])


# --- ranking and measuring --------------------------------------------------------------------
class Others(Protocol):
    """Systems other than Medley, ranked by the caller on the same fitted world (the
    benchmark's peers)."""

    def rank(self, system: str, user: str) -> list[str]:
        """The system's top K of the overall candidates for `user`."""
        ...

    def scores(self, system: str, user: str, items: list[str]) -> np.ndarray | None:
        """The system's score for each of `items` (None or NaN: no opinion)."""
        ...


def rank_overall(w: World, system: str, user: str, others: Others | None = None) -> list[str]:
    if system not in MEDLEY:
        return _others(others, system).rank(system, user)
    rec = w.rec if system == "medley" else w.rec_explore
    answer = rec.for_user(user, K, Where(exclude_ids=w.split.held_out), None)
    return [s.item_id for s in answer.items]


def rank_new(w: World, system: str, user: str, items: list[str], rng: np.random.Generator,
             others: Others | None = None) -> list[str]:
    """Rank only the held-out items; where a system has no opinion (all its scores tie or are
    NaN), the seeded shuffle decides, i.e. a random ranking."""
    scores: np.ndarray | None
    if system in MEDLEY:
        taste, _ = w.rec.user_taste(user, None)
        scores = w.rec.score(items, taste, None)
    else:
        scores = _others(others, system).scores(system, user, items)
    scores = np.full(len(items), np.nan) if scores is None else scores
    s = np.where(np.isfinite(scores), scores, -np.inf)
    order = np.lexsort((rng.random(len(items)), -s))[:K]
    return [items[i] for i in order]


def _others(others: Others | None, system: str) -> Others:
    if others is None:
        raise ValueError(f"{system!r} is not Medley: give `others` to rank it")
    return others


def measure(w: World, systems: Sequence[str] = ("medley",), seed: int = 0, *,
            new_items: bool = True, new_users: int | None = None,
            others: Others | None = None) -> dict[str, Any]:
    """Per system: NDCG@10, recall@10 and coverage over users with history, NDCG@10 and
    recall@10 on the new-items slice (unless `new_items` is false; over a seeded sample of
    `new_users` users if given); plus per-user NDCG@10 of both. Systems not in MEDLEY are
    ranked by `others`; the k-th system's slice ties are broken by `seed + k`."""
    relevant, relevant_new = w.split.relevant(), w.split.relevant_new()
    if new_users is not None and new_users < len(relevant_new):
        keep = np.random.default_rng(seed).choice(sorted(relevant_new), new_users, replace=False)
        relevant_new = {u: relevant_new[u] for u in keep}
    held = sorted(w.split.held_out) if new_items else []
    catalog = len(w.split.candidates)
    out: dict[str, Any] = {}
    for k, system in enumerate(systems):
        lists = {u: rank_overall(w, system, u, others) for u in sorted(relevant)}
        rng = np.random.default_rng(seed + k)
        new = {u: rank_new(w, system, u, held, rng, others) for u in sorted(relevant_new)
               if held}
        per_user = {u: ndcg_at_k(lists[u], relevant[u]) for u in lists}
        per_user_new = {u: ndcg_at_k(new[u], relevant_new[u]) for u in new}
        out[system] = {
            "ndcg@10": _mean(per_user.values()),
            "recall@10": _mean(recall_at_k(lists[u], relevant[u]) for u in lists),
            "coverage@10": coverage(lists.values(), catalog),
            "new_items_ndcg@10": _mean(per_user_new.values()) if held else None,
            "new_items_recall@10": _mean(recall_at_k(new[u], relevant_new[u]) for u in new)
            if held else None,
            "per_user_ndcg@10": per_user,
            "per_user_new_ndcg@10": per_user_new,
        }
    return out


def _mean(values: Iterable[float]) -> float:
    v = list(values)
    return float(np.mean(v)) if v else 0.0
