"""`python -m benchmarks ingest`: a generated catalog imported with `medley ingest --wait` into the
embedded default and into Redis + `medley worker` processes, in one run.

CLIP is ViT-B-32 with RANDOM weights (no pretrained CLIP weights reach this machine): the same
compute as the real model, for timing only. Both deployments run the code snapshot taken at
the start, with the same settings: the embedded one is `medley serve` alone (SQLite, Qdrant
Edge, the in-process worker); the distributed one is `medley serve` on a Redis broker and
PostgreSQL (or SQLite, `database="sqlite"`) with a media worker (`--concurrency 2`, prefork)
and a text worker (`--pool threads --concurrency 16`), as in compose.yaml, the API keeping the
embedded index. Each gets a few warm-up items first (models load lazily in worker processes),
then the catalog on the clock. After both, each model family alone on a batch of 32 of the
catalog's inputs, in this process: the peer of the pipeline's throughput on this CPU.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.ingest_catalog import build_catalog, wav_seconds
from benchmarks.ingest_deploy import import_catalog, start
from benchmarks.ingest_report import render
from benchmarks.report import write_report
from benchmarks.serve_proc import busy_seconds, code_state, snapshot_code

BROKER = "redis://127.0.0.1:6379/11"  # a database of its own (tests use 0 and 7), flushed
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MEDIA_WORKER = ("--queues", "media", "--concurrency", "2")
TEXT_WORKER = ("--queues", "text", "--pool", "threads", "--concurrency", "16")
WARMUP = 4  # items with an image and speech each, before the clock starts
BATCH = 32
REPO_BENCH = Path(__file__).resolve().parents[1] / "bench"
CLIP_LABEL = "ViT-B-32 with RANDOM weights (no pretrained CLIP weights reach this machine; " \
             "same compute as the real model; timing only)"


def clip_env(inputs: Path) -> dict[str, str]:
    """Settings both deployments share: random-weight ViT-B-32, the prepared model cache."""
    from benchmarks.pipeline import _random_vit_b32
    from medley.config import get_settings

    return {"MEDLEY_CLIP_MODEL": "ViT-B-32", "MEDLEY_CLIP_CHECKPOINT": str(_random_vit_b32(inputs)),
            "MEDLEY_MODEL_CACHE_DIR": str(get_settings().models_dir.resolve())}


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A PostgreSQL database of the run's own, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"medley_bench_ingest_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def flush_broker(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def warmup_manifest(root: Path) -> Path:
    """WARMUP items with a sample photo and a sample narration each (not in the catalog)."""
    from medley.samples import build_samples

    samples = build_samples(root / "samples")
    rows = [{"title": f"Warm-up {k}", "description": "Warm-up item.", "image": str(photo),
             "audio": str(audio)} for k, (photo, audio) in
            enumerate(zip(samples.photos.values(), samples.speech.values(), strict=False))]
    path = root / "warmup.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:WARMUP]))
    return path


def deployment_run(name: str, work: Path, env: dict[str, str], manifest: Path,
                   warmup: Path | None,
                   *, code: Path | None = None, workers: tuple[tuple[str, ...], ...] = (),
                   wait_timeout_s: float = 3600.0) -> dict[str, Any]:
    """Start a deployment, import the warm-up items (models load lazily in worker
    processes), then the catalog on the clock; stop it."""
    from medley.ingest import ingest

    dep = start(name, work, env, code=code, workers=workers)
    try:
        warm = ingest(warmup, dep.base, api_key=dep.key, wait=True, progress=False,
                      wait_timeout_s=600, poll_interval_s=0.5) if warmup else None
        if warm is not None and warm.ready != warm.total:
            raise RuntimeError(f"{name}: warm-up items did not all become ready "
                               f"({warm.failures[:3]})\n{dep.log_tail()}")
        result = import_catalog(dep, manifest, wait_timeout_s)
    finally:
        dep.stop()
    result["workers"] = [" ".join(w) for w in workers]
    return result


def _rate(fn: Callable[[], Any], n: float, repeats: int = 3) -> float:
    fn()  # warm: the first call of a model pays for allocation and graph set-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return round(n / statistics.median(times), 2)


def model_only(env: dict[str, str], catalog: Path) -> dict[str, Any]:
    """Each family alone in this process at batch 32 on the catalog's own inputs (Whisper:
    three of its narrations, one at a time), with the deployments' settings."""
    from enrich.images import open_image
    from enrich.registry import Family, Models
    from medley.config import Settings

    rows = [json.loads(line) for line in catalog.read_text().splitlines()]
    texts = ([r["description"] for r in rows] * BATCH)[:BATCH]
    images = [open_image(catalog.parent / r["image"], 10**8)
              for r in [r for r in rows if "image" in r][:BATCH]]
    clips = [catalog.parent / r["audio"] for r in rows if "audio" in r][:3]
    wall0, busy0, own0 = time.perf_counter(), busy_seconds(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp),  # type: ignore[call-arg]
                            clip_model=env["MEDLEY_CLIP_MODEL"],
                            clip_checkpoint=Path(env["MEDLEY_CLIP_CHECKPOINT"]),
                            model_cache_dir=Path(env["MEDLEY_MODEL_CACHE_DIR"]))
        models = Models(settings.models, max_media_seconds=settings.max_media_seconds)
        clip, text = models.load(Family.CLIP), models.load(Family.TEXT)
        out: dict[str, Any] = {
            "image_per_s": _rate(lambda: clip.image_embedder().embed(
                (images * BATCH)[:BATCH]), BATCH) if images else None,
            "clip_text_per_s": _rate(lambda: clip.text_embedder().embed(texts), BATCH),
            "text_per_s": _rate(lambda: text.embed(texts), BATCH),
            "versions": {"clip": clip.info.version, "text": text.info.version},
        }
        if clips:
            whisper = models.load(Family.WHISPER)
            audio = sum(wav_seconds(c) for c in clips)
            out["speech_audio_s_per_s"] = _rate(
                lambda: [whisper.transcribe(c) for c in clips], audio, repeats=1)
            out["versions"]["whisper"] = whisper.info.version
    others = busy_seconds() - busy0 - (time.process_time() - own0)
    out["other_cores"] = round(max(0.0, others) / (time.perf_counter() - wall0), 2)
    return out


def enrich_reference(out: Path) -> dict[str, Any] | None:
    """bench/enrich.json's model-only figures (batch 32 images, batch 64 sentences), if any."""
    found = [p for p in (out / "enrich.json", REPO_BENCH / "enrich.json") if p.exists()]
    if not found:
        return None
    path = found[0]
    d = json.loads(path.read_text())
    return {"file": os.path.relpath(path, REPO_BENCH.parent),
            "cpu_features": d["machine"].get("cpu_features"),
            "image_per_s": d["clip"]["medley_images_per_s"],
            "text_per_s": d["text"]["medley_sentences_per_s"],
            "speech_audio_s_per_s": d["speech"]["medley_default_audio_s_per_s"],
            "clip_speedup": d["clip"]["speedup"], "clip_path": d["clip"]["medley_path"],
            "text_speedup": d["text"]["speedup"], "text_model": d["text"]["model"]}


def run_ingest_bench(out: Path, work_root: Path, items: int = 2000, seed: int = 0,
                     broker: str = BROKER, database: str = "postgresql",
                     pg_admin: str = PG_ADMIN, say: Callable[[str], None] = print
                     ) -> dict[str, Any]:
    from enrich import cpu

    started = time.perf_counter()
    work_root = work_root.resolve()  # the deployments' processes run in folders of their own
    catalog = build_catalog(work_root / "catalog", items, seed)
    say(f"catalog: {catalog.counts}, {catalog.speech_seconds} s of speech "
        f"({time.perf_counter() - started:.0f} s to build)")
    env = clip_env(work_root / "catalog")
    warmup = warmup_manifest(work_root / "catalog")
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="medley-bench-ingest-") as tmp:
        work = Path(tmp)
        code = snapshot_code(work / "code")  # edits to the tree meanwhile change nothing
        say("embedded default ...")
        runs["embedded"] = deployment_run("embedded", work, env, catalog.manifest, warmup,
                                          code=code)
        say(f"embedded: {runs['embedded']['items_per_s']} items/s; Redis + workers ...")
        flush_broker(broker)
        with _database(database, pg_admin) as url:
            dist_env = {**env, "MEDLEY_BROKER_URL": broker,
                        **({"MEDLEY_DATABASE_URL": url} if url else {})}
            try:
                runs["distributed"] = deployment_run(
                    "distributed", work, dist_env, catalog.manifest, warmup, code=code,
                    workers=(MEDIA_WORKER, TEXT_WORKER))
            finally:
                flush_broker(broker)
        runs["distributed"]["database"] = database
        say(f"distributed: {runs['distributed']['items_per_s']} items/s; models alone ...")
        shutil.rmtree(work / "code", ignore_errors=True)
    data = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "cpu_features": list(cpu.features()),
                    "load_avg_at_end": [round(v, 2) for v in os.getloadavg()]},
        "code": code_state(), "clip": CLIP_LABEL,
        "catalog": {"items": items, "seed": seed, "counts": catalog.counts,
                    "speech_seconds": catalog.speech_seconds,
                    "video_seconds": catalog.video_seconds},
        "runs": runs,
        "ratio_embedded_to_distributed": round(
            runs["embedded"]["items_per_s"] / runs["distributed"]["items_per_s"], 2),
        "model_only": model_only(env, catalog.manifest),
        "enrich_reference": enrich_reference(out),
        "runtime_s": round(time.perf_counter() - started, 1),
    }
    write_report(out, "ingest", data, render(data))
    return data


@contextmanager
def _database(kind: str, pg_admin: str) -> Iterator[str | None]:
    if kind == "sqlite":
        yield None
        return
    with fresh_database(pg_admin) as url:
        yield url

