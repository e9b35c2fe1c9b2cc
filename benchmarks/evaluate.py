"""`python -m benchmarks eval`: offline evaluation on MovieLens, Medley's blend beside its peers.

Every system is measured in the same run, on the same split, by the same metric code (the
product's protocol, `medley.recs.evaluation`: split, fit, measure), and the peers read the same
fitted state as Medley: popularity from `Behavior`, ALS from the same `CollabModel`; content-only
(raw and centred), the tuned z-score blend and LightFM live in `benchmarks.peers` and read the
same item table, behaviour and ALS model. MovieLens itself is read by `benchmarks.movielens`;
the run (`benchmarks.eval_run`) writes the report (bench/eval.md), which states the protocol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from benchmarks import peers
from benchmarks.movielens import Movie
from medley.config import Settings
from medley.domain import Modality
from medley.recs import evaluation
from medley.recs.collab import CollabModel
from medley.recs.evaluation import K, Split, train_collab
from medley.recs.events import Event
from medley.recs.items import ItemInfo, ItemTable

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


# Where the eval departs from the shipped defaults, and why (the report repeats this):
EVAL_OVERRIDES: dict[str, Any] = {
    # MovieLens has ~12 ratings a day over 22 years: a 30-day half-life would rank popularity
    # on a handful of recent users. A platform's traffic sets this; here a year fits.
    "popularity_half_life_days": 365.0,
    # A replay of past ratings can only punish slots spent learning about new items, never
    # reward them; the "with its exploration slots" row shows what they cost here.
    "exploration_share": 0.0,
}


@dataclass
class World(evaluation.World):
    """The protocol's fitted world, with the peers' state (`peers_of`) and the settings it was
    fitted with (the engine holds only its ranking section)."""

    peers: peers.PeerState | None = None
    settings: Settings | None = None


def build_table(split: Split, movies: Mapping[str, Movie],
                vectors: Mapping[str, np.ndarray]) -> ItemTable:
    dim = len(next(iter(vectors.values())))
    table = ItemTable({Modality.TEXT: dim}, capacity=max(len(split.catalog), 1))
    for item in split.catalog:
        movie = movies.get(item, Movie(item, ()))
        info = ItemInfo(movie.title, movie.genres, None, None, split.created[item])
        table.upsert(item, info, vectors.get(item))
    return table


def fit(split: Split, table: ItemTable, settings: Settings, *, base: World | None = None,
        collab: CollabModel | None = None,
        stream: Sequence[tuple[int, Event]] | None = None) -> World:
    """`evaluation.fit`, as a world the peers can be prepared on."""
    w = evaluation.fit(split, table, settings, base=base, collab=collab, stream=stream)
    return World(**{f.name: getattr(w, f.name) for f in fields(w)}, settings=settings)


def peers_of(w: World) -> peers.PeerState:
    """The peers' state on `w`; prepared here with the blend's defaults if the run did not
    prepare it (the run chooses the blend on validation)."""
    if w.peers is None:
        w.peers = peers.prepare(w, w.settings or Settings())
    return w.peers


# --- the systems --------------------------------------------------------------------------------
class Peers:
    """Every system but Medley, ranked on `w` for `evaluation.measure`: popularity and ALS
    here, content-only and the stronger peers in `benchmarks.peers`."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.popular = w.behavior.popularity.top(len(w.behavior.popularity.log))

    def _user_vec(self, system: str, user: str) -> np.ndarray | None:
        """ALS: the trained user factors; ALS recent: folded in from the recent positives, as
        Medley's blend does it."""
        w = self.w
        if w.collab is None:
            return None
        if system == "als":
            row = w.collab.user_row.get(user)
            return None if row is None else w.collab.user_factors[row]
        taste, _ = w.rec.user_taste(user, None)
        return w.collab.fold_in(taste.positives)

    def rank(self, system: str, user: str) -> list[str]:
        w = self.w
        state = w.behavior.user(user)
        consumed = state.consumed if state else set()
        skip = consumed | w.split.held_out
        if system == "popularity":
            return [i for i in self.popular if i not in skip][:K]
        if system in ("als", "als_recent"):
            uv = self._user_vec(system, user)
            if w.collab is None or uv is None:
                return []
            return [i for i in w.collab.top_for_user(uv, K + len(consumed))
                    if i not in skip][:K]
        return peers.rank(peers_of(w), w, system, user, skip)  # content-only and the new peers

    def scores(self, system: str, user: str, items: list[str]) -> np.ndarray | None:
        """Popularity and ALS have no data on held-out items: all their scores tie (0 or
        NaN), so `evaluation.rank_new`'s seeded shuffle decides."""
        w = self.w
        if system == "popularity":
            return np.array(w.behavior.popularity_log(items, w.split.now))
        if system in ("als", "als_recent"):
            uv = self._user_vec(system, user)
            return None if w.collab is None or uv is None else w.collab.scores(uv, items)
        return peers.peer_scores(peers_of(w), w, system, user, w.table.rows(items))


def measure(w: World, systems: Sequence[str] = SYSTEMS, seed: int = 0, *,
            new_items: bool = True, new_users: int | None = None) -> dict[str, Any]:
    """`evaluation.measure` of every system on `w`; LightFM (the last system, so the others'
    seeds stay put) is left out when it is not installed."""
    shown = [s for s in systems if s != "lightfm" or peers.have_lightfm()]
    return evaluation.measure(w, shown, seed, new_items=new_items, new_users=new_users,
                              others=Peers(w))

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
