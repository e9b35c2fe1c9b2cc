"""Fuse → index point: what the index holds for an item, built in one place.

An item's point is one named vector per modality it has (those that fit the current models),
a fused vector in each fused slot under that slot's weights (`medley.fusion`: the active slot
serves, the standby one stays current for an instant rollback or is re-fused under new
weights), and the payload that answers filter on. Every writer builds its points here:
ingestion (`workers.pipeline.write_index`), re-fusion (`medley.editor.refusion`, one slot for
many items) and the benchmarks' synthetic catalogs, so all of them fill both slots the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np

from index.base import FUSED_SLOTS, UNRATED_AGE, IndexPoint
from medley import dates, fusion
from medley.db.models import Item
from medley.domain import Modality, ModalityStatus, age_min

Weights = Mapping[Modality, float]


def named_dims(dims: Mapping[Modality, int]) -> dict[str, int]:
    """The index's named vectors and their sizes: one per modality, and the fused slots."""
    named = {m.value: d for m, d in dims.items()}
    named.update({slot: fusion.fused_dim(dims) for slot in FUSED_SLOTS})
    return named


def every_slot(weights: Weights) -> dict[str, Weights]:
    """The same weights in every fused slot: a fresh catalog's state, where one profile (the
    settings' weights) is in both (`medley.editor.profiles.state`)."""
    return {slot: weights for slot in FUSED_SLOTS}


def payload(*, title: str, tags: Iterable[str] | None, language: str | None,
            age_rating: str | None, external_id: str | None, published_at: datetime | None,
            created_at: datetime | None, modalities: Iterable[str]) -> dict[str, Any]:
    """The payload answers filter and display on. Dates become epoch seconds (a naive one is
    UTC); `published_ts` is when the item was published, else when it entered the catalog."""
    ts = dates.epoch
    return {
        "title": title,
        "tags": list(tags or []),
        "language": language,
        "age_rating": age_rating,
        "external_id": external_id,
        "published_at": ts(published_at),
        "created_at": ts(created_at),
        "age_min": UNRATED_AGE if (age := age_min(age_rating)) is None else age,
        "published_ts": ts(published_at) or ts(created_at),
        "modalities": sorted(modalities),
    }


def payload_of(item: Item) -> dict[str, Any]:
    """`payload` of a stored item: its ready modalities are the ones listed."""
    return payload(
        title=item.title, tags=item.tags, language=item.language, age_rating=item.age_rating,
        external_id=item.external_id, published_at=item.published_at,
        created_at=item.created_at,
        modalities=(r.modality for r in item.modalities
                    if r.status == ModalityStatus.READY.value),
    )


def point(item_id: str, vectors: Mapping[Modality, np.ndarray],
          slot_weights: Mapping[str, Weights], dims: Mapping[Modality, int],
          item_payload: Mapping[str, Any]) -> IndexPoint:
    """The item's index point: its usable modality vectors (`fusion.usable`: a vector stored
    under an older model of another size is left out), and in each slot of `slot_weights` the
    fusion under that slot's weights (a slot whose weights give none of the item's modalities
    any weight is left out). An item with no usable vector gets a point without vectors, which
    callers do not write."""
    usable = fusion.usable(vectors, dims)
    named: dict[str, Any] = {m.value: v.tolist() for m, v in usable.items()}
    for slot, weights in slot_weights.items():
        fused = fusion.fuse(usable, weights, dims)
        if fused is not None:
            named[slot] = fused.tolist()
    return IndexPoint(item_id, named, item_payload)


def fuse_batch(vectors: Mapping[str, Mapping[Modality, np.ndarray]], ids: list[str],
               weights: Weights, dims: Mapping[Modality, int]) -> dict[str, np.ndarray]:
    """One slot's fused vectors for many items at once (re-fusion): `point`'s fusion under
    `weights`, item by item equal up to float rounding (`fusion.fuse_many`). Items with no
    weighted modality are left out, as `point` leaves their slot out."""
    blocks = {m: np.zeros((len(ids), d), dtype=np.float32) for m, d in dims.items()}
    for k, item in enumerate(ids):
        for m, v in fusion.usable(vectors.get(item, {}), dims).items():
            blocks[m][k] = v
    fused = fusion.fuse_many(blocks, weights, dims)
    keep = np.flatnonzero(np.abs(fused).sum(axis=1) > 0)
    return {ids[k]: fused[k] for k in keep}
