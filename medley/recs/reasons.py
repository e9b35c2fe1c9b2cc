"""Reasons a person can read, derived from the signals that put an item in the answer."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from medley.domain import Modality
from medley.recs.behavior import Behavior
from medley.recs.items import ItemTable

if TYPE_CHECKING:
    from medley.recs.answers import Preferences
    from medley.recs.signals import Taste

SIMILAR_BY: dict[Modality, str] = {
    Modality.IMAGE: "similar artwork",
    Modality.VIDEO: "similar scenes",
    Modality.SPEECH: "similar dialogue",
    Modality.TEXT: "similar description and tags",
    Modality.CLIP_TEXT: "similar story",
}
LIKED_MIN_COSINE = 0.2  # below this, "because you liked X" would not ring true
_WORD = re.compile(r"[a-z0-9']+")
_STOP = ("a an and are as at be by for from has have i in is it its of on or that the this to was "
         "were what when where which who with you your about into over under")
STOPWORDS = frozenset(_STOP.split(" "))


def similar(parts: Mapping[Modality, float], co_engagement: float, title: str) -> list[str]:
    out = []
    strongest = max(parts.items(), key=lambda kv: kv[1], default=None)
    if strongest is not None and strongest[1] > 0:
        out.append(SIMILAR_BY[strongest[0]])
    if co_engagement > 0.1:
        out.append(f"people who liked {title} also liked this")
    return out or ["similar content"]


def words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1}


def dialogue_phrase(query: str, segments: Sequence[Mapping[str, object]]) -> str | None:
    """The transcript segment sharing most words with the query, if any shares one."""
    wanted = words(query)
    best, best_hits = None, 0
    for seg in segments:
        text = str(seg.get("text", "")).strip()
        hits = len(wanted & words(text))
        if hits > best_hits:
            best, best_hits = text, hits
    return best


class Explainer:
    def __init__(self, table: ItemTable, taste: Taste, prefs: Preferences | None,
                 behavior: Behavior, now: float, new_age_s: float) -> None:
        self.table = table
        self.taste = taste
        self.prefs = prefs
        self.behavior = behavior
        self.now = now
        self.new_age_s = new_age_s
        self.liked = taste.liked_rows
        self.liked_vecs = table.vectors_of(self.liked) if len(self.liked) else None
        tags: Counter[str] = Counter()
        for r in self.liked:
            info = table.info[r]
            tags.update(info.tags if info else ())
        self.interests = {t for t, c in tags.most_common(5) if c >= 2}
        self.best: dict[str, tuple[float, int]] = {}  # item -> (cosine, liked row)
        self.bar = LIKED_MIN_COSINE

    def prepare(self, items: Sequence[str]) -> None:
        """Find each answer item's closest liked item. "Because you liked X" is said only for
        items at least as close as the answer's median: fused cosines have a baseline that
        differs by catalog and model, so a fixed bar alone would explain unrelated items."""
        if self.liked_vecs is None or not items:
            return
        rows = self.table.rows(items)
        known = rows >= 0
        sims = self.table.vectors_of(rows[known]) @ self.liked_vecs.T
        for item, row_sims in zip([i for i, k in zip(items, known, strict=True) if k], sims,
                                  strict=True):
            best = int(np.argmax(row_sims))
            self.best[item] = (float(row_sims[best]), int(self.liked[best]))
        if self.best:
            self.bar = max(LIKED_MIN_COSINE, float(np.median([v for v, _ in self.best.values()])))

    def __call__(self, item: str, sources: set[str], editorial: bool) -> list[str]:
        out: list[str] = []
        r = self.table.row.get(item)
        info = self.table.get(item)
        if editorial:
            out.append("editor's pick")
        close = self.best.get(item)
        if close is not None and close[0] >= self.bar and sources & {"content", "collab"}:
            liked = self.table.info[close[1]]
            if liked is not None:
                out.append(f"because you liked {liked.title}")
        shared = sorted(self.interests & set(info.tags if info else ()))
        if shared:
            out.append(f"matches your interest in {shared[0]}")
        if "stated" in sources and self.prefs and self.prefs.text:
            out.append(f"matches what you asked for: \u201c{self.prefs.text}\u201d")
        if sources & {"collab", "knn"} and not any(o.startswith("because") for o in out):
            out.append("popular with people who like what you like")
        if "trending" in sources:
            out.append("trending")
        elif "popular" in sources and not out:
            out.append("popular")
        # New as the new-items answer counts it: from published_at, else entering the catalog.
        if r is not None and self.now - self.new_age_s <= self.table.published[r] <= self.now:
            out.append("new")
        return out or ["popular"]
