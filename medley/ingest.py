"""Bulk ingest through the HTTP API: a folder of media files or a CSV/JSONL manifest.

Every item goes through `POST /v1/items` like any client's upload, so ingest exercises the
real validation and pipeline. One bad row or one refused upload is reported, never fatal.
Reading the folder or manifest into items is `medley.manifest`'s job.
"""

from __future__ import annotations

import json
import mimetypes
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from medley.manifest import Failure, IngestItem, load_source

__all__ = ["Failure", "IngestItem", "IngestReport", "ingest", "load_source", "render_summary"]

DONE = frozenset({"ready", "partial", "failed"})
# Only answers that say "not taken, try later" are retried: re-sending after a timeout
# could create the item twice.
RETRY_STATUSES = frozenset({429, 503})
RATE_WAIT_MAX_S = 600.0  # 429 pauses one upload may wait out before it counts as refused
SHOWN = 3  # items named per group of failures with one reason
PAGE = 100  # items per status request (their ids fit a URL comfortably)
PAGE_RATE = 5.0  # status requests per second, at most: under every role's rate limit


class _Rate(ProgressColumn):
    """Items per second so far (rich's own speed column is for bytes)."""

    def render(self, task: Task) -> Text:
        rate = task.completed / task.elapsed if task.elapsed else 0.0
        return Text(f"{rate:6.1f} items/s")


@dataclass
class IngestReport:
    source: str
    total: int = 0  # rows or files found, good and bad
    submitted: int = 0  # accepted by the API (202)
    resumed: int = 0  # already in the catalog (same external_id): not sent again
    waited: bool = False
    ready: int = 0
    partial: int = 0
    failed: int = 0  # processed, every modality failed
    item_ids: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    partials: list[Failure] = field(default_factory=list)  # what failed inside partial items
    upload_to_done_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0


class _SubmitError(Exception):
    def __init__(self, reason: str, status_code: int | None = None, code: str | None = None):
        super().__init__(reason)
        self.reason, self.status_code, self.code = reason, status_code, code


def _api_error(resp: httpx.Response) -> tuple[str | None, str]:
    """The API's `{"error": {"code", "message"}}`, or the start of whatever else it sent."""
    try:
        err = resp.json().get("error") or {}
        return err.get("code"), str(err.get("message") or resp.reason_phrase)
    except (ValueError, AttributeError):
        return None, (resp.text.strip()[:200] or resp.reason_phrase)


def _submit(client: httpx.Client, item: IngestItem, retries: int = 2) -> str:
    """POST one item and return its id; raises `_SubmitError` with what the API said. A 429
    is waited out as its Retry-After says, however often it comes (the key's rate limit
    paces a bulk import; it is not the item's failure), up to RATE_WAIT_MAX_S in all."""
    rate_waited = 0.0
    attempt = 0
    while True:
        with ExitStack() as stack:
            # Open handles let httpx stream each file in chunks instead of reading it whole.
            files = {
                kind: (path.name, stack.enter_context(path.open("rb")), _mime(path))
                for kind, path in item.files.items()
            }
            data = {"metadata": json.dumps(item.metadata)}
            try:
                resp = client.post("/v1/items", data=data, files=files or None)
            except httpx.ConnectError as exc:  # nothing was sent: safe to retry
                if attempt == retries:
                    raise _SubmitError(f"could not reach the API ({exc})") from exc
                attempt += 1
                time.sleep(float(attempt))
                continue
            except httpx.HTTPError as exc:
                raise _SubmitError(f"upload failed ({type(exc).__name__}: {exc})") from exc
        if resp.status_code == 429 and rate_waited < RATE_WAIT_MAX_S:
            pause = _retry_after(resp, default=1.0)
            rate_waited += pause
            time.sleep(pause)
            continue
        if resp.status_code in RETRY_STATUSES and attempt < retries:
            attempt += 1
            time.sleep(_retry_after(resp, default=float(attempt)))
            continue
        if resp.is_success:
            try:
                return str(resp.json()["id"])
            except (ValueError, KeyError, TypeError) as exc:
                raise _SubmitError("the API sent no item id", resp.status_code) from exc
        code, message = _api_error(resp)
        raise _SubmitError(message, resp.status_code, code)


def _mime(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _retry_after(resp: httpx.Response, default: float) -> float:
    try:
        return min(float(resp.headers.get("retry-after", default)), 30.0)
    except ValueError:
        return default


def _modality_errors(body: dict[str, Any]) -> str:
    mods = body.get("modalities") or {}
    bad = [(n, m) for n, m in sorted(mods.items()) if isinstance(m, dict)]
    bad = [(n, m) for n, m in bad if m.get("status") not in ("ready", "absent")]
    # One line per distinct reason: an unavailable model would otherwise repeat per modality.
    by_reason: dict[str, list[str]] = {}
    for name, m in bad:
        by_reason.setdefault(str(m.get("error") or m.get("status")), []).append(name)
    return "; ".join(f"{', '.join(n)}: {r}" for r, n in by_reason.items()) or "no detail"


def _page(client: httpx.Client, **params: str) -> list[dict[str, Any]] | None:
    """One `GET /v1/items` page (ids or external ids); None when the API is busy or away (a
    429 is waited out first), so the caller asks again next round."""
    try:
        resp = client.get("/v1/items", params={**params, "limit": str(PAGE)})
    except httpx.HTTPError:
        return None
    if resp.status_code == 429:
        time.sleep(_retry_after(resp, default=1.0))
        return None
    try:
        return list(resp.json()["items"]) if resp.is_success else None
    except (ValueError, KeyError, TypeError):
        return None


def _paced(chunks: list[list[str]]) -> Iterator[list[str]]:
    """Chunks at most PAGE_RATE a second: under any role's rate limit, so following an
    import never competes with the uploads of the same key."""
    for k, chunk in enumerate(chunks):
        if k:
            time.sleep(1.0 / PAGE_RATE)
        yield chunk


def _wait(
    client: httpx.Client,
    pending: dict[str, IngestItem],
    report: IngestReport,
    advance: Callable[[], None],
    timeout_s: float,
    poll_s: float,
) -> None:
    """Follow every submitted item, a page of ids per request, until it is ready, partial or
    failed, or time runs out."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, str] = {}
    while pending:
        ids = list(pending)
        for chunk in _paced([ids[k : k + PAGE] for k in range(0, len(ids), PAGE)]):
            bodies = _page(client, ids=",".join(chunk))
            if bodies is None:
                continue  # a busy API is not a failed item; ask again next round
            found = {str(b.get("id")): b for b in bodies}
            for item_id in chunk:
                body = found.get(item_id)
                if body is None:  # deleted meanwhile
                    item = pending.pop(item_id)
                    advance()
                    report.failures.append(Failure.of(item, "no longer in the catalog",
                                                      item_id=item_id))
                    continue
                status = last[item_id] = str(body.get("status"))
                if status in DONE:
                    _finished(report, pending.pop(item_id), item_id, body)
                    advance()
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(poll_s)
    for item_id, item in pending.items():
        reason = f"still {last.get(item_id, 'queued')} after {timeout_s:.0f} s"
        report.failures.append(Failure.of(item, reason, item_id=item_id))


def _finished(report: IngestReport, item: IngestItem, item_id: str, body: dict[str, Any]
              ) -> None:
    status = str(body.get("status"))
    if (done_s := (body.get("timings") or {}).get("upload_to_done_s")) is not None:
        report.upload_to_done_s.append(float(done_s))
    report.ready += status == "ready"
    report.partial += status == "partial"
    report.failed += status == "failed"
    detail = _modality_errors(body)
    if status == "partial":
        report.partials.append(Failure.of(item, detail, item_id=item_id))
    elif status == "failed":
        report.failures.append(Failure.of(item, f"processing failed ({detail})",
                                          item_id=item_id))


def _already_sent(client: httpx.Client, items: list[IngestItem]) -> dict[str, str]:
    """external_id -> item id of this source's items already in the catalog: an interrupted
    import run again skips them instead of uploading duplicates."""
    wanted = sorted({str(i.metadata["external_id"]) for i in items
                     if i.metadata.get("external_id")})
    out: dict[str, str] = {}
    for chunk in _paced([wanted[k : k + PAGE] for k in range(0, len(wanted), PAGE)]):
        for body in _page(client, external_id=",".join(chunk)) or []:
            if body.get("external_id"):
                out.setdefault(str(body["external_id"]), str(body["id"]))
    return out


def ingest(
    source: Path,
    api_url: str,
    *,
    api_key: str | None = None,
    wait: bool = False,
    progress: bool = True,
    transport: httpx.BaseTransport | None = None,
    timeout_s: float = 120.0,
    wait_timeout_s: float = 1800.0,
    poll_interval_s: float = 1.0,
) -> IngestReport:
    """Submit every item of `source` to the API at `api_url`; with `wait`, follow each one
    until it is processed. Failures are collected in the report, never raised."""
    started = time.monotonic()
    items, failures = load_source(Path(source))
    report = IngestReport(str(source), total=len(items) + len(failures), waited=wait)
    report.failures.extend(failures)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    timeout = httpx.Timeout(timeout_s, connect=10.0)
    client = httpx.Client(
        base_url=api_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    bar = Progress(*columns, console=Console(stderr=True), disable=not progress)
    with client, bar:
        sent = _already_sent(client, items)
        task = bar.add_task("uploading", total=len(items))
        pending: dict[str, IngestItem] = {}
        for item in items:
            if (known := sent.get(str(item.metadata.get("external_id") or ""))) is not None:
                pending[known] = item  # sent by an earlier run: followed, not sent again
                report.item_ids.append(known)
                report.resumed += 1
                bar.advance(task)
                continue
            try:
                pending[item_id := _submit(client, item)] = item
                report.item_ids.append(item_id)
                report.submitted += 1
            except _SubmitError as exc:
                failure = Failure.of(item, exc.reason, status_code=exc.status_code, code=exc.code)
                report.failures.append(failure)
            bar.advance(task)
        if wait and pending:
            done = bar.add_task("processing", total=len(pending))
            advance = lambda: bar.advance(done)  # noqa: E731
            _wait(client, pending, report, advance, wait_timeout_s, poll_interval_s)
    report.elapsed_s = time.monotonic() - started
    return report


def _where(f: Failure) -> str:
    return f"{f.source} ({f.title})" if f.title else f.source


def _grouped(failures: list[Failure]) -> list[str]:
    """One line per distinct reason, with how many items and the first few of them: an
    unavailable model fails every item the same way, and 150 copies of it hide the rest."""
    groups: dict[str, list[Failure]] = {}
    for f in failures:
        http = f"HTTP {f.status_code}{f' {f.code}' if f.code else ''}: " if f.status_code else ""
        groups.setdefault(f"{http}{f.reason}", []).append(f)
    lines = []
    for reason, fs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        if len(fs) == 1:
            lines.append(f"  - {_where(fs[0])}: {reason}")
            continue
        shown = ", ".join(_where(f) for f in fs[:SHOWN])
        more = f" and {len(fs) - SHOWN} more" if len(fs) > SHOWN else ""
        lines.append(f"  - {len(fs)} items: {reason} ({shown}{more})")
    return lines


def render_summary(report: IngestReport) -> str:
    """Plain text (no markup) for the CLI: counts, timings and the failures grouped by
    reason."""
    not_sent = report.total - report.submitted - report.resumed
    lines = [
        f"{report.source}: {report.total} items, {report.submitted} submitted, "
        f"{not_sent} not submitted ({report.elapsed_s:.1f} s)."
    ]
    if report.resumed:
        lines.append(f"{report.resumed} were already in the catalog (same external_id): "
                     "not sent again.")
    if report.submitted and report.elapsed_s > 0:
        lines[0] = lines[0][:-1] + f", {report.submitted / report.elapsed_s:.1f} items/s."
    if report.waited:
        line = f"Processed: {report.ready} ready, {report.partial} partial, {report.failed} failed"
        if times := report.upload_to_done_s:
            median, worst = statistics.median(times), max(times)
            line += f"; upload to done median {median:.1f} s, max {worst:.1f} s"
        lines.append(line + ".")
    if report.partials:
        lines += [f"Partial ({len(report.partials)}):", *_grouped(report.partials)]
    if report.failures:
        lines += [f"Failures ({len(report.failures)}):", *_grouped(report.failures)]
    else:
        lines.append("No failures.")
    return "\n".join(lines)
