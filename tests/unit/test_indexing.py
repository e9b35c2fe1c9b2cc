"""Fuse → index point (`medley.indexing`): what the index holds for an item, modalities
missing or not, in both fused slots."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from index.base import FUSED, FUSED_SLOTS, UNRATED_AGE
from medley import fusion, indexing
from medley.db.models import Item, ModalityRecord
from medley.domain import Modality as M

DIMS = {M.IMAGE: 8, M.VIDEO: 8, M.SPEECH: 6, M.TEXT: 6, M.CLIP_TEXT: 8}
ALT = FUSED_SLOTS[1]
EVEN = {m: 1.0 for m in M}
SPEECH_ONLY = {m: 0.0 for m in M} | {M.SPEECH: 1.0}
PAYLOAD = {"title": "t"}


def _vectors(mods: list[M], wrong_size: tuple[M, ...] = ()) -> dict[M, np.ndarray]:
    rng = np.random.default_rng(len(mods))
    return {m: rng.normal(size=DIMS[m] + (1 if m in wrong_size else 0)).astype(np.float32)
            for m in mods}


@pytest.mark.parametrize(
    ("mods", "wrong_size", "slots", "named"),
    [
        # every modality, the same weights in both slots (a fresh catalog)
        (list(M), (), indexing.every_slot(EVEN), {*(m.value for m in M), *FUSED_SLOTS}),
        # image and text only: no video, speech or CLIP text vector, both slots still written
        ([M.IMAGE, M.TEXT], (), {FUSED: EVEN, ALT: {M.IMAGE: 2.0, M.TEXT: 0.5}},
         {"image", "text", *FUSED_SLOTS}),
        # the standby slot weights only speech, which this item lacks: that slot is left out
        ([M.IMAGE, M.TEXT], (), {FUSED: EVEN, ALT: SPEECH_ONLY}, {"image", "text", FUSED}),
        # an image vector of another size (an older model) is neither stored nor fused
        ([M.IMAGE, M.TEXT], (M.IMAGE,), indexing.every_slot(EVEN), {"text", *FUSED_SLOTS}),
        # nothing usable: a point without vectors, which writers skip
        ([M.IMAGE], (M.IMAGE,), indexing.every_slot(EVEN), set()),
    ],
)
def test_the_point_holds_the_usable_vectors_and_each_slots_fusion(
    mods: list[M], wrong_size: tuple[M, ...], slots: dict[str, dict[M, float]],
    named: set[str],
) -> None:
    vectors = _vectors(mods, wrong_size)
    point = indexing.point("item-1", vectors, slots, DIMS, PAYLOAD)
    assert point.id == "item-1" and point.payload == PAYLOAD
    assert set(point.vectors) == named
    usable = fusion.usable(vectors, DIMS)
    for m, v in usable.items():
        assert point.vectors[m.value] == v.tolist()
    for slot in set(named) & set(FUSED_SLOTS):
        want = fusion.fuse(usable, slots[slot], DIMS)
        assert want is not None and np.allclose(point.vectors[slot], want)
        assert len(point.vectors[slot]) == fusion.fused_dim(DIMS)
    # Re-fusion's batch gives each slot the same vector, up to float rounding.
    for slot, weights in slots.items():
        batch = indexing.fuse_batch({"item-1": vectors}, ["item-1"], weights, DIMS)
        assert (slot in point.vectors) == ("item-1" in batch)
        if slot in point.vectors:
            assert np.allclose(batch["item-1"], point.vectors[slot], atol=1e-6)


def test_the_index_holds_a_vector_per_modality_and_both_fused_slots() -> None:
    assert indexing.named_dims(DIMS) == {"image": 8, "video": 8, "speech": 6, "text": 6,
                                          "clip_text": 8, FUSED: 36, ALT: 36}


CREATED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PUBLISHED = datetime(1999, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "want"),
    [
        # rated, published: both dates as epoch seconds
        ({"age_rating": "PG-13", "published_at": PUBLISHED, "created_at": CREATED},
         {"age_min": 13, "published_at": PUBLISHED.timestamp(),
          "published_ts": PUBLISHED.timestamp(), "created_at": CREATED.timestamp()}),
        # unrated, unpublished: only unfiltered answers; new since it entered the catalog
        ({"age_rating": None, "published_at": None, "created_at": CREATED},
         {"age_min": UNRATED_AGE, "published_at": None, "published_ts": CREATED.timestamp()}),
        # a naive date (as SQLite hands columns back) is UTC
        ({"age_rating": None, "published_at": None,
          "created_at": CREATED.replace(tzinfo=None)},
         {"created_at": CREATED.timestamp(), "published_ts": CREATED.timestamp()}),
    ],
)
def test_the_payload_of_a_stored_item(fields: dict[str, object], want: dict[str, object]
                                      ) -> None:
    records = [ModalityRecord(modality="text", status="ready"),
               ModalityRecord(modality="image", status="failed"),  # not in the index
               ModalityRecord(modality="clip_text", status="ready")]
    item = Item(id="item-1", title="A title", tags=["b", "a"], language="en",
                external_id="ext-1", modalities=records, **fields)
    payload = indexing.payload_of(item)
    assert payload == {"title": "A title", "tags": ["b", "a"], "language": "en",
                       "age_rating": fields["age_rating"], "external_id": "ext-1",
                       "published_at": payload["published_at"],
                       "created_at": CREATED.timestamp(), "age_min": payload["age_min"],
                       "published_ts": payload["published_ts"],
                       "modalities": ["clip_text", "text"]}
    assert {k: payload[k] for k in want} == want
