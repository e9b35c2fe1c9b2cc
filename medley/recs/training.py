"""Train the collaborative model from every stored event and store it for serving processes."""

from __future__ import annotations

import logging
import time

from medley.config import Settings
from medley.db import Database
from medley.privacy import erase
from medley.recs import collab, store

log = logging.getLogger(__name__)


ATTEMPTS = 3  # an erasure landing mid-training discards the result; train again at once


def train_and_store(db: Database, settings: Settings) -> int | None:
    """Returns the new model's id, or None when there is nothing new to learn from."""
    for _ in range(ATTEMPTS):
        with db.session() as s:
            last = store.max_seq(s)
            latest = store.latest_model_id(s)
            if latest is not None:
                found = store.load_model_blob(s, latest)
                if found is not None and found[1] >= last and not erase.retrain_due(s, latest):
                    return None  # no event since the newest model, and no erasure either
            erasures = erase.latest_notice(s)
            started = time.perf_counter()
            rows = list(store.interactions(s, last))
        model = collab.train(rows, factors=settings.collab_factors,
                             iterations=settings.collab_iterations,
                             regularization=settings.collab_regularization, last_seq=last)
        if model is None:
            return None
        with db.session() as s:
            erase.serialize(s)
            # The rows may hold events an erasure deleted meanwhile: such a model must not
            # be stored (it would bring the erased user's factors back).
            if erase.latest_notice(s) != erasures:
                log.info("an erasure landed during training; training again without it")
                continue
            model_id = store.save_model(s, model.to_bytes(), last, len(rows))
        break
    else:
        return None
    log.info("collaborative model %s: %d users, %d items, %d events, %.1f s", model_id,
             len(model.user_ids), len(model.item_ids), len(rows), time.perf_counter() - started)
    return model_id
