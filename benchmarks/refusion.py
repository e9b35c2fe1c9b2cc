"""`python -m benchmarks refusion`: how long publishing a fusion profile takes on a large catalog.

A synthetic catalog (the default models' vector sizes, a realistic mix of modalities) is written
to the database and the embedded index once and kept; then a real re-fusion job runs exactly as
a publish runs it (`medley.editor.refusion.run_job`, the same batches, the same index writes),
with no model loaded. Reported: the job's wall time, items per second, where the time went,
and the index's search time on the freshly written slot.
"""

from __future__ import annotations

import platform
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

from benchmarks.report import table, write_report
from index.base import VectorIndex
from medley import fusion, fusion_state, indexing
from medley.db import Database
from medley.db.models import Item, ModalityRecord, utcnow
from medley.domain import Modality, ModalityStatus
from medley.editor import profiles
from medley.editor.refusion import run_job
from medley.fusion_state import Action

# The default models' sizes: CLIP ViT-B-32 (image, video, CLIP text), MiniLM (text, speech).
DIMS = {Modality.IMAGE: 512, Modality.VIDEO: 512, Modality.SPEECH: 384, Modality.TEXT: 384,
        Modality.CLIP_TEXT: 512}
# Share of items that have each modality (every item has metadata text).
MIX = {Modality.IMAGE: 0.8, Modality.VIDEO: 0.3, Modality.SPEECH: 0.4, Modality.TEXT: 1.0,
       Modality.CLIP_TEXT: 1.0}
DEFAULT = {m: 1.0 for m in Modality} | {Modality.CLIP_TEXT: 0.5}
DIALOGUE_FIRST = {Modality.IMAGE: 0.5, Modality.VIDEO: 0.5, Modality.SPEECH: 3.0,
                  Modality.TEXT: 1.0, Modality.CLIP_TEXT: 0.5}
SEED_BATCH = 2000


@dataclass
class Catalog:
    db: Database
    index: VectorIndex
    items: int


def open_catalog(folder: Path, items: int, *, seed: int = 0) -> tuple[Catalog, bool]:
    """The bench catalog in `folder`, built if it is missing or of another size."""
    from index.edge import EdgeIndex

    folder.mkdir(parents=True, exist_ok=True)
    db = Database(f"sqlite:///{folder / 'medley.db'}")
    db.migrate()
    fusion_state.ensure(db, DEFAULT)
    index = EdgeIndex(folder / "index")
    index.ensure(indexing.named_dims(DIMS))
    with db.session() as s:
        have = int(s.scalar(select(func.count()).select_from(Item)) or 0)
    if have != items:
        if have:
            raise SystemExit(f"{folder} holds {have} items, not {items}: remove it to rebuild")
        seed_catalog(db, index, items, np.random.default_rng(seed))
    return Catalog(db, index, items), have != items


def seed_catalog(db: Database, index: VectorIndex, items: int, rng: np.random.Generator) -> None:
    """Items with stored modality vectors, indexed as ingestion indexes them (`medley.indexing`)
    under the default weights, which a fresh catalog's two slots both hold."""
    slots = indexing.every_slot(DEFAULT)
    for start in range(0, items, SEED_BATCH):
        n = min(SEED_BATCH, items - start)
        ids = [str(uuid.UUID(int=start + k + 1)) for k in range(n)]
        has = {m: rng.random(n) < share for m, share in MIX.items()}
        vecs = {m: rng.standard_normal((n, d)).astype(np.float32) for m, d in DIMS.items()}
        points = []
        created = utcnow()
        with db.session() as s:
            for k, item_id in enumerate(ids):
                mine = {m: vecs[m][k] for m in Modality if has[m][k]}
                item = Item(id=item_id, title=f"Item {start + k}", status="ready", indexed=True,
                            created_at=created, modalities=[
                                ModalityRecord(modality=m.value, dim=len(v), vector=v.tobytes(),
                                               status=ModalityStatus.READY.value)
                                for m, v in mine.items()])
                s.add(item)
                points.append(indexing.point(item_id, mine, slots, DIMS,
                                             indexing.payload_of(item)))
        index.upsert(points)


def publish_once(cat: Catalog, weights: dict[Modality, float], name: str
                 ) -> tuple[str, float, dict[str, float]]:
    """Create and publish a profile; run its job here. Returns (status, seconds, phases)."""
    with cat.db.session() as s:
        profile = profiles.create(s, name, weights, {}, "bench", "bench")
        job = profiles.start(s, profile.id, Action.PUBLISH, "bench", DEFAULT)
    phases: dict[str, float] = {}
    started = time.perf_counter()
    status = run_job(cat.db, cat.index, DIMS, job.id, DEFAULT, timings=phases)
    return status, time.perf_counter() - started, phases


def search_ms(index: VectorIndex, slot: str, probes: int = 20) -> float:
    rng = np.random.default_rng(1)
    dim = fusion.fused_dim(DIMS)
    started = time.perf_counter()
    for _ in range(probes):
        index.search(slot, rng.standard_normal(dim).tolist(), 10, with_payload=False)
    return (time.perf_counter() - started) / probes * 1000


def run_refusion_bench(out: Path, data_dir: Path, items: int = 100_000) -> dict[str, Any]:
    built = time.perf_counter()
    cat, was_built = open_catalog(data_dir, items)
    prepare_s = time.perf_counter() - built
    runs = []
    for k, weights in enumerate((DIALOGUE_FIRST, DEFAULT)):  # publish, then back again
        status, seconds, phases = publish_once(cat, weights, f"bench-{k}-{uuid.uuid4().hex[:6]}")
        with cat.db.session() as s:
            live = fusion_state.serving(s, DEFAULT)
        runs.append({
            "weights": {m.value: w for m, w in weights.items()}, "status": status,
            "seconds": round(seconds, 2), "items_per_s": round(items / seconds),
            "phases_s": {k: round(v, 2) for k, v in phases.items()},
            "search_ms_after": round(search_ms(cat.index, live.slot), 2),
        })
    cat.index.close()
    result = {
        "items": items, "dims": {m.value: d for m, d in DIMS.items()},
        "fused_dim": fusion.fused_dim(DIMS), "mix": {m.value: s for m, s in MIX.items()},
        "target_s": 60, "runs": runs, "catalog_prepare_s": round(prepare_s, 1),
        "catalog_built_now": was_built,
        "machine": {"cpus": _cpus(), "python": platform.python_version()},
        "models_called": 0,
    }
    write_report(out, "refusion", result, markdown(result))
    return result


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def markdown(r: dict[str, Any]) -> str:
    rows = [[", ".join(f"{m} {w:g}" for m, w in run["weights"].items()), run["status"],
             run["seconds"], run["items_per_s"], run["phases_s"].get("read_s"),
             run["phases_s"].get("fuse_s"), run["phases_s"].get("write_s"),
             run["search_ms_after"]] for run in r["runs"]]
    return "\n".join([
        "# Re-fusion on publish (`python -m benchmarks refusion`)",
        "",
        f"{r['items']:,} items (synthetic vectors at the default models' sizes; modalities per "
        f"item: {', '.join(f'{m} {s:.0%}' for m, s in r['mix'].items())}), SQLite and the "
        f"embedded index, {r['machine']['cpus']} CPU cores. Each run is a real publish job: "
        "stored modality vectors read in batches of 1,000, fused, written to the standby "
        f"slot ({r['fused_dim']} dimensions), then the switch. Models called: "
        f"{r['models_called']}. Target: under {r['target_s']} s.",
        "",
        table(["weights", "status", "seconds", "items/s", "read s", "fuse s", "write s",
               "search ms after"], rows),
        "",
        "`search ms after`: a top-10 search of the new slot straight after the switch. The "
        "embedded index builds no HNSW graph for newly written vectors until it is optimized, "
        "so these searches are exhaustive.",
        "",
        ("Building the synthetic catalog (kept in the data folder for later runs): "
         if r["catalog_built_now"] else "Opening the synthetic catalog built by an earlier run: ")
        + f"{r['catalog_prepare_s']} s.",
    ])
