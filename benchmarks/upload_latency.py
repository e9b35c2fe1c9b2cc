"""`python -m benchmarks.upload_latency`: how long an upload takes while an import runs on the
embedded default, for two versions of the code in one sitting.

The same generated catalog (`benchmarks.ingest_catalog`: 70% text + image, 20% text +
speech, the rest text only or video; CLIP is ViT-B-32 with RANDOM weights, timing only) is
imported with `medley ingest --wait` into a fresh embedded deployment (`medley serve`: SQLite,
Qdrant Edge, the in-process worker), once per version and round, the versions alternating so
that the machine's drift falls on both. Each upload is timed at the client; the server's own
time per upload comes from its /metrics histogram. The base version is a commit, taken with
`git archive`; the other is this checkout as it is.
"""

from __future__ import annotations

import argparse
import platform
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.ingest import clip_env, warmup_manifest
from benchmarks.ingest_catalog import build_catalog
from benchmarks.ingest_deploy import import_catalog, start
from benchmarks.report import write_report
from benchmarks.serve_proc import PACKAGES, code_state, snapshot_code

FIGURES = ("upload_p50_ms", "upload_p95_ms", "upload_max_ms", "uploads_per_s", "items_per_s",
           "seconds", "cpu_cores_machine")
BUCKET = re.compile(r'^(?P<name>\w+)_bucket\{(?P<labels>[^}]*)\} (?P<count>\S+)$')


def commit_code(commit: str, dest: Path) -> Path:
    """The service's packages as they were at `commit`."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", commit, *PACKAGES], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def buckets(metrics: str, name: str, *labels: str) -> dict[str, float]:
    """Cumulative counts of a histogram's series with these labels, by bucket (`le`, s)."""
    out: dict[str, float] = {}
    for line in metrics.splitlines():
        m = BUCKET.match(line)
        if m and m["name"] == name and all(label in m["labels"] for label in labels):
            le = re.search(r'le="([^"]+)"', m["labels"])
            if le:
                out[le[1]] = float(m["count"])
    return out


def upload_buckets(metrics: str) -> dict[str, float]:
    """POST /v1/items by the server's own time."""
    return buckets(metrics, "medley_http_request_duration_seconds", 'route="/v1/items"',
                   'method="POST"')


def request_write_buckets(metrics: str) -> dict[str, float]:
    """Request threads' database writes by their wait for a turn (code that has the metric)."""
    return buckets(metrics, "medley_db_write_wait_seconds", 'role="request"')


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {le: after[le] - before.get(le, 0.0) for le in after}


def one_run(code: Path, work: Path, env: dict[str, str], manifest: Path, warm: Path
            ) -> dict[str, Any]:
    from medley.ingest import ingest

    dep = start("embedded", work, env, code=code)
    try:
        ingest(warm, dep.base, api_key=dep.key, wait=True, progress=False, wait_timeout_s=600,
               poll_interval_s=0.5)
        before = httpx.get(f"{dep.base}/metrics", timeout=30).text
        result = import_catalog(dep, manifest, 3600)
        after = httpx.get(f"{dep.base}/metrics", timeout=30).text
    finally:
        dep.stop()
    row = {k: result[k] for k in FIGURES}
    row["server_within_s"] = _delta(upload_buckets(after), upload_buckets(before))
    row["request_write_wait_within_s"] = _delta(request_write_buckets(after),
                                                request_write_buckets(before))
    row["ready"] = result["ready"]
    return row


def run(items: int, base: str, rounds: int, out: Path) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="medley-upload-latency-"))
    try:
        inputs = root / "inputs"
        build_catalog(inputs, items, 0)
        manifest = inputs / f"catalog-{items}-0.jsonl"
        warm = warmup_manifest(inputs)
        env = clip_env(inputs)
        codes = {f"base {base}": commit_code(base, root / "code-base"),
                 "this checkout": snapshot_code(root / "code-this")}
        runs: list[dict[str, Any]] = []
        started = time.time()
        for k in range(rounds):
            for label, code in codes.items():
                work = root / f"run-{k}-{len(runs)}"
                row = one_run(code, work, env, manifest, warm)
                runs.append({"version": label, "round": k + 1, **row})
                shutil.rmtree(work, ignore_errors=True)
                print(label, k + 1, {f: row[f] for f in FIGURES}, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    data = {"items": items, "rounds": rounds, "base": base, "code": code_state(),
            "machine": {"platform": platform.platform(), "python": platform.python_version()},
            "runtime_s": round(time.time() - started, 1), "runs": runs}
    write_report(out, "upload-latency", data, markdown(data))
    return data


def markdown(d: dict[str, Any]) -> str:
    modified = d["code"]["modified"]
    lines = [
        "# Uploads during an import (`python -m benchmarks.upload_latency`)", "",
        f"{d['items']} generated items imported with `medley ingest --wait` into a fresh "
        f"embedded default (SQLite, Qdrant Edge, the in-process worker), {d['rounds']} "
        "rounds, the two versions alternating in one sitting; CLIP ViT-B-32 with RANDOM "
        f"weights (timing only); {d['machine']['platform']}. Code: {d['code']['commit']}"
        f"{' (modified: ' + ', '.join(modified) + ')' if modified else ''}. "
        "Upload figures are at the client, from the first upload to the last; "
        "*server ≤ 0.25 s*: uploads the server's /metrics histogram timed within 0.25 s; "
        "*request writes*: the request threads' database writes (uploads, events, keys) that "
        "waited for their turn at most 10 ms / 100 ms / all of them "
        "(`medley_db_write_wait_seconds`; code without it: -).", "",
        "| version | round | upload p50 ms | p95 ms | max ms | uploads/s | items/s | "
        "import s | server ≤ 0.25 s | request writes ≤ 10 / 100 ms / all | "
        "machine cores busy |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in d["runs"]:
        lines.append(
            f"| {r['version']} | {r['round']} | {r['upload_p50_ms']} | {r['upload_p95_ms']} | "
            f"{r['upload_max_ms']} | {r['uploads_per_s']} | {r['items_per_s']} | "
            f"{r['seconds']} | {_within(r['server_within_s'], '0.25')} | "
            f"{_within(r.get('request_write_wait_within_s', {}), '0.01', '0.1')} | "
            f"{r['cpu_cores_machine']} |")
    return "\n".join(lines)


def _within(counts: dict[str, float], *les: str) -> str:
    if not counts:
        return "-"
    return " / ".join(f"{counts.get(le, 0):.0f}" for le in (*les, "+Inf"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=120)
    p.add_argument("--base", required=True, help="the commit to compare with")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("bench"))
    a = p.parse_args()
    run(a.items, a.base, a.rounds, a.out)


if __name__ == "__main__":
    main()
