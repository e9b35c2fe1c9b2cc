"""One rule for every date Medley accepts (uploads, PATCH, events, filters) and one conversion
to seconds since the epoch.

Dates live between EARLIEST and LATEST, UTC. A date without an offset is read as UTC (what a
catalog export without zones almost always means), never as this machine's local time. The
range is wide enough for any catalog (silent films, archives) and narrow enough that every
conversion (offsets of up to a day, epoch floats, the index's range filters) stays exact: a
year-1 or year-9999 date once broke the index write and the serving sync.
"""

from __future__ import annotations

from datetime import UTC, datetime

from medley.errors import InvalidInput

EARLIEST = datetime(1000, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
RANGE = f"{EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} (UTC, end excluded)"


def aware(value: datetime) -> datetime:
    """The same instant with an offset (UTC where it had none)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# Polling a table by `updated_at`: a slow transaction may commit an older stamp after a newer
# one was read, so each read reaches back this far past the newest it saw.
WATERMARK_OVERLAP_S = 5.0


def naive_utc(value: datetime) -> datetime:
    """Naive UTC, as timestamp columns hold it: a row another writer stored with an offset
    must still compare with a watermark (one such row once stopped every later item loading)."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def in_range(value: datetime) -> datetime:
    """`value` as an aware UTC datetime; ValueError (a validation message) outside the range."""
    try:
        utc = aware(value).astimezone(UTC)
    except (OverflowError, ValueError) as exc:  # an offset pushed it past year 1 or 9999
        raise ValueError(f"must be a date from {RANGE}") from exc
    if not EARLIEST <= utc < LATEST:
        raise ValueError(f"must be a date from {RANGE}")
    return utc


def checked(value: datetime, field: str) -> datetime:
    """`in_range`, refused as InvalidInput naming the field (query parameters, bodies read by
    hand)."""
    try:
        return in_range(value)
    except ValueError as exc:
        raise InvalidInput(f"{field}: {exc}") from None


def epoch(value: datetime | None) -> float | None:
    """Seconds since the epoch; a naive value (as SQLite hands columns back) is UTC."""
    return None if value is None else aware(value).timestamp()
