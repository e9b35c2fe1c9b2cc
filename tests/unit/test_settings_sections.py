"""Settings sections: the recommender engine receives its own section, read from the same
environment names as before."""

from __future__ import annotations

import pytest

from medley.config import RankingSettings, Settings
from medley.domain import Modality
from medley.recs.behavior import Behavior
from medley.recs.engine import Recommender
from medley.recs.items import ItemTable


@pytest.mark.parametrize(("env", "field", "value"), [
    ("MEDLEY_MMR_LAMBDA", "mmr_lambda", 0.5),
    ("MEDLEY_CANDIDATES_PER_SOURCE", "candidates_per_source", 50),
    ("MEDLEY_EXPLORATION_SHARE", "exploration_share", 0.1),
    ("MEDLEY_NEW_ITEM_MAX_AUDIENCE", "new_item_max_audience", 3),
    ("MEDLEY_BLEND_COLLAB", "blend_collab", 1.5),
])
def test_the_ranking_section_reads_the_unchanged_environment_names(
        monkeypatch: pytest.MonkeyPatch, env: str, field: str, value: float) -> None:
    monkeypatch.setenv(env, str(value))
    settings = Settings()
    assert getattr(settings, field) == value  # the top-level name still works
    assert getattr(settings.ranking, field) == value


def test_the_engine_holds_its_section_and_nothing_else() -> None:
    rec = Recommender(Settings(mmr_lambda=0.3).ranking, ItemTable({Modality.TEXT: 4}),
                      Behavior(1.0, 1.0), lambda *_: [])
    assert type(rec.s) is RankingSettings and rec.s.mmr_lambda == 0.3
    assert not hasattr(rec.s, "database_url") and not hasattr(rec.s, "data_dir")


def test_a_bad_value_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="new_item_max_audience"):
        Settings(new_item_max_audience=-1)
