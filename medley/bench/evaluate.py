"""`medley eval`: offline evaluation on MovieLens, Medley's blend beside its peers.

Every system is measured in the same run, on the same split, by the same metric code, and the
peers read the same fitted state as Medley: popularity from `Behavior`, ALS from the same
`CollabModel`; content-only (raw and centred), the tuned z-score blend and LightFM live in
`medley.bench.peers` and read the same item table, behaviour and ALS model. The protocol is in
`medley.bench.movielens`; the run (`medley.bench.eval_run`) writes the report (bench/eval.md),
which states it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from index.base import FUSED, Where
from medley.bench import peers
from medley.bench.movielens import K, Movie, Split, coverage, events, ndcg_at_k, recall_at_k
from medley.config import Settings
from medley.domain import Modality
from medley.recs.behavior import Behavior
from medley.recs.collab import CollabModel, train
from medley.recs.engine import Recommender
from medley.recs.events import Event
from medley.recs.items import ItemInfo, ItemTable
from medley.recs.learn import learn

SYSTEMS = ("medley", "medley_explore", "popularity", "als", "als_recent", "content",
           *peers.PEER_SYSTEMS)
PEERS = SYSTEMS[2:]
LABELS = {
    "medley": "Medley",
    "medley_explore": "Medley with its exploration slots",
    "popularity": "popularity",
    "als": "implicit ALS",
    "als_recent": "implicit ALS, recent fold-in",
    "content": "content-only",
    "content_centred": "content-only, centred",
    "zblend": "z-score blend of ALS and content (tuned)",
    "lightfm": "LightFM (WARP, item features)",
}


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


# Where the eval departs from the shipped defaults, and why (the report repeats this):
EVAL_OVERRIDES: dict[str, Any] = {
    # MovieLens has ~12 ratings a day over 22 years: a 30-day half-life would rank popularity
    # on a handful of recent users. A platform's traffic sets this; here a year fits.
    "popularity_half_life_days": 365.0,
    # A replay of past ratings can only punish slots spent learning about new items, never
    # reward them; the "with its exploration slots" row shows what they cost here.
    "exploration_share": 0.0,
}
SHIPPED_EXPLORATION = float(Settings.model_fields["exploration_share"].default)


@dataclass
class World:
    split: Split
    table: ItemTable
    behavior: Behavior
    search: ExactSearch
    collab: CollabModel | None
    rec: Recommender
    rec_explore: Recommender  # the same state, with the shipped exploration share
    peers: peers.PeerState | None = None  # the stronger peers' state (`peers.prepare`)


def build_table(split: Split, movies: Mapping[str, Movie],
                vectors: Mapping[str, np.ndarray]) -> ItemTable:
    dim = len(next(iter(vectors.values())))
    table = ItemTable({Modality.TEXT: dim}, capacity=max(len(split.catalog), 1))
    for item in split.catalog:
        movie = movies.get(item, Movie(item, ()))
        info = ItemInfo(movie.title, movie.genres, None, None, split.created[item])
        table.upsert(item, info, vectors.get(item))
    return table


def train_collab(split: Split, settings: Settings,
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


def fit(split: Split, table: ItemTable, settings: Settings, *, base: World | None = None,
        collab: CollabModel | None = None,
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
        rec = Recommender(settings.model_copy(update={"exploration_share": share}), table,
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


# --- the systems --------------------------------------------------------------------------------
def _user_vec(w: World, system: str, user: str) -> np.ndarray | None:
    """ALS: the trained user factors; ALS recent: folded in from the recent positives, as
    Medley's blend does it."""
    if w.collab is None:
        return None
    if system == "als":
        row = w.collab.user_row.get(user)
        return None if row is None else w.collab.user_factors[row]
    taste, _ = w.rec.user_taste(user, None)
    return w.collab.fold_in(taste.positives)


def rank_overall(w: World, system: str, user: str, popular: list[str]) -> list[str]:
    state = w.behavior.user(user)
    consumed = state.consumed if state else set()
    skip = consumed | w.split.held_out
    if system in ("medley", "medley_explore"):
        rec = w.rec if system == "medley" else w.rec_explore
        answer = rec.for_user(user, K, Where(exclude_ids=w.split.held_out), None)
        return [s.item_id for s in answer.items]
    if system == "popularity":
        return [i for i in popular if i not in skip][:K]
    if system in ("als", "als_recent"):
        uv = _user_vec(w, system, user)
        if w.collab is None or uv is None:
            return []
        return [i for i in w.collab.top_for_user(uv, K + len(consumed)) if i not in skip][:K]
    return peers.rank(peers_of(w), w, system, user, skip)  # content-only and the new peers


def rank_new(w: World, system: str, user: str, items: list[str],
             rng: np.random.Generator) -> list[str]:
    """Rank only the held-out items. Popularity and ALS have no data on them: all their scores
    tie (0 or NaN), so the seeded shuffle decides, i.e. a random ranking."""
    taste, _ = w.rec.user_taste(user, None)
    scores = np.full(len(items), np.nan)
    if system in ("medley", "medley_explore"):
        scores = w.rec.score(items, taste, None)
    elif system == "popularity":
        scores = np.array(w.behavior.popularity_log(items, w.split.now))
    elif system in ("als", "als_recent"):
        uv = _user_vec(w, system, user)
        if w.collab is not None and uv is not None:
            scores = w.collab.scores(uv, items)
    else:  # content-only and the new peers
        found = peers.peer_scores(peers_of(w), w, system, user, w.table.rows(items))
        scores = scores if found is None else found
    s = np.where(np.isfinite(scores), scores, -np.inf)
    order = np.lexsort((rng.random(len(items)), -s))[:K]
    return [items[i] for i in order]


def peers_of(w: World) -> peers.PeerState:
    """The peers' state on `w`; prepared here with the blend's defaults if the run did not
    prepare it (the run chooses the blend on validation)."""
    if w.peers is None:
        w.peers = peers.prepare(w, w.rec.s)
    return w.peers


def measure(w: World, systems: Sequence[str] = SYSTEMS, seed: int = 0, *,
            new_items: bool = True, new_users: int | None = None) -> dict[str, Any]:
    """Per system: NDCG@10, recall@10 and coverage over users with history, NDCG@10 and
    recall@10 on the new-items slice (unless `new_items` is false; over a seeded sample of
    `new_users` users if given); plus per-user NDCG@10 of both. LightFM is left out when it
    is not installed."""
    relevant, relevant_new = w.split.relevant(), w.split.relevant_new()
    if new_users is not None and new_users < len(relevant_new):
        keep = np.random.default_rng(seed).choice(sorted(relevant_new), new_users, replace=False)
        relevant_new = {u: relevant_new[u] for u in keep}
    popular = w.behavior.popularity.top(len(w.behavior.popularity.log))
    held = sorted(w.split.held_out) if new_items else []
    catalog = len(w.split.candidates)
    out: dict[str, Any] = {}
    for k, system in enumerate(systems):
        if system == "lightfm" and not peers.have_lightfm():
            continue
        lists = {u: rank_overall(w, system, u, popular) for u in sorted(relevant)}
        rng = np.random.default_rng(seed + k)
        new = {u: rank_new(w, system, u, held, rng) for u in sorted(relevant_new) if held}
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


# --- tuning on the validation split -----------------------------------------------------------
SEARCH_SPACE: dict[str, tuple[Any, ...]] = {  # one coordinate-ascent pass, in this order
    "collab_factors": (32, 64, 128),
    "collab_regularization": (0.05, 1.0, 10.0),
    "popularity_half_life_days": (7.0, 30.0, 365.0),
    "blend_content": (0.5, 1.0, 2.0),
    "blend_collab": (0.5, 1.0, 2.0),
    "blend_popularity": (0.25, 0.5, 1.0),
    "behavior_confidence": (3.0, 10.0, 30.0),
    "mmr_lambda": (0.8, 0.9, 1.0),
    "exploration_share": (0.0, 0.1, 0.2),
}
# Settings the new-items slice cannot see (held-out items have no interactions, so a = 0).
NO_SLICE_EFFECT = frozenset({"mmr_lambda", "exploration_share", "behavior_confidence"})
TUNE_SLICE_USERS = 200  # tuning scores the slice on a seeded sample of its users (speed)
OBJECTIVE = "Medley's NDCG@10 (overall) + recall@10 (new-items slice) on the validation split"


def tune(split: Split, table: ItemTable, settings: Settings) -> tuple[dict[str, Any], list[Any]]:
    """One pass of coordinate ascent over SEARCH_SPACE, from `settings`, on `split` only."""
    worlds: dict[float, World] = {}
    models: dict[tuple[int, float], CollabModel | None] = {}

    def value(params: dict[str, Any], slice_value: float | None) -> tuple[float, float]:
        s = settings.model_copy(update=params)
        key = (s.collab_factors, s.collab_regularization)
        if key not in models:
            models[key] = train_collab(split, s, None, table)
        base = worlds.get(s.popularity_half_life_days)
        w = fit(split, table, s, base=base, collab=models[key])
        worlds.setdefault(s.popularity_half_life_days, w)
        m = measure(w, ("medley",), new_items=slice_value is None,
                    new_users=TUNE_SLICE_USERS)["medley"]
        new = m["new_items_recall@10"] if slice_value is None else slice_value
        return m["ndcg@10"], new

    best = {name: getattr(settings, name) for name in SEARCH_SPACE}
    ndcg, best_slice = value(best, None)
    best_value = ndcg + best_slice
    trail: list[Any] = [["start", best, round(ndcg, 4), round(best_slice, 4)]]
    for name, values in SEARCH_SPACE.items():
        for v in [v for v in values if v != best[name]]:
            params = {**best, name: v}
            ndcg, new = value(params, best_slice if name in NO_SLICE_EFFECT else None)
            trail.append([name, v, round(ndcg, 4), round(new, 4)])
            if ndcg + new > best_value:
                best, best_value, best_slice = params, ndcg + new, new
    return best, trail
