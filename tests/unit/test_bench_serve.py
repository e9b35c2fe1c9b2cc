"""`python -m benchmarks serve`: the synthetic dataset is loadable as the server loads it, and
the load generator's latency summary is right."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from benchmarks.loadgen import Requests, summarize
from benchmarks.serve_data import INPUTS, DataSpec, bench_settings, prepare, restore

pytestmark = pytest.mark.filterwarnings("ignore:OpenBLAS is configured:RuntimeWarning")


def test_tiny_dataset_is_loadable_and_reused(tmp_path: Path) -> None:
    from enrich.registry import Models
    from index.base import FUSED, FUSED_SLOTS
    from index.edge import EdgeIndex
    from medley import fusion, indexing
    from medley.db import Database
    from medley.db.models import CollabModelRecord, EventRecord, Item, ModalityRecord

    spec = DataSpec(items=300, events=3000)
    manifest = prepare(tmp_path, spec, say=lambda _: None)
    assert not manifest["reused"] and manifest["index"]["points"] == 300

    settings = bench_settings(tmp_path)
    db = Database(settings.resolved_database_url)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Item)) == 300
        assert s.scalar(select(func.count()).select_from(EventRecord)) == 3000
        assert s.scalar(select(func.count()).select_from(CollabModelRecord)) == 1
        ids = list(s.scalars(select(Item.id)))
        unindexed = s.scalar(select(func.count()).select_from(Item).where(~Item.indexed))
        per_item = dict(s.execute(select(ModalityRecord.item_id, func.count())
                                  .group_by(ModalityRecord.item_id)).all())
        blob = s.scalar(select(ModalityRecord.vector).where(ModalityRecord.modality == "text"))
    db.dispose()
    assert unindexed == 0  # nothing for the server to re-index on start
    assert set(per_item) == set(ids) and min(per_item.values()) >= 3  # image, text, clip_text
    assert blob is not None
    vec = np.frombuffer(blob, dtype=np.float32)
    assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-4

    dims = Models(settings.models, max_media_seconds=settings.max_media_seconds).dims()
    index = EdgeIndex(settings.index_dir / settings.collection)
    index.ensure(indexing.named_dims(dims))  # the loader writes both fused slots, as ingestion
    try:
        assert index.count() == 300
        points = index.retrieve(ids, with_vectors=True)
    finally:
        index.close()
    assert {p.id for p in points} == set(ids)
    assert all(len(p.vectors[FUSED]) == fusion.fused_dim(dims) for p in points)
    assert all(len(p.vectors[FUSED_SLOTS[1]]) == fusion.fused_dim(dims) for p in points)
    assert all({"tags", "age_min", "published_ts"} <= set(p.payload) for p in points)

    inputs = json.loads((tmp_path / INPUTS).read_text())
    assert inputs["users"] and inputs["items"] and inputs["queries"] and inputs["event_items"]
    again = prepare(tmp_path, spec, say=lambda _: None)
    assert again["reused"] and again["created"] == manifest["created"]

    db = Database(settings.resolved_database_url)  # a run posts events; restore drops them
    with db.session() as s:
        s.add(EventRecord(event_id="posted", user_id="u", item_id=ids[0], type="view", ts=1.0,
                          context={}))
    db.dispose()
    assert restore(tmp_path, manifest) == 1
    assert restore(tmp_path, manifest) == 0


def test_summary_percentiles() -> None:
    lat = [k / 1000 for k in range(1, 101)]  # 1..100 ms
    s = summarize(lat, errors=3, elapsed_s=2.0)
    assert s["requests"] == 100 and s["errors"] == 3 and s["rps"] == 50.0
    assert s["p50_ms"] == pytest.approx(50.5)
    assert s["p95_ms"] == pytest.approx(95.05)
    assert s["p99_ms"] == pytest.approx(99.01)
    assert s["mean_ms"] == pytest.approx(50.5) and s["max_ms"] == pytest.approx(100.0)
    one = summarize([0.004], errors=0, elapsed_s=1.0)
    assert one["p50_ms"] == one["p99_ms"] == pytest.approx(4.0)
    empty = summarize([], errors=5, elapsed_s=1.0)
    assert empty["requests"] == 0 and empty["p95_ms"] is None and empty["rps"] == 0.0


def test_requests_cover_each_endpoint() -> None:
    inputs = {"items": ["i1"], "users": ["u1"], "unknown_users": ["v1"], "queries": ["space"],
              "event_items": ["i1"]}
    assert Requests("similar", inputs, 0).next() == ("GET", "/v1/items/i1/similar?limit=10", None)
    method, path, body = Requests("events", inputs, 0).next()
    assert method == "POST" and path == "/v1/events" and body is not None
    events = json.loads(body)["events"]
    assert 1 <= len(events) <= 20 and all(e["item_id"] == "i1" for e in events)
    paths = {Requests("recommendations", inputs, s).next()[1].split("?")[0] for s in range(40)}
    assert paths == {"/v1/users/u1/recommendations", "/v1/users/v1/recommendations"}
    with pytest.raises(ValueError):
        Requests("nope", inputs, 0)


def test_server_accounting_covers_every_api_process() -> None:
    """Under `--workers N` the API processes are children of uvicorn's supervisor: the
    bench's CPU and memory figures must count them, not only the process it started."""
    import subprocess
    import sys
    import time

    from benchmarks.serve_proc import cpu_seconds, pss_mib, tree

    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.5: pass\\n"
        "time.sleep(30)'])\n"
        "time.sleep(30)\n")])
    try:
        deadline = time.monotonic() + 20
        while len(tree(parent.pid)) < 2 or cpu_seconds(tree(parent.pid)[-1]) < 0.4:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        pids = tree(parent.pid)
        assert pids[0] == parent.pid and len(pids) == 2, pids
        together = sum(cpu_seconds(p) for p in pids)
        assert together > cpu_seconds(parent.pid) + 0.4, (together, pids)
        assert pss_mib(pids) > pss_mib(pids[:1]) > 0, (pss_mib(pids), pss_mib(pids[:1]))
    finally:
        for pid in reversed(tree(parent.pid)):
            subprocess.run(["kill", str(pid)], check=False)
        parent.wait(10)
