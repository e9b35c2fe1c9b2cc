"""An arm's ranking configuration as a recommender: the live one with other fusion weights (a
profile version), the hand blend instead of the learned ranker, another MMR λ or exploration
share. Each shares every piece of serving state with the live recommender (table rows,
behaviour, model), so arms differ only where their configuration says."""

from __future__ import annotations

import copy
from typing import Any

from medley.config import RankingSettings
from medley.editor import preview
from medley.editor.service import FusionEditor
from medley.experiments.spec import Arm
from medley.recs.engine import Recommender
from medley.recs.items import FusionView
from medley.recs.service import Recommendations
from medley.recs.user_lists import UserLists


class ArmRecommenders:
    def __init__(self, recs: Recommendations, editor: FusionEditor) -> None:
        self.recs = recs
        self.editor = editor
        self._views: dict[int, FusionView] = {}  # profile versions never change: kept
        self._settings: dict[tuple[float | None, float | None], RankingSettings] = {}

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
            # The live users' nearline candidates are the live ranking's (its knn source):
            # an arm finds its own per request.
            rec.user_lists = UserLists(0, 0.0)
        if arm.mmr_lambda is not None or arm.exploration_share is not None:
            rec.s = self._with(live.s, arm.mmr_lambda, arm.exploration_share)
        if arm.ranker is not None:
            rec.use_ranker = arm.ranker == "learned"
        return rec, arm.key

    def _with(self, base: RankingSettings, mmr: float | None, explore: float | None
              ) -> RankingSettings:
        """The settings with an arm's MMR λ and exploration share, copied once per arm (the
        settings do not change while a process runs; a copy per request would)."""
        key = (mmr, explore)
        found = self._settings.get(key)
        if found is None:
            updates = {k: v for k, v in (("mmr_lambda", mmr), ("exploration_share", explore))
                       if v is not None}
            found = self._settings[key] = base.model_copy(update=updates)
        return found

    def view(self, profile_id: int) -> FusionView:
        """A fusion profile version's view (kept: versions never change)."""
        view = self._views.get(profile_id)
        if view is None:
            view = self._views[profile_id] = self.editor.candidate(profile_id).view()
        return view
