"""What the recommender answers with, and what it is told (preferences, editorial settings)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np

# The surfaces an answer is for, as fusion profiles name them (`FusionView.surfaces`): each may
# weigh the modalities differently.
SIMILAR, FOR_YOU = "similar", "recommendations"


@dataclass(frozen=True)
class Scored:
    item_id: str
    score: float
    reasons: list[str]
    parts: dict[str, float] | None = None  # each modality's share of the score, where known


@dataclass(frozen=True)
class Answer:
    items: list[Scored]
    recommendation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    fallback: bool = False
    note: str | None = None  # why the fallback answered
    experiment: int | None = None  # the experiment that served it (medley/experiments)
    arm: str | None = None  # its arm (None when interleaved: each item has its own)


@dataclass(frozen=True)
class Preferences:
    liked_items: tuple[str, ...] = ()
    text: str | None = None
    text_vector: np.ndarray | None = None  # metadata-text space
    disliked_tags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Editorial:
    pins: tuple[tuple[str, int], ...] = ()  # (item, 0-based position) in for-you answers
    boosts: dict[str, float] = field(default_factory=dict)  # item id or "tag:<tag>" -> factor
