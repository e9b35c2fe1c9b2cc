"""Item records on SQLite and PostgreSQL: the same suite against each backend."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medley import repo
from medley.catalog import Catalog, ItemMetadata, ItemPatch
from medley.db import Database
from medley.db.models import utcnow
from medley.domain import MediaKind, Modality, ModalityStatus
from medley.errors import InvalidInput, NotFound
from medley.media import MediaStore


class Recorder:
    """The dispatcher seam: records what would be queued."""

    def __init__(self) -> None:
        self.extracts: list[tuple[str, Modality]] = []
        self.indexes: list[str] = []

    def extract(self, item_id: str, modality: Modality) -> None:
        self.extracts.append((item_id, modality))

    def index(self, item_id: str) -> None:
        self.indexes.append(item_id)


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> tuple[Catalog, Recorder, MediaStore]:
    db = Database(database_url)
    db.migrate()
    db.migrate()  # safe to run twice
    store = MediaStore(tmp_path / "media", 1 << 20)
    rec = Recorder()
    return Catalog(db, store, rec), rec, store


def _png(store: MediaStore, color: tuple[int, int, int] = (1, 2, 3)):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    buf.seek(0)
    return store.save(MediaKind.IMAGE, buf, "x.png")


def test_create_queues_one_extraction_per_modality(env) -> None:
    catalog, rec, store = env
    item = catalog.create(
        ItemMetadata(title="Coffee", tags=["food"]), {MediaKind.IMAGE: _png(store)}
    )
    assert item.status == "queued"
    assert {m for _, m in rec.extracts} == {Modality.TEXT, Modality.CLIP_TEXT, Modality.IMAGE}
    assert {r.modality for r in item.modalities} == {"text", "clip_text", "image"}
    assert item.media[0].mime == "image/png"


def test_empty_file_fails_its_modality_only(env) -> None:
    catalog, rec, store = env
    empty = store.save(MediaKind.AUDIO, io.BytesIO(b""), "silence.wav")
    item = catalog.create(ItemMetadata(title="Quiet"), {MediaKind.AUDIO: empty})
    speech = next(r for r in item.modalities if r.modality == "speech")
    assert speech.status == "failed" and "empty" in (speech.error or "")
    assert (item.id, Modality.SPEECH) not in rec.extracts
    assert (item.id, Modality.TEXT) in rec.extracts


def test_patch_requeues_only_the_text_that_changed(env) -> None:
    catalog, rec, _ = env
    item = catalog.create(ItemMetadata(title="A", description="d", tags=["x"]), {})
    with catalog.db.session() as s:
        for m in (Modality.TEXT, Modality.CLIP_TEXT):
            r = repo.modality(s, item.id, m)
            assert r is not None
            repo.start(s, r)
            from medley.catalog import text_hash

            repo.finish(
                s,
                r,
                repo.Outcome(
                    ModalityStatus.READY, vector=np.ones(3), source_hash=text_hash(r.item, m)
                ),
            )
    rec.extracts.clear()
    # Tags feed the metadata-text vector only, not the CLIP text.
    catalog.patch(item.id, ItemPatch(tags=["y"]))
    assert rec.extracts == [(item.id, Modality.TEXT)]
    rec.extracts.clear()
    catalog.patch(item.id, ItemPatch(age_rating="PG"))
    assert rec.extracts == [] and rec.indexes[-1] == item.id
    with pytest.raises(InvalidInput):
        catalog.patch(item.id, ItemPatch.model_validate({"title": None}))


def test_delete_removes_records_and_unshared_media(env) -> None:
    catalog, rec, store = env
    shared = _png(store, (9, 9, 9))
    a = catalog.create(ItemMetadata(title="A"), {MediaKind.IMAGE: shared})
    b = catalog.create(ItemMetadata(title="B"), {MediaKind.IMAGE: shared})
    assert shared.path is not None
    catalog.delete(a.id)
    assert shared.path.exists()  # b still uses the same bytes
    catalog.delete(b.id)
    assert not shared.path.exists()
    with pytest.raises(NotFound):
        catalog.get(a.id)
    assert rec.indexes[-2:] == [a.id, b.id]  # the index owner drops the points


def test_list_pages_and_filters(env) -> None:
    catalog, _, _ = env
    ids = [catalog.create(ItemMetadata(title=f"t{i}"), {}).id for i in range(5)]
    page, total = catalog.list(status=None, limit=2, offset=0)
    assert total == 5 and len(page) == 2
    rest, _ = catalog.list(status=None, limit=10, offset=2)
    assert {i.id for i in page} | {i.id for i in rest} == set(ids)
    assert catalog.list(status="ready", limit=10, offset=0) == ([], 0)


def test_stale_processing_is_failed_with_a_reason(env) -> None:
    catalog, _, _ = env
    item = catalog.create(ItemMetadata(title="Slow"), {})
    with catalog.db.session() as s:
        r = repo.modality(s, item.id, Modality.TEXT)
        assert r is not None
        repo.start(s, r)
        r.started_at = utcnow() - timedelta(hours=2)
    with catalog.db.session() as s:
        assert repo.expire_stale(s, 60) == [item.id]
    got = catalog.get(item.id)
    text = next(r for r in got.modalities if r.modality == "text")
    assert text.status == "failed" and "time limit" in (text.error or "")


def test_pending_and_reuse_lookups(env) -> None:
    catalog, _, _ = env
    item = catalog.create(ItemMetadata(title="P"), {})
    with catalog.db.session() as s:
        assert set(repo.pending(s)) == {(item.id, Modality.TEXT), (item.id, Modality.CLIP_TEXT)}
        r = repo.modality(s, item.id, Modality.TEXT)
        assert r is not None
        repo.finish(
            s,
            r,
            repo.Outcome(
                ModalityStatus.READY, vector=np.arange(3.0), source_hash="h", model_name="m"
            ),
        )
    with catalog.db.session() as s:
        found = repo.find_reusable(s, Modality.TEXT, "h", "m")
        assert found is not None and found.item_id == item.id
        assert repo.find_reusable(s, Modality.TEXT, "h", "other-model") is None
        assert np.allclose(repo.vectors(s, item.id)[Modality.TEXT], [0, 1, 2])
        assert item.id in repo.unindexed(s)
        repo.mark_indexed(s, item.id, utcnow())
    with catalog.db.session() as s:
        assert item.id not in repo.unindexed(s)


def test_concurrent_finishes_leave_the_item_ready(env) -> None:
    """Two modalities finishing at the same moment: the item's status must not be left stale."""
    import threading

    catalog, _, _ = env
    for _ in range(10):
        item = catalog.create(ItemMetadata(title="Race"), {})
        with catalog.db.session() as s:
            for m in (Modality.TEXT, Modality.CLIP_TEXT):
                r = repo.modality(s, item.id, m)
                assert r is not None
                repo.start(s, r)
        barrier = threading.Barrier(2)

        def finish(m: Modality, item_id: str = item.id, barrier=barrier) -> None:
            with catalog.db.session() as s:
                r = repo.modality(s, item_id, m)
                assert r is not None
                barrier.wait()
                repo.finish(s, r, repo.Outcome(ModalityStatus.READY, vector=np.ones(3)))

        threads = [threading.Thread(target=finish, args=(m,))
                   for m in (Modality.TEXT, Modality.CLIP_TEXT)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert catalog.get(item.id).status == "ready"
