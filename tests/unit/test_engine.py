"""The recommender end to end on a small in-memory catalog with a controllable clock: cold-start
priors, the behaviour weight, exploration slots and their expiry, consumption suppression."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from index.base import Where
from medley.config import Settings
from medley.domain import Modality
from medley.recs.behavior import Behavior
from medley.recs.engine import Recommender
from medley.recs.events import Event, EventType
from medley.recs.items import ItemInfo, ItemTable

DAY = 86400.0
NOW = 1.8e9
DIM = 8


def topic(k: int, rng: np.random.Generator, noise: float = 0.15) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[k] = 1.0
    v += noise * rng.standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


class World:
    """Two topics of established items (old), plus whatever new items a test adds."""

    def __init__(self, tmp: Path, **overrides: object) -> None:
        self.clock = NOW
        self.rng = np.random.default_rng(0)
        self.table = ItemTable({Modality.TEXT: DIM})
        self.behavior = Behavior(30 * DAY, DAY)
        fields: dict[str, object] = {"exploration_share": 0.0, "mmr_lambda": 1.0, **overrides}
        settings = Settings(data_dir=tmp, **fields)  # type: ignore[arg-type]
        self.rec = Recommender(settings, self.table, self.behavior,
                               lambda using, v, k, w: self.table.nearest(using, v, k, w),
                               clock=lambda: self.clock)
        self.rec.prior_budget = 1000
        self.seq = itertools.count(1)
        for t in (0, 1):
            for k in range(10):
                self.add(f"old-{t}-{k}", t, age_days=200)

    def add(self, item: str, t: int, age_days: float, published_days: float | None = None
            ) -> None:
        """`published_days`: how long ago the content team says it was released (None: no
        published_at; negative: scheduled)."""
        published = None if published_days is None else self.clock - published_days * DAY
        info = ItemInfo(item, (f"topic-{t}",), 0, published, self.clock - age_days * DAY)
        self.table.upsert(item, info, topic(t, self.rng))

    def act(self, user: str, item: str, kind: EventType = EventType.LIKE, n: int = 1) -> None:
        self.behavior.apply([(next(self.seq), Event(f"e{next(self.seq)}", user, item, kind,
                                                    None, self.clock, {})) for _ in range(n)])


def test_a_new_item_inherits_the_appeal_of_its_content_neighbours(tmp_path: Path) -> None:
    w = World(tmp_path)
    for k in range(10):  # topic 0 is popular, topic 1 is not
        w.act(f"crowd-{k}", f"old-0-{k}", n=6)
        w.act(f"crowd-{k}", f"old-1-{k}", EventType.VIEW)
        w.act(f"crowd-{k}", f"old-1-{(k + 1) % 10}", EventType.VIEW)
        w.act(f"crowd-{k}", f"old-1-{(k + 2) % 10}", EventType.VIEW)
        w.act(f"crowd-{k}", f"old-1-{(k + 3) % 10}", EventType.VIEW)
        w.act(f"crowd-{k}", f"old-1-{(k + 4) % 10}", EventType.VIEW)
    w.add("new-0", 0, age_days=0)
    w.add("new-1", 1, age_days=0)
    taste, _ = w.rec.user_taste("stranger", None)  # no taste: content says nothing
    s0, s1 = w.rec.score(["new-0", "new-1"], taste, None)
    assert s0 > s1  # predicted from neighbours, neither has a single interaction yet


def test_an_items_own_behaviour_takes_over_as_evidence_accumulates(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add("new-0", 0, age_days=0)
    for k in range(10):
        w.act(f"crowd-{k}", f"old-0-{k}", n=6)  # neighbours of new-0 are popular...
    taste, _ = w.rec.user_taste("stranger", None)
    before = w.rec.score(["new-0", "old-1-0"], taste, None)
    for k in range(60):  # ...but people keep skipping new-0, and like old-1-0
        w.act(f"tester-{k}", "new-0", EventType.SKIP)
        w.act(f"tester-{k}", "old-1-0", EventType.LIKE)
    after = w.rec.score(["new-0", "old-1-0"], taste, None)
    assert before[0] > before[1] and after[0] < after[1]


def test_exploration_keeps_slots_for_new_items_until_their_grace_runs_out(tmp_path: Path) -> None:
    settings = {"exploration_grace_hours": 48, "exploration_min_velocity": 2.0}
    plain = World(tmp_path, **settings)
    explore = World(tmp_path, exploration_share=0.2, **settings)
    for w in (plain, explore):
        w.act("ana", "old-0-0")  # Ana's taste: topic 0; the new item is topic 1
        w.add("fresh", 1, age_days=0.5)
        w.add("fading", 1, age_days=1.5)
    assert "fresh" not in {s.item_id for s in plain.rec.for_user("ana", 10, None, None).items}
    got = [s.item_id for s in explore.rec.for_user("ana", 10, None, None).items]
    assert {"fresh", "fading"} <= set(got)  # 2 of 10 slots explore new items

    explore.clock += 2 * DAY  # both are past their 48 h grace now
    for k in range(10):  # ...but "fresh" is spreading fast
        explore.act(f"fan-{k}", "fresh", EventType.SHARE)
    got = [s.item_id for s in explore.rec.for_user("ana", 10, None, None).items]
    assert "fresh" in got and "fading" not in got


def test_consumed_items_are_never_offered_again(tmp_path: Path) -> None:
    w = World(tmp_path)
    seen = [f"old-0-{k}" for k in range(8)]
    for item in seen:
        w.act("ana", item, EventType.COMPLETE)
    got = {s.item_id for s in w.rec.for_user("ana", 10, None, None).items}
    assert got and not got & set(seen)
    w.act("ana", "old-1-3", EventType.DISLIKE)
    got = {s.item_id for s in w.rec.for_user("ana", 10, None, None).items}
    assert "old-1-3" not in got


@pytest.mark.parametrize("only_new", [True, False])
def test_new_items_endpoint_ranks_only_young_items(tmp_path: Path, only_new: bool) -> None:
    w = World(tmp_path)
    w.add("young-a", 0, age_days=1)
    w.add("young-b", 1, age_days=3)
    w.act("ana", "old-0-0")
    got = [s.item_id for s in w.rec.for_user("ana", 10, None, None, only_new=only_new).items]
    if only_new:
        assert got == ["young-a", "young-b"]  # topic 0 first: Ana liked topic 0
    else:
        assert len(got) == 10


# --- new items: new, and new to the audience ------------------------------------------------
def new_items(w: World, user: str, **kw: object) -> list[str]:
    return [s.item_id for s in w.rec.for_user(user, 50, None, None, only_new=True,
                                              **kw).items]  # type: ignore[arg-type]


@pytest.mark.parametrize("user", ["ana", "stranger"])  # a taste to match, and none
def test_age_counts_from_the_release_date_when_there_is_one(tmp_path: Path, user: str) -> None:
    w = World(tmp_path)
    w.act("ana", "old-0-0")
    w.add("back-catalog", 0, age_days=0, published_days=365 * 30)  # imported today, from 1994
    w.add("undated", 0, age_days=0)  # no published_at: new from entering the catalog today
    w.add("released", 1, age_days=40, published_days=2)  # listed early, released this week
    w.add("scheduled", 0, age_days=0, published_days=-3)  # out in three days: not new yet
    got = new_items(w, user)
    assert set(got) == {"undated", "released"}
    reasons = {s.item_id: s.reasons for s in w.rec.for_user(user, 50, None, None).items}
    assert "new" in reasons["undated"] and "new" not in reasons.get("back-catalog", [])


def test_max_audience_keeps_only_items_nobody_engaged_with(tmp_path: Path) -> None:
    w = World(tmp_path)
    for k in range(6):  # a catalog imported today with its history, no release dates
        w.add(f"known-{k}", k % 2, age_days=0)
        for u in range(k + 1):
            w.act(f"fan-{u}", f"known-{k}", EventType.VIEW)
    for k in range(3):
        w.add(f"unseen-{k}", k % 2, age_days=0)
    w.act("ana", "old-0-0")
    w.act("ana", "unseen-2", EventType.IMPRESSION)  # seen in a list is not engagement
    w.act("ana", "unseen-1", EventType.SKIP)  # nor is a skip
    unseen = {"unseen-0", "unseen-1", "unseen-2"}
    assert set(new_items(w, "ana", max_audience=0)) == unseen
    assert set(new_items(w, "stranger", max_audience=0)) == unseen
    assert set(new_items(w, "stranger", max_audience=2)) == unseen | {"known-0", "known-1"}
    foryou = w.rec.for_user("stranger", 10, None, None, max_audience=0).items
    assert foryou and {s.item_id for s in foryou} <= unseen | {
        f"old-{t}-{k}" for t in (0, 1) for k in range(1, 10)}  # everything else: engaged


def test_new_items_by_default_leave_out_items_that_found_their_audience(tmp_path: Path) -> None:
    w = World(tmp_path, new_item_max_audience=3)
    w.add("hit", 0, age_days=0)
    w.add("niche", 0, age_days=0)
    for u in range(4):
        w.act(f"fan-{u}", "hit")
    w.act("fan-0", "niche", n=5)  # one user, many events: an audience of one
    assert new_items(w, "stranger") == ["niche"]
    assert set(new_items(w, "stranger", max_audience=10)) == {"hit", "niche"}


@pytest.mark.parametrize("limits", [(1000, 1000), (0, 1000), (0, 0)])
def test_a_capped_new_item_search_finds_the_best_matches_under_the_cap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limits: tuple[int, int]) -> None:
    from medley.recs import audience

    # Each way the search is restricted (ids left out, exact ranking, over-fetching) must
    # give the same answer as long as it can reach the items.
    monkeypatch.setattr(audience, "EXCLUDE_MAX", limits[0])
    monkeypatch.setattr(audience, "EXACT_MAX", limits[1])
    w = World(tmp_path)
    for k in range(4):
        w.add(f"known-{k}", 0, age_days=0)
        w.act(f"fan-{k}", f"known-{k}")
    w.add("unseen-0", 0, age_days=1)
    w.add("unseen-1", 1, age_days=1)
    w.act("ana", "old-0-0")
    assert new_items(w, "ana", max_audience=0) == ["unseen-0", "unseen-1"]  # topic 0 first


def test_the_fallback_honours_the_audience_cap(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add("unseen", 0, age_days=0)
    for k in range(10):
        w.act(f"fan-{k}", f"old-0-{k}")
    answer = w.rec.fallback(5, Where(), "index down", max_audience=0)
    assert answer.fallback and answer.items[0].item_id == "unseen"
    assert not {s.item_id for s in answer.items} & {f"old-0-{k}" for k in range(10)}
    assert answer.items[0].reasons == ["newest"]
