"""Bulk ingest against a fake API (httpx.MockTransport): what is sent, and what is reported."""

from __future__ import annotations

import json
import shutil
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from medley import ingest as ingest_mod
from medley.demo import demo_catalog
from medley.ingest import ingest, load_source, render_summary
from medley.samples import SampleSet


def parse_multipart(request: httpx.Request) -> dict[str, tuple[str | None, str, bytes]]:
    """name -> (filename, content type, bytes) of every part."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + request.content)
    parts = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        parts[name] = (part.get_filename(), part.get_content_type(), part.get_payload(decode=True))
    return parts


class FakeAPI:
    """Accepts items (or refuses the titles it is told to) and reports scripted statuses."""

    def __init__(self, refuse: dict[str, httpx.Response] | None = None) -> None:
        self.refuse = refuse or {}
        self.posts: list[dict[str, Any]] = []
        self.headers: list[httpx.Headers] = []
        self.statuses: dict[str, list[dict[str, Any]]] = {}  # id -> successive GET bodies
        self.existing: dict[str, str] = {}  # external_id -> id of items already stored
        self.gets: list[httpx.Request] = []

    def _status(self, item_id: str) -> dict[str, Any]:
        script = self.statuses.get(item_id) or [{"status": "queued"}]
        body = script.pop(0) if len(script) > 1 else script[0]
        return {"id": item_id, **body}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            assert request.url.path == "/v1/items"  # pages only: never one request per item
            self.gets.append(request)
            params = request.url.params
            if "external_id" in params:
                wanted = set(params["external_id"].split(","))
                found = [{"id": i, "external_id": e} for e, i in self.existing.items()
                         if e in wanted]
                return httpx.Response(200, json={"items": found})
            return httpx.Response(200, json={"items": [self._status(i) for i in
                                                       params["ids"].split(",")]})
        assert request.method == "POST" and request.url.path == "/v1/items"
        if request.headers["content-type"].startswith("application/x-www-form-urlencoded"):
            parts = {}  # no media files: httpx sends the metadata as a plain form
            meta = json.loads(parse_qs(request.content.decode())["metadata"][0])
        else:
            parts = parse_multipart(request)
            meta = json.loads(parts.pop("metadata")[2])
        self.posts.append({"metadata": meta, "files": parts})
        self.headers.append(request.headers)
        if meta["title"] in self.refuse:
            return self.refuse[meta["title"]]
        item_id = f"id-{len(self.posts)}"
        return httpx.Response(202, json={"id": item_id, "status": "queued", "modalities": {}})

    def run(self, source: Path, **kw: Any) -> ingest_mod.IngestReport:
        transport = httpx.MockTransport(self)
        return ingest(source, "http://api.test/", progress=False, transport=transport, **kw)


def test_folder_items_with_sidecars_and_streamed_parts(samples: SampleSet, tmp_path: Path) -> None:
    shutil.copyfile(samples.photos["coffee"], tmp_path / "coffee_break.png")
    (tmp_path / "coffee_break.json").write_text(json.dumps({"tags": ["coffee"]}))
    (tmp_path / "talks").mkdir()
    shutil.copyfile(samples.speech["rocket"], tmp_path / "talks" / "Rocket Talk.wav")
    shutil.copyfile(samples.slideshow, tmp_path / "space.mp4")
    (tmp_path / "space.mp4.json").write_text(json.dumps({"title": "Journey", "language": "en"}))
    (tmp_path / "notes.txt").write_text("not media")
    shutil.copyfile(samples.photos["rocket"], tmp_path / ".hidden.jpg")

    api = FakeAPI()
    report = api.run(tmp_path, api_key="s3cret")

    assert (report.total, report.submitted, report.failures) == (3, 3, [])
    by_title = {p["metadata"]["title"]: p for p in api.posts}
    assert set(by_title) == {"Coffee Break", "Journey", "Rocket Talk"}
    assert by_title["Coffee Break"]["metadata"]["tags"] == ["coffee"]
    assert by_title["Journey"]["metadata"]["language"] == "en"
    name, mime, data = by_title["Coffee Break"]["files"]["image"]
    assert (name, mime) == ("coffee_break.png", "image/png")
    assert data == samples.photos["coffee"].read_bytes()
    assert set(by_title["Rocket Talk"]["files"]) == {"audio"}
    video = by_title["Journey"]["files"]["video"]
    assert video[1] == "video/mp4" and video[2] == samples.slideshow.read_bytes()
    assert all(h["authorization"] == "Bearer s3cret" for h in api.headers)


def test_csv_manifest_relative_paths_and_bad_rows(samples: SampleSet, tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    shutil.copyfile(samples.photos["chelsea"], tmp_path / "media" / "cat.png")
    shutil.copyfile(samples.speech["chelsea"], tmp_path / "media" / "cat.wav")
    manifest = tmp_path / "catalog.csv"
    manifest.write_text(
        "title,description,tags,language,age_rating,published_at,external_id,image,audio,season\n"
        "Chelsea,A cat,cat| pet |,en,all,2024-01-02T03:04:05Z,c-1,media/cat.png,media/cat.wav,2\n"
        "Ghost,,,,,,,media/missing.png,,\n"
        ",no title and no file,,,,,,,,\n"
        ",,,,,,,media/cat.png,,\n"
    )
    api = FakeAPI()
    report = api.run(manifest)

    assert (report.total, report.submitted) == (4, 2)
    first = api.posts[0]["metadata"]
    assert first == {
        "title": "Chelsea",
        "description": "A cat",
        "tags": ["cat", "pet"],
        "language": "en",
        "age_rating": "all",
        "published_at": "2024-01-02T03:04:05Z",
        "external_id": "c-1",
        "attributes": {"season": "2"},
    }
    assert set(api.posts[0]["files"]) == {"image", "audio"}
    assert api.posts[1]["metadata"] == {"title": "Cat"}  # titled from the file name
    reasons = {f.source: f.reason for f in report.failures}
    assert reasons == {
        "catalog.csv:3": "image file not found: media/missing.png",
        "catalog.csv:4": "row has no title and no media file",
    }
    assert report.failures[0].title == "Ghost"


def test_jsonl_manifest_reports_bad_lines(samples: SampleSet, tmp_path: Path) -> None:
    shutil.copyfile(samples.photos["flower"], tmp_path / "flower.jpg")
    manifest = tmp_path / "items.jsonl"
    manifest.write_text(
        json.dumps({"title": "Dahlia", "tags": ["flower"], "image": "flower.jpg"})
        + "\n\n{not json\n[1, 2]\n"
        + json.dumps({"title": "Bad tags", "tags": 5})
        + "\n"
    )
    api = FakeAPI()
    report = api.run(manifest)
    assert report.submitted == 1 and report.total == 4
    assert api.posts[0]["metadata"] == {"title": "Dahlia", "tags": ["flower"]}
    reasons = {f.source: f.reason for f in report.failures}
    assert reasons["items.jsonl:3"].startswith("invalid JSON")
    assert reasons["items.jsonl:4"] == "not a JSON object"
    assert "tags must be" in reasons["items.jsonl:5"]


def test_demo_catalog_uploads_every_item_with_its_files(samples: SampleSet) -> None:
    manifest = demo_catalog(samples.root)
    items, failures = load_source(manifest)
    assert failures == [] and len(items) >= 8
    api = FakeAPI()
    report = api.run(manifest)
    assert report.submitted == len(items) and not report.failures
    tour = next(p for p in api.posts if p["metadata"]["title"] == "A Tour of the Collection")
    assert tour["files"]["video"][2] == samples.tour.read_bytes()
    assert tour["metadata"]["published_at"].startswith("2024-")


def test_api_refusals_are_collected_and_summarised(samples: SampleSet, tmp_path: Path) -> None:
    for name in ("good", "broken", "crash"):
        shutil.copyfile(samples.photos["coffee"], tmp_path / f"{name}.png")
    error = {"error": {"code": "unsupported_media", "message": "image is truncated"}}
    api = FakeAPI(
        refuse={
            "Broken": httpx.Response(415, json=error),
            "Crash": httpx.Response(500, text="Internal Server Error"),
        }
    )
    report = api.run(tmp_path)
    assert (report.total, report.submitted, report.item_ids) == (3, 1, ["id-3"])
    failures = {f.title: f for f in report.failures}
    assert failures["Broken"].status_code == 415 and failures["Broken"].code == "unsupported_media"
    assert failures["Broken"].reason == "image is truncated"
    assert failures["Crash"].status_code == 500 and failures["Crash"].code is None
    summary = render_summary(report)
    assert "3 items, 1 submitted, 2 not submitted" in summary
    assert "broken.png (Broken): HTTP 415 unsupported_media: image is truncated" in summary
    assert "crash.png (Crash): HTTP 500: Internal Server Error" in summary


def test_wait_follows_items_until_done(samples: SampleSet, tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        shutil.copyfile(samples.photos["coffee"], tmp_path / f"{name}.png")
    api = FakeAPI()
    timings = {"upload_to_done_s": 2.5}
    api.statuses = {
        "id-1": [{"status": "processing"}, {"status": "ready", "timings": timings}],
        "id-2": [
            {
                "status": "partial",
                "modalities": {
                    "image": {"status": "ready"},
                    "clip_text": {"status": "unavailable", "error": None},
                },
            }
        ],
        "id-3": [
            {
                "status": "failed",
                "modalities": {
                    "image": {"status": "failed", "error": "image is truncated"},
                },
            }
        ],
    }
    report = api.run(tmp_path, wait=True, poll_interval_s=0)
    assert (report.ready, report.partial, report.failed) == (1, 1, 1)
    assert report.upload_to_done_s == [2.5]
    assert [f.reason for f in report.partials] == ["clip_text: unavailable"]
    assert [f.reason for f in report.failures] == ["processing failed (image: image is truncated)"]
    summary = render_summary(report)
    assert "Processed: 1 ready, 1 partial, 1 failed" in summary
    assert "upload to done median 2.5 s" in summary
    assert len(api.gets) == 2  # two rounds, one page of three ids each


def test_failures_with_one_reason_are_one_line(tmp_path: Path) -> None:
    manifest = tmp_path / "items.jsonl"
    manifest.write_text("".join(json.dumps({"title": f"T{k}"}) + "\n" for k in range(150)))
    api = FakeAPI()
    api.statuses = {f"id-{k}": [{"status": "partial", "modalities": {
        "clip_text": {"status": "unavailable", "error": "no CLIP weights"},
        "image": {"status": "unavailable", "error": "no CLIP weights"}}}]
        for k in range(1, 151)}
    report = api.run(manifest, wait=True, poll_interval_s=0)
    summary = render_summary(report)
    assert "150 items: clip_text, image: no CLIP weights" in summary
    assert "and 147 more" in summary and summary.count("no CLIP weights") == 1
    assert len(api.gets) == 2  # 150 items: two pages of at most 100


def test_a_rerun_skips_what_an_interrupted_import_sent(tmp_path: Path) -> None:
    manifest = tmp_path / "items.jsonl"
    rows = [{"title": f"T{k}", "external_id": f"ext-{k}"} for k in range(4)]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    api = FakeAPI()
    api.existing = {"ext-0": "old-0", "ext-2": "old-2"}  # the first run got this far
    api.statuses = {i: [{"status": "ready"}] for i in ("old-0", "old-2", "id-1", "id-2")}
    report = api.run(manifest, wait=True, poll_interval_s=0)
    assert [p["metadata"]["external_id"] for p in api.posts] == ["ext-1", "ext-3"]
    assert (report.submitted, report.resumed, report.ready) == (2, 2, 4)
    assert "2 were already in the catalog" in render_summary(report)


def test_rate_limited_uploads_wait_as_long_as_retry_after_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(ingest_mod.time, "sleep", slept.append)
    (tmp_path / "items.jsonl").write_text(json.dumps({"title": "T"}) + "\n")
    calls = []

    def limited(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) <= 5:  # more 429s than the retries a failing upload gets
            return httpx.Response(429, headers={"retry-after": "2"})
        return httpx.Response(202, json={"id": "in", "status": "queued"})

    report = ingest(tmp_path / "items.jsonl", "http://api.test", progress=False,
                    transport=httpx.MockTransport(limited))
    assert report.item_ids == ["in"] and slept == [2.0] * 5


def test_wait_gives_up_after_its_timeout(samples: SampleSet, tmp_path: Path) -> None:
    shutil.copyfile(samples.photos["coffee"], tmp_path / "slow.png")
    api = FakeAPI()
    api.statuses = {"id-1": [{"status": "processing"}]}
    report = api.run(tmp_path, wait=True, wait_timeout_s=0, poll_interval_s=0)
    assert [f.reason for f in report.failures] == ["still processing after 0 s"]
    assert report.failures[0].item_id == "id-1"


def test_busy_api_is_retried_and_unreachable_api_reported(
    samples: SampleSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest_mod.time, "sleep", lambda _: None)
    shutil.copyfile(samples.photos["coffee"], tmp_path / "x.png")
    calls = []

    def busy_once(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(503, headers={"retry-after": "1"})
        return httpx.Response(202, json={"id": "late", "status": "queued"})

    report = ingest(
        tmp_path, "http://api.test", progress=False, transport=httpx.MockTransport(busy_once)
    )
    assert report.item_ids == ["late"] and len(calls) == 2

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    report = ingest(
        tmp_path, "http://api.test", progress=False, transport=httpx.MockTransport(down)
    )
    assert report.submitted == 0
    assert report.failures[0].reason.startswith("could not reach the API")
    assert "Failures (1):" in render_summary(report)


def test_unknown_source_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_source(tmp_path / "missing.csv")
    (tmp_path / "x.xml").write_text("<x/>")
    with pytest.raises(ValueError, match="unsupported manifest"):
        load_source(tmp_path / "x.xml")


def test_a_release_date_column_becomes_published_at(tmp_path: Path) -> None:
    manifest = tmp_path / "back-catalog.csv"
    manifest.write_text(
        "title,Release Date,year,notes\n"
        "Heat,1995-12-15,1995,crime\n"  # the first date column wins; the other is an attribute
        "Clerks,,1994,\n"  # an empty column gives way to the next one
        "Tomorrow,2031-05-01T20:00:00+02:00,,\n"  # scheduled: kept as given, in UTC
        "Someday,soon,,\n"
        "Undated,,,\n"
    )
    api = FakeAPI()
    report = api.run(manifest)
    assert (report.total, report.submitted) == (5, 4)
    meta = {p["metadata"]["title"]: p["metadata"] for p in api.posts}
    assert meta["Heat"] == {"title": "Heat", "published_at": "1995-12-15T00:00:00Z",
                            "attributes": {"notes": "crime", "year": "1995"}}
    assert meta["Clerks"]["published_at"] == "1994-01-01T00:00:00Z"
    assert "attributes" not in meta["Clerks"]  # the year was used, not repeated
    assert meta["Tomorrow"]["published_at"] == "2031-05-01T18:00:00Z"
    assert "published_at" not in meta["Undated"]
    (failure,) = report.failures
    assert failure.source == "back-catalog.csv:5" and failure.title == "Someday"
    assert failure.reason.startswith("Release Date: 'soon' is not a date")


def test_jsonl_release_dates_in_every_accepted_form(tmp_path: Path) -> None:
    from medley.manifest import parse_date

    rows = [{"title": "A", "year": 1994}, {"title": "B", "released": "1994-05"},
            {"title": "C", "published_at": "2024-01-02 03:04:05"},
            {"title": "D", "release_date": "2024-02-30"}, {"title": "E", "year": True}]
    manifest = tmp_path / "items.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items, failures = load_source(manifest)
    assert [i.metadata["published_at"] for i in items] == [
        "1994-01-01T00:00:00Z", "1994-05-01T00:00:00Z", "2024-01-02T03:04:05Z"]
    assert [f.reason.split(":")[0] for f in failures] == ["release_date", "year"]
    assert "'2024-02-30' is not a date" in failures[0].reason
    for bad in ("94", "05/03/1994", "", "1994-13"):
        with pytest.raises(ValueError, match="is not a date"):
            parse_date(bad)
