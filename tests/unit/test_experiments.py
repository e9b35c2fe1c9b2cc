"""The experiments' pure parts: assignment, team-draft interleaving, always-valid statistics,
online metrics from exposures and credited events, guardrail verdicts."""

from __future__ import annotations

import random

import numpy as np
import pytest

from medley.errors import InvalidInput
from medley.experiments import stats
from medley.experiments.assign import place, unit
from medley.experiments.interleave import preference, team_draft
from medley.experiments.online import Shown, per_arm, preferences, sessions
from medley.experiments.spec import Arm, Guardrail, Mode, Spec
from medley.experiments.verdict import breaches, compare_arms, sample_ratio

USERS = [f"user-{k}" for k in range(20_000)]


def test_assignment_is_sticky_and_follows_the_weights() -> None:
    arms = [place("salt-1", u, [1, 3]).arm for u in USERS]
    assert arms == [place("salt-1", u, [1, 3]).arm for u in USERS]  # same in every process
    assert abs(arms.count(1) / len(arms) - 0.75) < 0.015


def test_experiments_assign_independently() -> None:
    a = np.array([place("exp-a", u, [1, 1]).arm for u in USERS])
    b = np.array([place("exp-b", u, [1, 1]).arm for u in USERS])
    # Knowing a user's arm in one experiment says nothing about the other.
    assert abs(np.mean(b[a == 0]) - np.mean(b[a == 1])) < 0.03


def test_a_ramp_only_adds_users_and_never_moves_them() -> None:
    small = {u: place("s", u, [1, 1], exposure=0.05) for u in USERS}
    large = {u: place("s", u, [1, 1], exposure=0.25) for u in USERS}
    enrolled = [u for u, p in small.items() if p.arm is not None]
    assert abs(len(enrolled) / len(USERS) - 0.05) < 0.01
    assert all(large[u].arm == small[u].arm for u in enrolled)
    assert abs(sum(p.arm is not None for p in large.values()) / len(USERS) - 0.25) < 0.015


def test_a_holdout_is_kept_out_of_every_arm() -> None:
    placed = [place("s", u, [1, 1], holdout=0.1) for u in USERS]
    held = [p for p in placed if p.holdout]
    assert abs(len(held) / len(USERS) - 0.1) < 0.01 and all(p.arm is None for p in held)
    assert 0 <= unit("s", "x", "arm") < 1


@pytest.mark.parametrize(("first", "second", "n", "want"), [
    (["a", "b", "c"], ["a", "b", "c"], 3, ["a", "b", "c"]),  # same ranking: same list
    (["a", "b"], [], 4, ["a", "b"]),  # one side empty: the other fills in
    (["a", "b", "c", "d"], ["x", "y", "z", "w"], 4, None),  # disjoint: two from each
])
def test_team_draft(first: list[str], second: list[str], n: int, want: list[str] | None
                    ) -> None:
    for seed in range(20):
        items, teams = team_draft(first, second, n, random.Random(seed))
        if want is not None:
            assert items == want
        assert len(items) == len(set(items)) == len(teams)
        for team, ranking in (("A", first), ("B", second)):
            mine = [i for i, t in zip(items, teams, strict=True) if t.upper() == team]
            assert mine == [i for i in ranking if i in mine]  # each side keeps its order
        shared = set(first[:n]) & set(second[:n])
        assert [t.islower() for t in teams] == [i in shared for i in items]
        if want is None:
            assert teams.count("A") == teams.count("B") == 2


def test_preference_counts_clicks_per_team() -> None:
    assert preference([("a", "A"), ("b", "A"), ("c", "B")]) == 1
    assert preference([("a", "B")]) == -1
    assert preference([("a", "A"), ("c", "B")]) == 0 and preference([]) == 0
    assert preference([("a", "a"), ("b", "a"), ("c", "B")]) == -1  # shared items: no credit


def test_peeking_at_an_aa_test_keeps_false_positives_under_alpha() -> None:
    rng = np.random.default_rng(0)
    runs, hits_avt, hits_naive = 200, 0, 0
    for _ in range(runs):
        a, b = rng.binomial(1, 0.1, 2000), rng.binomial(1, 0.1, 2000)
        avt = naive = False
        for n in range(100, 2001, 100):  # read every 100 users per arm
            d = stats.compare(stats.Summary.of(a[:n]), stats.Summary.of(b[:n]))
            assert d is not None
            avt |= d.significant
            se = np.sqrt(a[:n].var(ddof=1) / n + b[:n].var(ddof=1) / n)
            naive |= abs(b[:n].mean() - a[:n].mean()) > 1.96 * se
        hits_avt += avt
        hits_naive += naive
    assert hits_avt / runs <= 0.05
    assert hits_naive / runs > 0.15  # what the always-valid interval protects from


def test_a_real_difference_is_found_and_bounded() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.binomial(1, 0.10, 20_000), rng.binomial(1, 0.13, 20_000)
    d = stats.compare(stats.Summary.of(a), stats.Summary.of(b))
    assert d is not None and d.significant and d.low > 0
    assert d.rel_low is not None and d.rel_high is not None
    assert d.rel_low < 0.3 < d.rel_high


def test_a_non_negative_metric_never_drops_by_more_than_everything() -> None:
    d = stats.compare(stats.Summary.of([0.2, 0.3, 0.1, 0.2]), stats.Summary.of([0.0, 0.01, 0.0]))
    assert d is not None and d.rel_low == -1.0 and d.low == pytest.approx(-0.2)


def test_sample_ratio_mismatch() -> None:
    assert stats.srm([5_000, 5_050], [1, 1]) > stats.SRM_P  # type: ignore[operator]
    assert stats.srm([5_500, 4_500], [1, 1]) < stats.SRM_P  # type: ignore[operator]
    assert stats.srm([7_500, 2_500], [3, 1]) > stats.SRM_P  # type: ignore[operator]
    assert stats.srm([3, 4], [1, 1]) is None


@pytest.mark.parametrize("spec", [
    Spec("one arm", (Arm("a"),)),
    Spec("same names", (Arm("a"), Arm("a"))),
    Spec("reserved name", (Arm("a"), Arm("holdout"))),
    Spec("interleave three", (Arm("a"), Arm("b"), Arm("c")), mode=Mode.INTERLEAVE),
    Spec("falling ramp", (Arm("a"), Arm("b")), ramp=(0.5, 0.1)),
    Spec("unknown metric", (Arm("a"), Arm("b")), guardrails=(Guardrail("fun", 0.1),)),
    Spec("latency with a drop", (Arm("a"), Arm("b")), guardrails=(Guardrail("p95_ms", 0.1),)),
])
def test_bad_specs_are_refused(spec: Spec) -> None:
    with pytest.raises(InvalidInput):
        spec.check()


def _shown(arm: str, user: str, k: int, ts: float = 0.0) -> Shown:
    return Shown(f"{arm}-{user}-{k}", arm, user, ts, [f"i{j}" for j in range(10)], ms=5.0)


def test_online_metrics_credit_events_to_the_answer_they_cite() -> None:
    shown = [_shown("A", "u1", 0), _shown("A", "u1", 1), _shown("B", "u2", 0)]
    credited = [("A-u1-0", "i0", "view", 30.0), ("A-u1-0", "i0", "like", None),
                ("A-u1-1", "i3", "complete", None), ("A-u1-1", "zz", "view", 5.0),  # not shown
                ("B-u2-0", "i1", "skip", None)]
    activity = {"u1": [(10.0, "view", None), (20.0, "view", None), (4000.0, "complete", None)]}
    m = per_arm(shown, credited, activity, now=1.0, is_new=lambda i, t: i == "i9",
                catalog_size=100)
    a, b = m["A"].per_user, m["B"].per_user
    assert a["ctr"][0] == pytest.approx(2 / 20)  # two distinct clicked items, 20 impressions
    assert a["like_rate"][0] == pytest.approx(1 / 20)
    assert a["completion_rate"][0] == pytest.approx(1 / 2)
    assert a["dwell"][0] == pytest.approx(30.0)
    assert a["new_share"][0] == pytest.approx(2 / 20)
    assert a["items_per_session"][0] == pytest.approx(3 / 2)  # a 30-minute gap: two sessions
    assert np.isnan(a["return_1d"][0])  # a day has not passed since the first exposure
    assert b["skip_rate"][0] == pytest.approx(1 / 10) and b["ctr"][0] == 0
    assert m["A"].coverage == pytest.approx(0.1) and m["A"].exposures == 2
    gaps = [(t, "view", None) for t in (0, 100, 5000, 5100, 20_000)]
    assert sessions(gaps) == [0, 5000, 20_000]
    # The app's session ids win over gaps: one session across a long pause, two within minutes.
    named = [(0, "view", "s1"), (5000, "view", "s1"), (5100, "view", "s2"), (5200, "view", None)]
    assert sessions(named) == [0, 5100, 5200]


def test_interleaving_preferences_come_from_the_clicked_teams() -> None:
    shown = [Shown("r1", "interleaved", "u1", 0, ["a", "b", "c"], "ABA"),
             Shown("r2", "interleaved", "u2", 0, ["a", "b"], "BA")]
    credited = [("r1", "a", "view", None), ("r1", "c", "view", None), ("r1", "b", "view", None),
                ("r2", "a", "skip", None)]
    assert preferences(shown, credited) == {"u1": 1, "u2": 0}


def _arms_with(ctr_a: float, ctr_b: float, users: int = 4000) -> tuple[tuple[Arm, ...], dict]:
    rng = np.random.default_rng(2)
    shown, credited = [], []
    for arm, ctr in (("A", ctr_a), ("B", ctr_b)):
        for u in range(users):
            x = _shown(arm, f"{arm}{u}", 0)
            shown.append(x)
            credited += [(x.recommendation_id, f"i{j}", "view", None)
                         for j in range(10) if rng.random() < ctr]
    arms = (Arm("A"), Arm("B"))
    m = per_arm(shown, credited, {}, now=0, is_new=lambda i, t: False, catalog_size=10)
    return arms, compare_arms(arms, m)


@pytest.mark.parametrize(("ctr_b", "breached"), [(0.2, False), (0.18, False), (0.05, True)])
def test_a_guardrail_stops_only_an_arm_that_is_clearly_worse(ctr_b: float, breached: bool
                                                             ) -> None:
    arms, compared = _arms_with(0.2, ctr_b)
    found = breaches(arms, [Guardrail("ctr", max_drop=0.2)], compared)
    assert (found != []) is breached
    if breached:
        assert found[0][0] == "B" and "ctr" in found[0][1]


def test_latency_guardrail_and_sample_ratio() -> None:
    arms, compared = _arms_with(0.2, 0.2, users=100)
    assert breaches(arms, [Guardrail("p95_ms", max_value=1.0)], compared)[0][0] == "B"
    assert breaches(arms, [Guardrail("p95_ms", max_value=50.0)], compared) == []
    m = per_arm([_shown("A", f"a{u}", 0) for u in range(600)]
                + [_shown("B", f"b{u}", 0) for u in range(400)], [], {}, now=0,
                is_new=lambda i, t: False, catalog_size=10)
    assert sample_ratio(arms, m)["mismatch"] is True


def test_the_simulator_finds_the_better_arm_and_stops_an_unrelated_one() -> None:
    from benchmarks.experiment import ab, breaker, interleaved

    assert ab(0, ("worse", "better"))["winner"] == "treatment"
    assert ab(1, ("better", "better"), max_users=1000)["winner"] is None
    assert interleaved(0, ("worse", "better"))["winner"] == "B"
    stopped = breaker(0)
    assert stopped["users"] is not None and stopped["users"] <= 1000


def test_a_ramp_steps_once_per_period_even_when_two_guards_race(database_url: str) -> None:
    from medley.db import Database
    from medley.experiments import store

    db = Database(database_url)  # SQLite, and PostgreSQL (integration)
    db.migrate()
    spec = Spec("ramped", (Arm("a"), Arm("b")), ramp=(0.1, 0.5, 1.0), ramp_every_s=60)
    with db.session() as s:
        exp = store.create(s, spec.check(), "test")
        store.transition(s, exp.id, "start", "test", now=1000.0)
    with db.session() as s:
        assert store.advance_ramp(s, exp.id, "guard", now=1030.0) is None  # too soon
        assert store.advance_ramp(s, exp.id, "guard", now=1061.0) == 0.5
        assert store.advance_ramp(s, exp.id, "other guard", now=1061.0) is None  # just stepped
        assert store.advance_ramp(s, exp.id, "guard", now=1200.0) == 1.0
        assert store.advance_ramp(s, exp.id, "guard", now=9000.0) is None  # the last step
        assert [h.action for h in store.history(s, exp.id)] == ["create", "start", "ramp", "ramp"]
    db.dispose()


def test_exposures_and_credited_clicks_on_every_backend(database_url: str) -> None:
    """The store's writes and joins as PostgreSQL runs them too: exposures with packed items,
    clicks per arm, a user's activity, erasure."""
    from medley.db import Database
    from medley.db.models import EventRecord
    from medley.experiments import store
    from medley.experiments.packing import pack, unpack

    db = Database(database_url)
    db.migrate()
    with db.session() as s:
        exp = store.create(s, Spec("backend", (Arm("a"), Arm("b"))).check(), "test")
        store.write_exposures(s, [
            {"recommendation_id": f"r{k}", "experiment_id": exp.id, "arm": "ab"[k % 2],
             "user_id": f"u{k}", "surface": "recommendations", "ts": 100.0 + k,
             "items": pack(["0b6e7c3a-2f1d-4c55-9a11-6f1c2d3e4f50", "x"]), "teams": None,
             "ms": 3.0} for k in range(4)])
        s.add_all([EventRecord(event_id=f"e{k}", user_id=f"u{k}", item_id="x", type="view",
                               value=None, ts=200.0 + k, context={}, recommendation_id=f"r{k}",
                               session_id="s1") for k in range(3)])
    with db.session() as s:
        assert store.clicks_by_arm(s, [exp.id]) == {(exp.id, "a"): 2, (exp.id, "b"): 1}
        assert sorted(c[0] for c in store.credited(s, exp.id)) == ["r0", "r1", "r2"]
        assert store.activity(s, ["u1"], since=0.0) == {"u1": [(201.0, "view", "s1")]}
        assert unpack(store.exposures(s, exp.id)[0].items)[1] == "x"
        assert store.erase_user(s, "u1") == 1
        assert len(store.exposures(s, exp.id)) == 3
    db.dispose()


def test_a_flush_returns_once_the_rows_before_it_are_written(tmp_path, monkeypatch) -> None:
    """The writer thread's flush takes the buffer and is mid-insert when someone else flushes
    (a test, an erasure) and reads the table: that flush waits for it instead of returning
    with nothing to do while the rows are not yet committed."""
    import threading
    import time

    from medley.db import Database
    from medley.experiments import exposures, store
    from medley.experiments.packing import pack

    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.migrate()
    with db.session() as s:
        exp = store.create(s, Spec("slow", (Arm("a"), Arm("b"))).check(), "test")
    inserting = threading.Event()
    real = store.write_exposures

    def slow(s, rows):  # the database takes its time with the writer thread's batch
        inserting.set()
        time.sleep(0.3)
        real(s, rows)

    monkeypatch.setattr(exposures.store, "write_exposures", slow)
    log = exposures.ExposureLog(db)
    log.add({"recommendation_id": "r1", "experiment_id": exp.id, "arm": "a", "user_id": "u1",
             "surface": "recommendations", "ts": 1.0, "items": pack(["x"]), "teams": None,
             "ms": 1.0})
    writer = threading.Thread(target=log.flush)
    writer.start()
    assert inserting.wait(5)
    log.flush()  # nothing left in the buffer, but the first flush is still inserting
    with db.session() as s:
        assert len(store.exposures(s, exp.id)) == 1
    writer.join()
    db.dispose()


@pytest.mark.parametrize("ids", [
    [],
    ["0b6e7c3a-2f1d-4c55-9a11-6f1c2d3e4f50", "item-7", "é-ünïcode", "x" * 64],
    ["0B6E7C3A-2F1D-4C55-9A11-6F1C2D3E4F50"],  # not the canonical spelling: kept as text
    ["0b6e7c3a2f1d4c559a116f1c2d3e4f50"],
])
def test_packed_exposure_items_come_back_in_order(ids: list[str]) -> None:
    from medley.experiments.packing import pack, unpack

    assert unpack(pack(ids)) == ids


def test_uuids_pack_to_their_bytes() -> None:
    import uuid

    from medley.experiments.packing import pack

    ids = [str(uuid.uuid4()) for _ in range(10)]
    assert len(pack(ids)) == 170  # 17 bytes each, against 36 characters as text


def test_an_unreadable_experiment_is_set_aside_and_the_others_still_serve(
        tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    from types import SimpleNamespace

    from medley.db import Database
    from medley.experiments import store
    from medley.experiments.service import Experiments

    db = Database(f"sqlite:///{tmp_path}/live.db")
    db.migrate()
    with db.session() as s:
        good = store.create(s, Spec("good", (Arm("a"), Arm("b"))).check(), "test")
        bad = store.create(s, Spec("bad", (Arm("a"), Arm("b")), surfaces=("similar",)).check(),
                           "test")
        store.transition(s, good.id, "start", "test")
        store.transition(s, bad.id, "start", "test")
        store.get(s, bad.id).arms = [{"name": "a", "colour": "red"}]  # not an arm any more
    exps = Experiments(SimpleNamespace(db=db), editor=None)  # type: ignore[arg-type]
    exps.refresh()
    assert set(exps._live) == {"recommendations"} and exps._live["recommendations"].id == good.id
    assert f"experiment {bad.id} is set aside" in caplog.text
