"""What the learned ranker sees of one (user, candidate) pair: the same numbers at training time
(on a past cut of the events) and per request (on live state), computed by one function.

Every feature is a vectorised numpy operation over the candidate pool; nothing here touches
the index or the database, so scoring a few hundred candidates costs well under a millisecond
beyond the products with the user's vectors.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medley.recs.behavior import Behavior
from medley.recs.collab import CollabModel
from medley.recs.items import ItemTable

DAY = 86400.0
BLOCK = 20_000  # items predicted per matrix product
# The features, in order. Content enters once, as the cosine under the published fusion
# weights: per-modality cosines would let the trees learn their own weights and quietly undo
# what editors set (and preview, and measure).
NAMES = ("collab", "collab_mapped", "engagement_mapped", "content", "liked_max", "pop_long",
         "pop_short", "interactions", "age_days", "user_events")
BEHAVIOUR = ("collab", "pop_long", "pop_short", "interactions")  # what a cold item lacks


class Predicted:
    """Per table row, the content map's predicted factors and engagement: computed once per
    row and model (predicting costs D x f per item, too much to redo per request), forgotten
    when an item's vectors change."""

    def __init__(self) -> None:
        # The model the rows were predicted with, held (not its id(): a freed model's id can
        # be reused by the next one, which would then be served stale predictions).
        self._model: CollabModel | None = None
        self._done = np.zeros(0, dtype=bool)
        self._factors = np.zeros((0, 0), dtype=np.float32)
        self._engagement = np.zeros(0, dtype=np.float64)
        self._lock = threading.Lock()  # request threads fill rows; a resize swaps the arrays

    def forget(self, row: int) -> None:
        if row < len(self._done):
            self._done[row] = False

    def get(self, table: ItemTable, model: CollabModel | None, rows: np.ndarray
            ) -> tuple[np.ndarray | None, np.ndarray]:
        """(factors (n, f) or None without a usable map, engagement (n,), NaN where unknown)."""
        cmap = model.content_map if model is not None else None
        layout = [(m.value, int(w)) for m, w in zip(table.modalities, table.widths, strict=True)]
        if cmap is None or model is None or not cmap.matches(layout):
            return None, np.full(len(rows), np.nan)
        with self._lock:
            if self._model is not model or len(self._done) < len(table.ids):
                self._resize(len(table.units), model, cmap.weights.shape[1] - 1)
            todo = np.unique(rows[~self._done[rows]])
            for start in range(0, len(todo), BLOCK):  # bounded memory for a whole catalog
                part = todo[start : start + BLOCK]
                f, e = cmap.predict(table.units[part], table.present[part])
                self._factors[part], self._engagement[part] = f, e
                self._done[part] = True
            return self._factors[rows], self._engagement[rows]

    def set(self, rows: np.ndarray, factors: np.ndarray, engagement: np.ndarray) -> None:
        """Overwrite these rows' predictions (training: out-of-fold values); call `get` first,
        so the arrays belong to the model."""
        with self._lock:
            self._factors[rows], self._engagement[rows] = factors, engagement
            self._done[rows] = True

    def _resize(self, n: int, model: CollabModel, f: int) -> None:
        same = self._model is model
        old = (self._done, self._factors, self._engagement)
        self._done = np.zeros(n, dtype=bool)
        self._factors = np.zeros((n, f), dtype=np.float32)
        self._engagement = np.zeros(n, dtype=np.float64)
        if same:  # the table grew: keep what was computed
            k = len(old[0])
            self._done[:k], self._factors[:k], self._engagement[:k] = old
        self._model = model


@dataclass
class UserSignals:
    taste: np.ndarray | None  # centred fused taste vector (unit), None without positives
    vector: np.ndarray | None  # collaborative user vector (folded in from recent positives)
    liked_rows: np.ndarray  # table rows of the recent positives
    events: int  # the user's non-impression events so far


def compute(table: ItemTable, behavior: Behavior, model: CollabModel | None,
            predicted: Predicted, now: float, user: UserSignals, ids: Sequence[str],
            surface: str | None = None) -> np.ndarray:
    """Feature matrix (len(ids), len(NAMES)), NaN where a signal is unknown."""
    n = len(ids)
    rows = table.rows(ids)
    out = np.full((n, len(NAMES)), np.nan, dtype=np.float32)
    col = {name: k for k, name in enumerate(NAMES)}
    vecs = table.vectors_of(rows, surface, centred=True)
    if user.taste is not None:
        out[:, col["content"]] = vecs @ user.taste
    if len(user.liked_rows):
        liked = table.vectors_of(user.liked_rows, surface, centred=True)
        out[:, col["liked_max"]] = (vecs @ liked.T).max(axis=1)
    if model is not None and user.vector is not None:
        out[:, col["collab"]] = model.scores(user.vector, ids)
        factors, engagement = predicted.get(table, model, rows)
        if factors is not None:
            out[:, col["collab_mapped"]] = factors @ user.vector
        out[:, col["engagement_mapped"]] = engagement
    elif model is not None:
        out[:, col["engagement_mapped"]] = predicted.get(table, model, rows)[1]
    out[:, col["pop_long"]] = behavior.popularity_log(ids, now)
    out[:, col["pop_short"]] = [math.log1p(behavior.trending.value(i, now)) for i in ids]
    out[:, col["interactions"]] = np.log1p(np.asarray(behavior.counts(ids), dtype=np.float64))
    out[:, col["age_days"]] = np.clip(now - table.published[rows], 0.0, None) / DAY
    out[:, col["user_events"]] = math.log1p(user.events)
    return out


def mask_behaviour(x: np.ndarray, which: np.ndarray) -> np.ndarray:
    """These rows as if their items were brand new (training's DropoutNet step): no ALS score,
    no popularity, no interactions; content and predicted appeal stay."""
    x = x.copy()
    for name in BEHAVIOUR:
        k = NAMES.index(name)
        x[which, k] = np.nan if name == "collab" else 0.0
    return x
