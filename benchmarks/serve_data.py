"""The dataset behind `python -m benchmarks serve`: a synthetic catalog written straight into the
embedded default's stores (SQLite + Qdrant Edge), as the enrichment pipeline would have left it,
and a synthetic event history. Vectors are clustered by topic (centroid + noise, unit norm) with
the configured models' real sizes; behaviour follows topic preferences and Zipf popularity.

A manifest records the parameters; a data dir holding a matching dataset is reused.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.serve_catalog import Catalog
from benchmarks.serve_events import EVENT_TYPES, QUERIES, write_events
from medley.config import Settings, get_settings

MANIFEST = "bench-manifest.json"
INPUTS = "loadgen-inputs.json"
FORMAT = 2  # 2: both fused slots in the index (a dataset of format 1 has only the first)
DAY = 86400.0


@dataclass(frozen=True)
class DataSpec:
    items: int = 100_000
    events: int = 1_000_000
    seed: int = 7
    new_share: float = 0.03  # items created within the last 14 days
    noise: float = 1.0  # per-item noise norm around a unit topic centroid (same-topic cos ~0.5)

    @property
    def users(self) -> int:
        return max(20, self.events // 50)

    @property
    def topics(self) -> int:
        return min(300, max(3, self.items // 50))

    def key(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self), "users": self.users, "topics": self.topics}


def bench_settings(data_dir: Path, **overrides: Any) -> Settings:
    """The embedded default on `data_dir`; converted model weights come from the usual cache."""
    models = get_settings().models_dir.resolve()
    return Settings(data_dir=data_dir.resolve(), model_cache_dir=models, database_url=None,
                    broker_url=None, qdrant_url=None, **overrides)


def load_manifest(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def _clear(data_dir: Path) -> None:
    """Remove what a previous preparation (or a server on it) wrote; nothing else."""
    for name in (MANIFEST, INPUTS, "medley.db", "medley.db-wal", "medley.db-shm", "index", "media",
                 "code", "profiles", "profile.json", "server.log", "behavior.snapshot",
                 "neighbours.npz"):
        path = data_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def prepare(data_dir: Path, spec: DataSpec, *, rebuild: bool = False,
            say: Callable[[str], None] = print) -> dict[str, Any]:
    """The manifest of a ready dataset in `data_dir`, built unless a matching one is there."""
    found = load_manifest(data_dir)
    if found is not None and found.get("spec") == spec.key() and not rebuild:
        say(f"reusing the dataset in {data_dir} (--rebuild to build it again)")
        return {**found, "reused": True}
    data_dir.mkdir(parents=True, exist_ok=True)
    _clear(data_dir)
    from enrich.registry import Models
    from medley.db import Database
    from medley.recs.training import train_and_store

    settings = bench_settings(data_dir)
    db = Database(settings.resolved_database_url)
    db.migrate()
    dims = Models(settings.models, max_media_seconds=settings.max_media_seconds).dims()
    rng = np.random.default_rng(spec.seed)
    now = time.time()
    timings: dict[str, float] = {}
    catalog = Catalog(spec, dims, rng, now)
    started = time.perf_counter()
    index_stats = catalog.write(db, settings, timings, say)
    say(f"events: {spec.events:,} for {spec.users:,} users")
    t = time.perf_counter()
    inputs = write_events(db, spec, catalog.ids, catalog.topic, catalog.created, rng, now)
    timings["events_s"] = time.perf_counter() - t
    say("training the collaborative model")
    t = time.perf_counter()
    model_id = train_and_store(db, settings)
    timings["train_s"] = time.perf_counter() - t
    db.dispose()
    timings["total_s"] = time.perf_counter() - started
    inputs["items"] = [catalog.ids[i] for i in rng.choice(spec.items, min(5000, spec.items),
                                                          replace=False)]
    inputs["queries"] = list(QUERIES)
    (data_dir / INPUTS).write_text(json.dumps(inputs))
    manifest = {"spec": spec.key(), "created": datetime.now(UTC).isoformat(),
                "dims": {str(m): d for m, d in dims.items()}, "index": index_stats,
                "collab_model": model_id, "timings_s": {k: round(v, 1) for k, v in timings.items()},
                "new_items": int((catalog.created >= now - 14 * DAY).sum())}
    (data_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return {**manifest, "reused": False}


def retrain(data_dir: Path, say: Callable[[str], None] = print) -> int | None:
    """Train a prepared dataset's model again with this checkout's code, though no event is
    new (what is measured is a change to training), and point the manifest at it."""
    from medley.db import Database
    from medley.recs.training import train_and_store

    manifest = load_manifest(data_dir)
    if manifest is None:
        raise SystemExit(f"no prepared dataset in {data_dir}")
    settings = bench_settings(data_dir)
    db = Database(settings.resolved_database_url)
    try:
        say("training the collaborative model again with this code")
        model_id = train_and_store(db, settings, force=True)
    finally:
        db.dispose()
    (data_dir / MANIFEST).write_text(json.dumps({**manifest, "collab_model": model_id},
                                                indent=2))
    return model_id


def stored_model(db: Any) -> Any:
    """The newest collaborative model stored in a prepared dataset's database (`Database`)."""
    from medley.recs import store
    from medley.recs.collab import CollabModel

    with db.session() as s:
        latest = store.latest_model_id(s)
        found = store.load_model_blob(s, latest) if latest is not None else None
    if found is None:
        raise SystemExit("the dataset has no stored model")
    return CollabModel.from_bytes(found[0])


def restore(data_dir: Path, manifest: dict[str, Any]) -> int:
    """Drop what a benchmark run added (posted events, a model trained on them), so every run
    starts from the prepared state; returns the number of events removed."""
    from sqlalchemy import delete

    from medley.db import Database
    from medley.db.models import CollabModelRecord, EventRecord

    db = Database(bench_settings(data_dir).resolved_database_url)
    try:
        with db.engine.begin() as conn:
            gone = conn.execute(delete(EventRecord).where(
                EventRecord.seq > manifest["spec"]["events"])).rowcount
            if manifest.get("collab_model") is not None:
                conn.execute(delete(CollabModelRecord).where(
                    CollabModelRecord.id > manifest["collab_model"]))
    finally:
        db.dispose()
    return int(gone or 0)


__all__ = ["EVENT_TYPES", "INPUTS", "MANIFEST", "DataSpec", "bench_settings", "load_manifest",
           "prepare", "stored_model"]
