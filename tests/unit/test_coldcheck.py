"""The cold check (`medley.recs.coldcheck`): it tries CALS on items of several minimum
audiences, keeps the try that ranks held-out items best, and the stored model's CALS is fitted
the way the kept try was."""

from __future__ import annotations

from pathlib import Path

import pytest

from medley.recs import coldcheck, features, fitting
from medley.recs.events import Event, EventType
from medley.recs.learn import learn
from tests.unit.test_learn import TOPICS, _catalog, _history, _settings


def _with_drive_bys(topics: list[int], rare: int = 120) -> list[tuple[int, Event]]:
    """The usual history, plus `rare` items each liked by two users of the NEXT topic: items
    whose few fans say little about their content (the tries then differ)."""
    stream = _history(topics, cold=40 + rare)
    first = len(topics) - 40 - rare
    ts = stream[-1][1].ts
    for k in range(first, first + rare):
        for fan in range(2):
            user = f"u{(topics[k] + 1) % TOPICS + TOPICS * (k + fan) % 120}"
            ts += 60.0
            stream.append((len(stream) + 1, Event(f"d{k}-{fan}", user, f"i{k}", EventType.LIKE,
                                                  None, ts)))
    return stream


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> dict:
    table, topics = _catalog(n_items=320)
    stream = _with_drive_bys(topics)
    settings = _settings(tmp_path_factory.mktemp("coldcheck"))
    return coldcheck.choose(stream, table, settings, features.NAMES)


def test_every_minimum_audience_is_tried_and_the_best_is_kept(checked) -> None:
    tried = checked["cals_tried"]
    assert set(tried) == {str(a) for a in coldcheck.CALS_MIN_AUDIENCE}
    kept = checked["cals_min_audience"]
    assert tried[str(kept)] == max(tried.values())
    assert len(set(tried.values())) > 1  # the drive-by items make the tries differ
    # the weights kept are the best of that try's
    assert max(checked["ndcg@10"].values()) == pytest.approx(tried[str(kept)], abs=1e-4)
    assert checked["weights"] in list(coldcheck.ranker.COLD_GRID)


def test_a_try_that_would_fit_the_same_items_is_not_fitted_again(monkeypatch,
                                                                 tmp_path: Path) -> None:
    """Every warm item of this history has well over ten fans: one CALS fit answers all three tries
    (at 100k items each fit takes minutes)."""
    table, topics = _catalog()
    stream = _history(topics, per_user=25)  # each of 30 users of a topic likes 25 of its 30
    fits: list[int] = []
    real_fit = fitting.fit_cals

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        fits.append(args[4])
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(fitting, "fit_cals", spy)
    got = coldcheck.choose(stream, table, _settings(tmp_path), features.NAMES)
    assert fits == [1]
    assert len(set(got["cals_tried"].values())) == 1 and len(got["cals_tried"]) == 3
    assert got["cals_min_audience"] == 1


def test_the_stored_cals_is_fitted_on_the_kept_minimum_audience(monkeypatch,
                                                                 tmp_path: Path) -> None:
    table, topics = _catalog()
    stream = _history(topics)
    fits: list[int] = []
    real_fit, real_choose = fitting.fit_cals, coldcheck.choose

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        fits.append(args[4] if len(args) > 4 else kwargs.get("min_audience", 1))
        return real_fit(*args, **kwargs)

    def choose_three(*args, **kwargs):  # type: ignore[no-untyped-def]
        return {**real_choose(*args, **kwargs), "cals_min_audience": 3}

    monkeypatch.setattr(fitting, "fit_cals", spy)
    monkeypatch.setattr(coldcheck, "choose", choose_three)
    model, report = learn(stream, table, _settings(tmp_path), last_seq=len(stream))
    assert model is not None and model.ranker is not None and model.cals is not None
    assert fits[-1] == 3  # the stored model's CALS, fitted after the check
    assert model.ranker.meta["cold"]["cals_min_audience"] == 3
    assert report["ranker"]["cold"]["cals_min_audience"] == 3
