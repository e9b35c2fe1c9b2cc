"""`python -m benchmarks ingest`'s pieces that need no server: the catalog's shares and distinct
media, the busy-time arithmetic, and the report's verdicts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.ingest_catalog import kinds
from benchmarks.ingest_deploy import _union, percentile
from benchmarks.ingest_report import render, targets


def test_catalog_shares_follow_the_issue() -> None:
    assert Counter(kinds(2000)) == {"image": 1400, "speech": 400, "video": 20, "text": 180}
    assert Counter(kinds(10)) == {"image": 7, "speech": 2, "text": 1}  # no video under 20
    assert kinds(300, seed=1) != kinds(300, seed=2)  # mixed in upload order, per seed
    assert kinds(300, seed=1) == kinds(300, seed=1)


def test_catalog_media_are_all_distinct(tmp_path: Path) -> None:
    import hashlib
    import json

    from benchmarks.ingest_catalog import build_catalog

    catalog = build_catalog(tmp_path, 25)
    rows = [json.loads(line) for line in catalog.manifest.read_text().splitlines()]
    files = [tmp_path / r[k] for r in rows for k in ("image", "audio", "video") if k in r]
    assert len(rows) == 25 and len(files) >= 24
    digests = {hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    assert len(digests) == len(files)  # identical media would be reused, not extracted
    assert catalog.counts["speech"] * 10 <= catalog.speech_seconds <= catalog.counts[
        "speech"] * 31


def test_busy_time_counts_overlaps_once() -> None:
    assert _union([(0, 2), (1, 3), (5, 6)]) == 4
    assert _union([(0, 10), (1, 2), (3, 4)]) == 10
    assert _union([]) == 0
    assert percentile([float(v) for v in range(1, 102)], 95) == 96  # the 96th of 101
    assert percentile([10.0, 20.0], 50) == 15


def _run(items_per_s: float, p95: float, cores: float) -> dict[str, Any]:
    return {"items": 100, "ready": 100, "partial": 0, "failed": 0, "seconds": 100 / items_per_s,
            "items_per_s": items_per_s, "upload_seconds": 10.0, "uploads_per_s": 10.0,
            "upload_p50_ms": 50.0, "upload_p95_ms": p95, "upload_max_ms": 300.0,
            "upload_429s": 0, "last_upload_to_last_extraction_s": 5.0,
            "last_upload_to_all_seen_done_s": 6.0, "cpu_cores_deployment": cores,
            "cpu_cores_machine": cores, "workers": [],
            "modalities": {
                "image": {"extractions": 70, "span_s": 50.0, "per_s": 1.4, "busy_s": 10.0,
                          "per_busy_s": 7.0},
                "text": {"extractions": 100, "span_s": 10.0, "per_s": 10.0, "busy_s": 10.0,
                         "per_busy_s": 10.0}}}


def test_report_gives_each_target_its_verdict_and_bound() -> None:
    data = {"machine": {"cores": 2, "cpu_features": ["avx2"]}, "code": {"commit": "abc"},
            "clip": "random", "catalog": {"items": 100, "counts": {}, "speech_seconds": 0.0,
                                           "video_seconds": 0.0},
            "runs": {"embedded": _run(2.0, 150.0, 1.95), "distributed": _run(4.0, 250.0, 1.0)},
            "ratio_embedded_to_distributed": 0.5, "runtime_s": 100.0,
            "model_only": {"image_per_s": 8.0, "text_per_s": 100.0, "versions": {},
                           "other_cores": 0.0}}
    rows = {r[0]: r for r in targets(data)}
    assert rows["embedded items/s >= 0.8x Redis + workers"][2] == "**NOT MET**"
    assert rows["embedded image: >= 70% of the model alone"][2] == "**MET**"  # 7 of 8
    text = rows["embedded text: >= 70% of the model alone"]
    assert text[2] == "**NOT MET**" and text[3].startswith("arrival")
    assert rows["embedded: upload p95 < 200 ms during the import"][2] == "**MET**"
    assert rows["distributed: upload p95 < 200 ms during the import"][2] == "**NOT MET**"
    bf16 = rows["each family >= 3.0x fp32 on AMX / AVX-512-BF16"]
    assert bf16[2] == "n/a on this CPU"
    big = "10,000 text + image items on the embedded default <= 15 min"
    assert rows[big][2] == "**NOT MET**"  # 10,000 / 8 images/s alone = 21 min
    data["model_only"]["other_cores"] = 1.0  # the floor was timed on half the machine
    assert {r[0]: r for r in targets(data)}[big][2] == "not run"
    md = render(data)
    assert "not the issue's 2,000" in md and "## Targets (issue 13)" in md
