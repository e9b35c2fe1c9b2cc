"""The synthetic catalog of `python -m benchmarks serve`: topic, metadata and per-modality vectors,
written into the database (as enrichment leaves it) and the index (as ingestion writes it:
`medley.indexing`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from medley.config import Settings
from medley.domain import Modality

if TYPE_CHECKING:
    from benchmarks.serve_data import DataSpec

DAY = 86400.0
ITEM_BATCH = 2000
GENRES = (
    "comedy", "drama", "documentary", "thriller", "horror", "romance", "animation", "action",
    "sci-fi", "fantasy", "crime", "family", "music", "sports", "news", "reality", "kids", "history",
    "nature", "travel"
)
THEMES = (
    "space", "ocean", "cooking", "football", "cars", "art", "jazz", "wildlife", "mountains",
    "cities", "medicine", "politics", "fashion", "gaming", "robots", "dinosaurs", "weddings",
    "school", "war", "climate", "mafia", "basketball", "startups", "islands", "trains", "magic",
    "detectives", "vampires", "ballet", "street-food", "gardening", "photography", "architecture",
    "chess", "surfing", "tennis", "volcanoes", "ancient-rome", "pirates", "hip-hop"
)
EXTRA_TAGS = (
    "series", "short", "award-winning", "classic", "4k", "live", "behind-the-scenes", "interview"
)
TITLE_WORDS = (
    "Hidden", "Last", "Secret", "Wild", "Golden", "Broken", "Silent", "Endless", "Little", "Great",
    "Midnight", "Northern", "Lost", "Brave", "Strange"
)
FORMS = (
    "Diaries", "Chronicles", "Files", "Stories", "Project", "Season", "Road", "Game", "Club",
    "Years"
)
RATINGS = (("G", 0.2), ("PG", 0.25), ("PG-13", 0.25), ("R", 0.15), ("TV-MA", 0.05), (None, 0.1))


class Catalog:
    """The synthetic items: topic, metadata, and per-modality vectors drawn batch by batch."""

    def __init__(self, spec: DataSpec, dims: dict[Modality, int], rng: np.random.Generator,
                 now: float) -> None:
        self.spec, self.dims, self.rng, self.now = spec, dims, rng, now
        n, t = spec.items, spec.topics
        pairs = rng.choice(len(GENRES) * len(THEMES), size=t, replace=t > len(GENRES) * len(THEMES))
        self.topic_tags = [(GENRES[p // len(THEMES)], THEMES[p % len(THEMES)]) for p in pairs]
        self.centroids = {m: _unit(rng.standard_normal((t, d), dtype=np.float32))
                          for m, d in dims.items()}
        self.ids = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]
        self.topic = rng.integers(t, size=n)
        fresh = rng.random(n) < spec.new_share
        age = np.where(fresh, rng.random(n) * 14 * DAY, 14 * DAY + rng.random(n) * 351 * DAY)
        self.created = now - age
        self.video = rng.random(n) < 0.6  # video items: + video and (mostly) speech vectors
        self.speech = self.video & (rng.random(n) < 0.9)

    def write(self, db: Any, settings: Settings, timings: dict[str, float],
              say: Callable[[str], None]) -> dict[str, Any]:
        from index.edge import EdgeIndex
        from medley import indexing

        index = EdgeIndex(settings.index_dir / settings.collection)
        index.ensure(indexing.named_dims(self.dims))
        timings["items_db_s"] = timings["index_upsert_s"] = 0.0
        for start in range(0, self.spec.items, ITEM_BATCH):
            rows = range(start, min(start + ITEM_BATCH, self.spec.items))
            vectors = self._vectors(rows)
            t = time.perf_counter()
            meta = self._insert(db, settings, rows, vectors)
            timings["items_db_s"] += time.perf_counter() - t
            t = time.perf_counter()
            index.upsert(_points(rows, self.ids, vectors, meta, settings, self.dims))
            timings["index_upsert_s"] += time.perf_counter() - t
            if (start // ITEM_BATCH) % 10 == 0:
                say(f"items: {rows.stop:,}/{self.spec.items:,}")
        say("building the HNSW index (optimize)")
        t = time.perf_counter()
        index.optimize()
        timings["index_optimize_s"] = time.perf_counter() - t
        stats = {"points": index.count(), "info": str(index.shard.info())}
        index.close()
        return stats

    def _vectors(self, rows: range) -> dict[Modality, np.ndarray]:
        """Unit vectors per modality for these rows; NaN rows where an item lacks it."""
        out = {}
        topics = self.topic[rows.start : rows.stop]
        for m, d in self.dims.items():
            noise = self.rng.standard_normal((len(rows), d), dtype=np.float32)
            v = _unit(self.centroids[m][topics] + noise * (self.spec.noise / np.sqrt(d)))
            if m is Modality.VIDEO:
                v[~self.video[rows.start : rows.stop]] = np.nan
            elif m is Modality.SPEECH:
                v[~self.speech[rows.start : rows.stop]] = np.nan
            out[m] = v
        return out

    def _insert(self, db: Any, settings: Settings, rows: range,
                vectors: dict[Modality, np.ndarray]) -> list[dict[str, Any]]:
        from sqlalchemy import insert

        from medley.db.models import Item, ModalityRecord
        from workers.extractors import model_key

        rng = self.rng
        items, mods = [], []
        ratings, shares = zip(*RATINGS, strict=True)
        picks = rng.choice(len(ratings), size=len(rows), p=shares)
        for k, r in enumerate(rows):
            genre, theme = self.topic_tags[self.topic[r]]
            tags = [genre, theme] + ([str(rng.choice(EXTRA_TAGS))] if rng.random() < 0.3 else [])
            created = datetime.fromtimestamp(self.created[r], UTC)
            published = (datetime.fromtimestamp(self.created[r] - rng.random() * 5 * 365 * DAY,
                                                UTC) if rng.random() < 0.7 else None)
            title = (f"The {rng.choice(TITLE_WORDS)} {theme.replace('-', ' ').title()} "
                     f"{rng.choice(FORMS)}")
            items.append({
                "id": self.ids[r], "external_id": f"bench-{r}", "title": title,
                "description": f"A {genre} about {theme.replace('-', ' ')}.", "tags": tags,
                "language": "en", "age_rating": ratings[picks[k]], "published_at": published,
                "attributes": {"topic": int(self.topic[r])}, "status": "ready", "indexed": True,
                "created_at": created, "updated_at": created,
            })
            for m, v in vectors.items():
                if not np.isnan(v[k, 0]):
                    mods.append({
                        "item_id": self.ids[r], "modality": m.value, "status": "ready",
                        "source_hash": rng.bytes(32).hex(), "model_name": model_key(settings, m),
                        "model_version": "bench-synthetic", "attempts": 1, "queued_at": created,
                        "started_at": created, "finished_at": created, "timings": {},
                        "dim": int(v.shape[1]), "vector": v[k].tobytes(),
                    })
        with db.engine.begin() as conn:
            conn.execute(insert(Item), items)
            conn.execute(insert(ModalityRecord), mods)
        return items


def _points(rows: range, ids: list[str], vectors: dict[Modality, np.ndarray],
            meta: list[dict[str, Any]], settings: Settings, dims: dict[Modality, int]) -> list[Any]:
    """Index points as ingestion writes them (`medley.indexing`): both fused slots under the
    settings' weights, which a fresh catalog's two slots both hold."""
    from medley import indexing

    slots = indexing.every_slot(settings.fusion_weights)
    fields = ("title", "tags", "language", "age_rating", "external_id", "published_at",
              "created_at")
    out = []
    for k, r in enumerate(rows):
        mine = {m: v[k] for m, v in vectors.items() if not np.isnan(v[k, 0])}
        payload = indexing.payload(**{f: meta[k][f] for f in fields},
                                   modalities=(m.value for m in mine))
        out.append(indexing.point(ids[r], mine, slots, dims, payload))
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
