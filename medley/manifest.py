"""Items to ingest, from a folder of media files or a CSV/JSONL manifest.

Each folder file or manifest row becomes an `IngestItem` (normalised metadata plus media
paths); an unusable row becomes a `Failure` with the reason, so one bad row is never fatal.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MEDIA_KINDS = ("image", "audio", "video")
EXTENSIONS: dict[str, str] = {
    **dict.fromkeys((".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"), "image"),
    **dict.fromkeys((".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac"), "audio"),
    **dict.fromkeys((".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg"), "video"),
}
META_KEYS: tuple[str, ...] = ("title", "description", "tags", "language", "age_rating")
META_KEYS += ("published_at", "external_id")
# Release-date columns, in the order one is taken as published_at (what "new" counts from):
# names compared in lower case with spaces and hyphens as underscores ("Release Date").
DATE_COLUMNS = ("published_at", "release_date", "released", "year")
_YEAR, _MONTH = re.compile(r"\d{4}"), re.compile(r"\d{4}-\d{2}")


@dataclass
class IngestItem:
    source: str  # where the item came from, for messages ("catalog.csv:3", "coffee.png")
    metadata: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


@dataclass
class Failure:
    source: str
    title: str | None
    reason: str
    status_code: int | None = None  # HTTP status, when the API answered
    code: str | None = None  # the API's error code
    item_id: str | None = None

    @classmethod
    def of(cls, item: IngestItem, reason: str, **kw: Any) -> Failure:
        return cls(item.source, item.metadata["title"], reason, **kw)


class _RowError(ValueError):
    pass


def _title_from_name(path: Path) -> str:
    words = re.sub(r"[_\-.\s]+", " ", path.stem).strip()
    return words.title() if words.islower() else (words or path.name)


def parse_date(value: Any) -> str:
    """A release date as the API takes it (ISO 8601, UTC): a year (1994, at Jan 1), a month
    (1994-05), a date (1994-05-03, at midnight UTC) or an ISO 8601 date-time (without a zone:
    UTC). Raises ValueError with what was wrong."""
    text = str(value).strip()
    if _YEAR.fullmatch(text):
        text += "-01-01"
    elif _MONTH.fullmatch(text):
        text += "-01"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (use 1994, 1994-05, 1994-05-03 or an ISO "
                         "8601 date-time)") from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _release_date(row: dict[str, Any]) -> tuple[str | None, str | None]:
    """(column, published_at) from the first non-empty release-date column, if any."""
    by_name = {re.sub(r"[\s\-]+", "_", str(k).strip().lower()): k for k in row}
    for name in DATE_COLUMNS:
        column = by_name.get(name)
        value = row.get(column) if column is not None else None
        if value is None or not str(value).strip():
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _RowError(f"{column}: a release date must be text or a year")
        try:
            return column, parse_date(value)
        except ValueError as exc:
            raise _RowError(f"{column}: {exc}") from None
    return None, None


def _row_to_item(row: dict[str, Any], base: Path, where: str) -> IngestItem:
    """Normalise one manifest row; relative media paths are resolved against `base`."""
    if None in row:
        raise _RowError("row has more fields than the header")
    meta: dict[str, Any] = {}
    date_column, published = _release_date(row)
    if published is not None:
        meta["published_at"] = published
    for key in META_KEYS:
        value = row.get(key)
        if key == "published_at":
            continue  # taken above, from whichever release-date column the row has
        if key == "tags" and value not in (None, ""):
            parts = value.split("|") if isinstance(value, str) else value
            if not isinstance(parts, list):
                raise _RowError("tags must be a list or a |-separated string")
            meta["tags"] = [t for t in (str(p).strip() for p in parts) if t]
        elif value is not None and str(value).strip():
            meta[key] = str(value).strip()
    files: dict[str, Path] = {}
    for kind in MEDIA_KINDS:
        value = row.get(kind)
        if value is None or not str(value).strip():
            continue
        path = Path(str(value).strip()).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise _RowError(f"{kind} file not found: {value}")
        files[kind] = path
    attributes = row.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise _RowError("attributes must be a JSON object")
    extra = set(row) - {*META_KEYS, *MEDIA_KINDS, "attributes", date_column}
    attributes |= {k: row[k] for k in sorted(extra) if row[k] not in (None, "")}
    if attributes:
        meta["attributes"] = attributes
    if "title" not in meta:
        if not files:
            raise _RowError("row has no title and no media file")
        meta["title"] = _title_from_name(next(iter(files.values())))
    return IngestItem(where, meta, files)


def _collect(rows: list[tuple[str, Any]], base: Path) -> tuple[list[IngestItem], list[Failure]]:
    items, failures = [], []
    for where, row in rows:
        try:
            if isinstance(row, str):  # the loader already knows why the row is unusable
                raise _RowError(row)
            if not isinstance(row, dict):
                raise _RowError("not a JSON object")
            items.append(_row_to_item(row, base, where))
        except _RowError as exc:
            title = row.get("title") if isinstance(row, dict) else None
            failures.append(Failure(where, title or None, str(exc)))
    return items, failures


def _folder_rows(folder: Path) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        kind = EXTENSIONS.get(path.suffix.lower())
        if kind is None or not path.is_file() or any(p.startswith(".") for p in rel.parts):
            continue
        row: Any = {}
        for sidecar in (path.with_suffix(".json"), path.with_name(path.name + ".json")):
            if sidecar.is_file():
                try:
                    row = json.loads(sidecar.read_text(encoding="utf-8"))
                except (ValueError, UnicodeDecodeError) as exc:
                    row = f"sidecar {sidecar.name} is not valid JSON: {exc}"
                break
        if isinstance(row, dict):
            row = {"title": _title_from_name(path), **row, kind: str(path)}
        rows.append((rel.as_posix(), row))
    return rows


def load_source(source: Path) -> tuple[list[IngestItem], list[Failure]]:
    """Items from a folder, a `.csv` or a `.jsonl` manifest, and the rows that were unusable."""
    source = Path(source)
    if source.is_dir():
        return _collect(_folder_rows(source), source)
    if not source.is_file():
        raise FileNotFoundError(f"no such folder or manifest: {source}")
    text = source.read_text(encoding="utf-8-sig")  # spreadsheets like to add a BOM
    rows: list[tuple[str, Any]] = []
    if source.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        for row in reader:
            rows.append((f"{source.name}:{reader.line_num}", row))
    elif source.suffix.lower() in (".jsonl", ".ndjson"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((f"{source.name}:{number}", json.loads(line)))
            except ValueError as exc:
                rows.append((f"{source.name}:{number}", f"invalid JSON: {exc}"))
    else:
        raise ValueError(f"unsupported manifest {source.name}: use a folder, .csv or .jsonl")
    return _collect(rows, source.parent)
