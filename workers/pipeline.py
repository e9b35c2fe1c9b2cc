"""What the tasks do, free of Celery: one extraction per (item, modality), and index writes."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded

from enrich.base import MediaDecodeError, ModelUnavailable
from index.base import IndexUnavailable
from medley import fusion, fusion_state, indexing, metrics, repo
from medley.catalog import text_hash, text_input
from medley.db.models import Item, utcnow
from medley.domain import MediaKind, Modality, ModalityStatus
from workers.extractors import EXTRACTORS, Extracted, model_key
from workers.runtime import Runtime

__all__ = ["EXTRACTORS", "IndexUnavailable", "run_extraction", "write_index"]

log = logging.getLogger(__name__)


def source_hash(rt: Runtime, item: Item, m: Modality) -> str | None:
    """What identifies this modality's input: media bytes, or text, plus settings that matter."""
    if m in (Modality.TEXT, Modality.CLIP_TEXT):
        return text_hash(item, m)
    by_kind = {media.kind: media.sha256 for media in item.media}
    if m is Modality.IMAGE:
        sha = by_kind.get(MediaKind.IMAGE.value)
    elif m is Modality.VIDEO:
        sha = by_kind.get(MediaKind.VIDEO.value)
        if sha:
            sha = f"{sha}:{rt.settings.keyframe_cap}:{rt.settings.scene_threshold}"
    else:
        sha = by_kind.get(MediaKind.AUDIO.value) or by_kind.get(MediaKind.VIDEO.value)
    return hashlib.sha256(f"{m}:{sha}".encode()).hexdigest() if sha else None


def run_extraction(rt: Runtime, item_id: str, m: Modality) -> bool:
    """Extract one modality. Returns True when the index should be updated."""
    started = time.perf_counter()
    with rt.db.session() as s:
        rec = repo.modality(s, item_id, m, lock=True)
        if rec is None or rec.status not in (
            ModalityStatus.QUEUED.value,
            ModalityStatus.PROCESSING.value,
        ):
            return False  # deleted, or already finished by an earlier delivery
        if rec.attempts >= rt.settings.task_max_attempts:
            _finish(s, rec, repo.Outcome(
                ModalityStatus.FAILED,
                error=f"gave up after {rec.attempts} attempts (the worker kept stopping)",
            ))
            return True
        # Reads first, then the write: on SQLite the first write takes the database's one
        # write lock until the commit, and uploads and the other extractions wait behind it.
        item = rec.item
        src = source_hash(rt, item, m)
        key = model_key(rt.settings, m)
        reusable = repo.find_reusable(s, m, src, key) if src else None
        job = _job_input(item, m)
        repo.start(s, rec)
        if reusable is not None and reusable.item_id != item_id:
            vector = np.frombuffer(reusable.vector or b"", dtype=np.float32)
            reused = repo.Outcome(
                ModalityStatus.READY, vector=vector, source_hash=src, model_name=key,
                model_version=reusable.model_version, reused_from=reusable.item_id,
                timings={"total_s": time.perf_counter() - started},
            )
            if m is Modality.SPEECH and src:
                _copy_transcript(s, item, src)
            _finish(s, rec, reused)
            return True
    outcome = _extract(rt, m, job, src, key, started)
    with rt.db.session() as s:
        rec = repo.modality(s, item_id, m, lock=True)
        if rec is None:
            return False  # the item was deleted while we worked
        item = rec.item  # read before the first write, as above
        if outcome.transcript is not None:
            repo.save_transcript(s, item, source_hash=src or "", **outcome.transcript)
        _finish(s, rec, outcome.result)
    return True


def _finish(s: Any, rec: Any, outcome: repo.Outcome) -> None:
    repo.finish(s, rec, outcome)
    metrics.extraction(rec.modality, outcome.status.value, (outcome.timings or {}).get("total_s"))


def _job_input(item: Item, m: Modality) -> dict[str, Any]:
    """Everything an extractor needs, copied out of the session."""
    return {
        "item_id": item.id,
        "text": text_input(item, m) if m in (Modality.TEXT, Modality.CLIP_TEXT) else None,
        "media": {media.kind: media.path for media in item.media},
    }


def _extract(
    rt: Runtime, m: Modality, job: dict[str, Any], src: str | None, key: str, started: float
) -> Extracted:
    def done(status: ModalityStatus, error: str | None) -> Extracted:
        return Extracted(repo.Outcome(
            status, error=error, source_hash=src, model_name=key,
            timings={"total_s": time.perf_counter() - started},
        ))

    try:
        out = EXTRACTORS[m](rt, job)
    except MediaDecodeError as exc:
        return done(ModalityStatus.FAILED, str(exc))
    except ModelUnavailable as exc:
        return done(ModalityStatus.UNAVAILABLE, str(exc))
    except SoftTimeLimitExceeded:
        limit = rt.settings.task_soft_time_limit_s
        return done(ModalityStatus.FAILED, f"extraction took longer than the {limit} s limit")
    except Exception as exc:
        log.exception("extraction of %s for item %s failed", m, job["item_id"])
        return done(ModalityStatus.FAILED, f"internal error: {type(exc).__name__}: {exc}")
    timings = {**(out.result.timings or {}), "total_s": time.perf_counter() - started}
    result = repo.Outcome(
        out.result.status, error=out.result.error, vector=out.result.vector, source_hash=src,
        model_name=key, model_version=out.result.model_version, timings=timings,
    )
    return Extracted(result, out.transcript)


def _copy_transcript(s: Any, item: Item, src: str) -> None:
    found = repo.find_transcript(s, src)
    if found is not None:
        repo.save_transcript(
            s, item, language=found.language, text=found.text, segments=found.segments,
            duration=found.duration, source_hash=src, model_name=found.model_name,
            model_version=found.model_version,
        )


# One index write at a time in this process, so an older read can never overwrite a newer one
# (re-fusion batches take it too).
index_lock = threading.Lock()


def write_index(rt: Runtime, item_id: str) -> None:
    """Upsert the item's current vectors and payload (or drop it if deleted). Idempotent."""
    index = rt.index()
    with index_lock, rt.db.session() as s:
        as_of = utcnow()
        repo.lock_item(s, item_id)  # no modality changes while we read, write and mark
        item = s.get(Item, item_id)
        if item is None:
            index.delete([item_id])
            return
        usable = fusion.usable(repo.vectors(s, item_id), rt.dims)
        if not usable:
            return  # nothing extracted yet; a later extraction will dispatch again
        # Both fused slots, each under the weights of the profile it holds: the standby slot
        # stays current for an instant rollback, or fills in during a re-fusion job.
        slots = fusion_state.slot_weights(s, rt.settings.fusion_weights)
        index.upsert([indexing.point(item_id, usable, slots, rt.dims, indexing.payload_of(item))])
        repo.mark_indexed(s, item_id, as_of)


def re_fuse(rt: Runtime, job_id: str) -> str:
    """Run a re-fusion job in the index owner (see `medley.editor.refusion`)."""
    from medley.editor.refusion import run_job

    return run_job(rt.db, rt.index(), rt.dims, job_id, rt.settings.fusion_weights,
                   lock=lambda: index_lock)
