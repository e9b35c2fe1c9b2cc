"""Vocabulary shared by the API, the workers and the index."""

from __future__ import annotations

from enum import StrEnum


class Modality(StrEnum):
    """One named vector per modality; the fused vector combines them."""

    IMAGE = "image"  # CLIP image embedding of the artwork
    VIDEO = "video"  # CLIP embeddings of keyframes, mean-pooled
    SPEECH = "speech"  # text embedding of the transcript
    TEXT = "text"  # text embedding of title, description and tags
    CLIP_TEXT = "clip_text"  # CLIP text embedding of title and description


class MediaKind(StrEnum):
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"


class ModalityStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"
    UNAVAILABLE = "unavailable"  # the model behind it could not be loaded
    ABSENT = "absent"  # the item has no input for it (a video without audio track)


class Role(StrEnum):
    """What an API key may do (medley/keys.py; the routes say which roles they admit)."""

    CONTENT = "content"  # the catalog: upload, change, delete items
    CLIENT = "client"  # client apps: recommendations, search, events, users' own controls
    EDITOR = "editor"  # fusion profiles, the console, editorial pins and boosts
    ADMIN = "admin"  # keys and user erasure; an admin key may call every route


class ItemStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    READY = "ready"
    PARTIAL = "partial"
    FAILED = "failed"


FINAL_STATUSES = frozenset(
    {ModalityStatus.READY, ModalityStatus.FAILED, ModalityStatus.UNAVAILABLE, ModalityStatus.ABSENT}
)


def overall_status(statuses: list[ModalityStatus]) -> ItemStatus:
    """Summarise per-modality states into the item's status.

    `absent` counts as done and says nothing about success; an item whose every
    attempted modality failed is `failed`, one with some failures is `partial`.
    """
    live = [s for s in statuses if s is not ModalityStatus.ABSENT]
    if not live:
        return ItemStatus.READY
    if all(s is ModalityStatus.QUEUED for s in live):
        return ItemStatus.QUEUED
    if any(s not in FINAL_STATUSES for s in live):
        return ItemStatus.PROCESSING
    ready = sum(s is ModalityStatus.READY for s in live)
    if ready == len(live):
        return ItemStatus.READY
    return ItemStatus.PARTIAL if ready else ItemStatus.FAILED


# Rating words seen in catalogs, as the minimum age each asks for. Numeric ratings ("12",
# "16+", "FSK 16") read as their number. An unknown word counts as adult-only (safe side).
_RATING_AGES = {"all": 0, "g": 0, "u": 0, "tv-y": 0, "tv-g": 0, "pg": 8, "tv-pg": 8, "tv-y7": 7,
                "pg-13": 13, "tv-14": 14, "r": 17, "nc-17": 18, "tv-ma": 17, "adult": 18, "x": 18}
ADULT_AGE = 18
RATING_WORDS = frozenset(_RATING_AGES)


def age_min(rating: str | None) -> int | None:
    """The minimum viewer age an age rating asks for; None when the item is unrated."""
    if rating is None or not rating.strip():
        return None
    word = rating.strip().lower()
    if word in _RATING_AGES:
        return _RATING_AGES[word]
    # Decimal digits only: "²" is a digit to str.isdigit() but not to int().
    digits = "".join(ch for ch in word if ch.isdecimal())
    return min(int(digits), 99) if digits else ADULT_AGE
