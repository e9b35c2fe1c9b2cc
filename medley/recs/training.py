"""Train the recommender's model from every stored event and store it for serving processes:
ALS factors, the content -> factors map and the learned ranker, one version (`medley.recs.learn`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from sqlalchemy import select

from medley.config import Settings
from medley.db import Database
from medley.domain import Modality
from medley.erasures import latest_notice, retrain_due, serialize
from medley.recs import features, store
from medley.recs.collab import ranker_names
from medley.recs.items import ItemTable
from medley.recs.learn import learn
from medley.recs.sync import ITEM_COLUMNS, with_vectors

log = logging.getLogger(__name__)


ATTEMPTS = 3  # an erasure landing mid-training discards the result; train again at once


def catalog(db: Database, settings: Settings, dims: Mapping[Modality, int]) -> ItemTable:
    """Every item with its content vectors (what the content map learns from and ranker
    candidates are drawn from), as a serving process holds them; one pass, no watermark."""
    table = ItemTable(dims)
    with db.session() as s:
        rows = s.execute(select(*ITEM_COLUMNS)).all()
        skipped = 0
        for r, load in with_vectors(s, rows, dims):
            try:
                info, usable = load()
            except Exception:  # the serving sync sets it aside and says why; learn without it
                skipped += 1
                continue
            table.upsert(r.id, info, usable or None)
    if skipped:
        log.warning("training without %d items that cannot be loaded", skipped)
    return table


def train_and_store(db: Database, settings: Settings,
                    dims: Mapping[Modality, int] | None = None, *, force: bool = False
                    ) -> int | None:
    """Returns the new model's id, or None when there is nothing new to learn from. `dims`:
    the vector size per modality (read from the model configs when not given). `force`:
    train even so (a benchmark measuring a change to training on a dataset it has seen)."""
    for _ in range(ATTEMPTS):
        with db.session() as s:
            last = store.max_seq(s)
            latest = store.latest_model_id(s)
            if latest is not None:
                found = store.load_model_blob(s, latest)
                if (not force and found is not None and found[1] >= last
                        and not retrain_due(s, latest)
                        and _ranker_current(found[0])):
                    return None  # no event since the newest model, and no erasure either
            erasures = latest_notice(s)
            started = time.perf_counter()
            rows = [(q, e) for q, e in store.events_after(s, 0) if q <= last]
        if dims is None:
            from enrich.registry import Models

            dims = Models(settings.models,
                          max_media_seconds=settings.max_media_seconds).dims()
        model, report = learn(rows, catalog(db, settings, dims), settings.recommendations,
                              last_seq=last)
        if model is None:
            return None
        with db.session() as s:
            serialize(s)
            # The rows may hold events an erasure deleted meanwhile: such a model must not
            # be stored (it would bring the erased user's factors back).
            if latest_notice(s) != erasures:
                log.info("an erasure landed during training; training again without it")
                continue
            model_id = store.save_model(s, model.to_bytes(), last, len(rows))
        break
    else:
        return None
    log.info("model %s: %d users, %d items, %d events, %.1f s; content map R² %s; ranker %s",
             model_id, len(model.user_ids), len(model.item_ids), len(rows),
             time.perf_counter() - started, report.get("content_map_r2"), report["ranker"])
    return model_id


def _ranker_current(blob: bytes) -> bool:
    """Whether a stored model's ranker reads today's features. One trained on other features
    (an upgrade added some) cannot serve (the hand blend does), so a platform with no new
    events must still train again rather than serve without its ranker for good."""
    names = ranker_names(blob)
    return names is None or tuple(names) == features.NAMES
