"""An arm's ranking configuration as a recommender: the live one with other fusion weights (a
profile version), the hand blend instead of the learned ranker, another MMR λ or exploration
share. Each shares every piece of serving state with the live recommender (table rows,
behaviour, model), so arms differ only where their configuration says."""

from __future__ import annotations

import copy
from typing import Any

from medley.editor import preview
from medley.editor.service import FusionEditor
from medley.experiments.spec import Arm
from medley.recs.engine import Recommender
from medley.recs.items import FusionView
from medley.recs.service import Recommendations


class ArmRecommenders:
    def __init__(self, recs: Recommendations, editor: FusionEditor) -> None:
        self.recs = recs
        self.editor = editor
        self._views: dict[int, FusionView] = {}  # profile versions never change: kept

    def get(self, arm: Arm | None) -> tuple[Recommender | None, tuple[Any, ...]]:
        """(the recommender, its answer-cache key part); (None, ()) for the live one. Built per
        request (a shallow copy): the live recommender's model and editorial settings change
        under it, and a copy kept from before would serve the old ones."""
        if arm is None or arm.key == (None, None, None, None):
            return None, ()
        live = self.recs.rec
        if arm.profile_id is not None:
            rec = preview.under(live, self.view(arm.profile_id), self.recs.index_search)
        else:
            rec = copy.copy(live)
        updates = {k: v for k, v in (("mmr_lambda", arm.mmr_lambda),
                                     ("exploration_share", arm.exploration_share))
                   if v is not None}
        if updates:
            rec.s = live.s.model_copy(update=updates)
        if arm.ranker is not None:
            rec.use_ranker = arm.ranker == "learned"
        return rec, arm.key

    def view(self, profile_id: int) -> FusionView:
        """A fusion profile version's view (kept: versions never change)."""
        view = self._views.get(profile_id)
        if view is None:
            view = self._views[profile_id] = self.editor.candidate(profile_id).view()
        return view
