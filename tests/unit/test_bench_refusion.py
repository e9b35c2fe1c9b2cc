"""`python -m benchmarks refusion` on a small catalog: real publish jobs, a report a reader can
trust."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.refusion import run_refusion_bench


def test_the_bench_publishes_twice_and_writes_both_reports(tmp_path: Path) -> None:
    result = run_refusion_bench(tmp_path / "out", tmp_path / "data", items=300)
    assert [r["status"] for r in result["runs"]] == ["succeeded", "succeeded"]
    assert result["models_called"] == 0 and result["catalog_built_now"]
    for run in result["runs"]:
        assert run["items_per_s"] > 0 and set(run["phases_s"]) == {"read_s", "fuse_s", "write_s"}
    saved = json.loads((tmp_path / "out" / "refusion.json").read_text())
    assert saved["items"] == 300
    md = (tmp_path / "out" / "refusion.md").read_text()
    assert "| succeeded |" in md and "Building the synthetic catalog" in md
    # A second run reuses the catalog instead of building it again.
    again = run_refusion_bench(tmp_path / "out", tmp_path / "data", items=300)
    assert not again["catalog_built_now"]
