"""A task that runs out of time ends `failed` with the reason, never stuck in `processing`."""

from __future__ import annotations

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from medley.catalog import Catalog, ItemMetadata
from medley.domain import Modality
from workers import extractors, pipeline
from workers.runtime import Runtime


class NoDispatch:
    def extract(self, item_id: str, modality: Modality) -> None: ...

    def index(self, item_id: str) -> None: ...


def test_soft_time_limit_ends_in_failed_with_reason(make_settings, monkeypatch) -> None:
    rt = Runtime.build(make_settings(task_soft_time_limit_s=7))
    item = Catalog(rt.db, rt.store, NoDispatch()).create(ItemMetadata(title="Long"), {})

    def too_slow(rt: Runtime, job: dict) -> extractors.Extracted:
        raise SoftTimeLimitExceeded()

    monkeypatch.setitem(pipeline.EXTRACTORS, Modality.TEXT, too_slow)
    assert pipeline.run_extraction(rt, item.id, Modality.TEXT) is True
    with rt.db.session() as s:
        from medley import repo

        rec = repo.modality(s, item.id, Modality.TEXT)
        assert rec is not None and rec.status == "failed"
        assert rec.error == "extraction took longer than the 7 s limit"


def test_repeated_deliveries_give_up_after_max_attempts(make_settings) -> None:
    rt = Runtime.build(make_settings(task_max_attempts=2))
    item = Catalog(rt.db, rt.store, NoDispatch()).create(ItemMetadata(title="Crashy"), {})
    from medley import repo

    with rt.db.session() as s:
        rec = repo.modality(s, item.id, Modality.TEXT)
        assert rec is not None
        rec.attempts = 2  # two workers died holding this task
        rec.status = "processing"
    pipeline.run_extraction(rt, item.id, Modality.TEXT)
    with rt.db.session() as s:
        rec = repo.modality(s, item.id, Modality.TEXT)
        assert rec is not None and rec.status == "failed" and "2 attempts" in (rec.error or "")


@pytest.mark.parametrize("modality", list(Modality))
def test_every_modality_has_an_extractor(modality: Modality) -> None:
    assert modality in pipeline.EXTRACTORS
