"""Natural-language search across the metadata-text, transcript and CLIP spaces, fused by
weighted reciprocal rank (cosines from different models are not on one scale), optionally
re-ranked toward a user's taste."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from index.base import Where
from medley.domain import Modality
from medley.recs.answers import Answer, Preferences, Scored
from medley.recs.engine import Recommender
from medley.recs.reasons import dialogue_phrase

RRF_K = 60.0
PERSONAL_WEIGHT = 1.0  # the taste ranking counts like one more space

# space -> (which query embedding it takes, weight)
SPACES: dict[Modality, tuple[str, float]] = {
    Modality.TEXT: ("text", 1.0),
    Modality.SPEECH: ("text", 1.0),
    Modality.CLIP_TEXT: ("clip", 0.75),
    Modality.IMAGE: ("clip", 0.5),
}
MATCHED_BY: dict[Modality, str] = {
    Modality.TEXT: "the title, description or tags match",
    Modality.SPEECH: "the dialogue is about this",
    Modality.CLIP_TEXT: "the story matches",
    Modality.IMAGE: "the artwork matches",
}


@dataclass(frozen=True)
class QueryVectors:
    text: np.ndarray | None  # metadata-text model (also the transcript space)
    clip: np.ndarray | None  # CLIP text tower (CLIP-text and image spaces)

    def get(self, kind: str) -> np.ndarray | None:
        return self.text if kind == "text" else self.clip


def rrf(rankings: Mapping[Modality, Sequence[str]], weights: Mapping[Modality, float]
        ) -> dict[str, dict[Modality, float]]:
    """Per item, each space's weighted reciprocal-rank contribution."""
    out: dict[str, dict[Modality, float]] = {}
    for space, ids in rankings.items():
        for rank, item in enumerate(ids):
            out.setdefault(item, {})[space] = weights[space] / (RRF_K + rank + 1)
    return out


def search(
    rec: Recommender,
    query: str,
    vectors: QueryVectors,
    n: int,
    where: Where | None,
    *,
    user_id: str | None = None,
    prefs: Preferences | None = None,
    transcripts: Callable[[list[str]], dict[str, list[dict[str, object]]]] | None = None,
) -> Answer:
    flt = where or Where()
    if prefs and prefs.disliked_tags:
        flt = flt.without_tags(prefs.disliked_tags)
    # A space's vote: its base weight times the published profile's search weight for it.
    surface = rec.table.view.for_surface("search")
    rankings: dict[Modality, list[str]] = {}
    for space, (kind, _) in SPACES.items():
        vec = vectors.get(kind)
        if vec is not None and space in rec.table.dims and surface.get(space, 0.0) > 0:
            hits = rec.search(space.value, vec, rec.s.candidates_per_source, flt)
            rankings[space] = [i for i, _ in hits]
    if not rankings:
        return rec.fallback(n, flt, "no search model is available")
    parts = rrf(rankings, {m: w * surface.get(m, 0.0) for m, (_, w) in SPACES.items()})
    ids = [i for i in parts if rec.table.get(i) is not None]
    scores = np.array([sum(parts[i].values()) for i in ids])
    taste = None
    if user_id or prefs:
        taste, _ = rec.user_taste(user_id, prefs)
        if taste.vector is not None and ids:
            cos = rec.table.dots(rec.table.rows(ids), taste.vector, centred=True)[:, 0]
            ranks = np.empty(len(ids))
            ranks[np.argsort(-cos)] = np.arange(len(ids))
            scores = scores + PERSONAL_WEIGHT / (RRF_K + ranks + 1)
    order = np.argsort(-scores)[:n]
    top = [ids[k] for k in order]
    segments = transcripts([i for i in top if Modality.SPEECH in parts[i]]) if transcripts else {}
    out = []
    for k in order:
        item = ids[k]
        best = max(parts[item].items(), key=lambda kv: kv[1])[0]
        why = [MATCHED_BY[best]]
        if best is Modality.SPEECH or Modality.SPEECH in parts[item]:
            phrase = dialogue_phrase(query, segments.get(item, []))
            if phrase:
                why = [f"the dialogue mentions \u201c{_clip(phrase)}\u201d"] + (
                    [] if best is Modality.SPEECH else why)
        if taste is not None and taste.vector is not None:
            why.append("suits your taste")
        out.append(Scored(item, float(scores[k]), why,
                          {m.value: v for m, v in parts[item].items()}))
    return Answer(out)


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"
