"""Experiments through the API on the real app: users get a sticky arm, answers and exposures
name it, events citing an answer are credited to its arm, a guardrail stops a bad arm,
interleaving merges two rankings with teams, shipping serves the winner, erasure forgets."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from medley.config import Settings
from medley.db.models import Exposure
from tests.api.conftest import wait_until

USERS = [f"exp-user-{k}" for k in range(40)]


@pytest.fixture(scope="module")
def rec_settings(rec_settings: Settings) -> Settings:
    """The catalog's settings, with rate limits these many users' requests do not reach."""
    return rec_settings.model_copy(update={"rate_limits": {
        role: (1e6, 1e6) for role in ("client", "content", "editor", "admin")}})


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def create(client: Any, **body: Any) -> dict[str, Any]:
    body = {"name": "blend against the learned ranker",
            "arms": [{"name": "control"}, {"name": "blend", "ranker": "blend",
                                           "mmr_lambda": 0.5}], **body}
    return ok(client.post("/v1/experiments", json=body), 201)


def exposures(client: Any, experiment_id: int) -> int:
    service = client.app.state.service
    service.experiments.exposures.flush()
    with service.runtime.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Exposure)
                            .where(Exposure.experiment_id == experiment_id)) or 0)


def click(client: Any, user: str, answer: dict[str, Any], kind: str = "view") -> None:
    item = answer["items"][0]["item_id"]
    ok(client.post("/v1/events", json={"events": [{
        "event_id": str(uuid.uuid4()), "user_id": user, "item_id": item, "type": kind,
        "timestamp": datetime.now(UTC).isoformat(),
        "recommendation_id": answer["recommendation_id"]}]}))


@pytest.fixture
def stop_all(catalog: Any) -> Any:
    client, _ = catalog
    yield
    for e in ok(client.get("/v1/experiments")):
        if e["status"] in ("running", "paused", "shipped"):
            ok(client.post(f"/v1/experiments/{e['id']}/stop"))


@pytest.mark.parametrize(("body", "needle"), [
    ({"arms": [{"name": "only"}]}, "arms"),
    ({"mode": "interleave", "arms": [{"name": "a"}, {"name": "b"}, {"name": "c"}]},
     "interleaving"),
    ({"guardrails": [{"metric": "ctr", "max_drop": 0.1, "max_value": 3}]}, "exactly one"),
    ({"arms": [{"name": "a"}, {"name": "b", "profile_id": 999}]}, "999"),
    ({"ramp": [0.5, 0.1]}, "ramp"),
])
def test_bad_experiments_are_refused_with_a_reason(catalog: Any, body: dict[str, Any],
                                                   needle: str) -> None:
    client, _ = catalog
    r = client.post("/v1/experiments", json={"name": "bad", "arms": [{"name": "a"},
                                                                      {"name": "b"}], **body})
    assert r.status_code in (400, 422), r.text
    assert needle in r.text


def test_users_keep_their_arm_and_clicks_are_credited_to_it(catalog: Any, stop_all: Any
                                                            ) -> None:
    client, _ = catalog
    exp = create(client)
    assert exp["status"] == "draft" and exp["history"][0]["action"] == "create"
    ok(client.post(f"/v1/experiments/{exp['id']}/start"))
    clash = client.post(f"/v1/experiments/{create(client)['id']}/start")
    assert clash.status_code == 409 and "already runs" in clash.text
    arm_of: dict[str, str] = {}
    for user in USERS:
        answer = ok(client.get(f"/v1/users/{user}/recommendations", params={"limit": 5}))
        assert answer["experiment"] == exp["id"] and answer["arm"] in ("control", "blend")
        arm_of[user] = answer["arm"]
        if answer["arm"] == "control":  # only control's answers get clicked
            click(client, user, answer)
    assert set(arm_of.values()) == {"control", "blend"}
    for user in USERS[:10]:  # sticky
        again = ok(client.get(f"/v1/users/{user}/recommendations", params={"limit": 5}))
        assert again["arm"] == arm_of[user]
    other = ok(client.get(f"/v1/users/{USERS[0]}/new-items"))
    assert other["experiment"] is None  # new-items is not part of this experiment
    assert exposures(client, exp["id"]) == len(USERS) + 10
    results = ok(client.get(f"/v1/experiments/{exp['id']}/results"))
    arms = results["arms"]
    n_control = sum(a == "control" for a in arm_of.values())
    assert arms["control"]["users"] == n_control
    assert arms["blend"]["users"] == len(USERS) - n_control
    assert arms["control"]["metrics"]["ctr"] > 0 and arms["blend"]["metrics"]["ctr"] == 0
    versus = arms["blend"]["versus_control"]["ctr"]
    assert versus["diff"] < 0 and versus["low"] <= versus["diff"] <= versus["high"]
    assert results["sample_ratio"]["users"] == {"control": n_control,
                                                "blend": len(USERS) - n_control}
    line = ok(client.get(f"/v1/experiments/{exp['id']}/timeline", params={"points": 3}))
    assert [len(p["arms"]) for p in line["points"]] == [2, 2, 2]
    last = line["points"][-1]["arms"]  # the last point is now: the results' figures
    assert last["control"]["mean"] == pytest.approx(arms["control"]["metrics"]["ctr"])
    assert last["blend"]["relative"] == versus["relative"]
    assert "relative" not in last["control"]
    job = ok(client.post(f"/v1/experiments/{exp['id']}/evaluations"), 202)  # offline figures
    assert job["subject"] == f"experiment:{exp['id']}"
    wait_until(lambda: ok(client.get(f"/v1/fusion/evaluations/{job['id']}"))["status"]
               in ("succeeded", "failed"), timeout=120)
    offline = ok(client.get(f"/v1/fusion/evaluations/{job['id']}"))
    assert offline["status"] == "succeeded", offline
    assert {"arm:control", "arm:blend"} <= set(offline["result"])
    bad = client.get(f"/v1/experiments/{exp['id']}/timeline", params={"metric": "fun"})
    assert bad.status_code == 422 and "ctr" in bad.text
    scraped = client.get("/metrics").text  # operators see exposures per arm
    served = {arm: sum(a == arm for a in arm_of.values()) + sum(
        arm_of[u] == arm for u in USERS[:10]) for arm in ("control", "blend")}
    for arm, count in served.items():
        line = f'medley_experiment_exposures_total{{arm="{arm}",experiment="{exp["id"]}"}}'
        assert f"{line} {float(count)}" in scraped
    assert "medley_exposures_dropped 0.0" in scraped
    clicked = f'medley_experiment_clicks{{arm="control",experiment="{exp["id"]}"}}'
    assert f"{clicked} {float(n_control)}" in scraped  # one click per control user
    assert f'medley_experiment_clicks{{arm="blend",experiment="{exp["id"]}"}}' not in scraped


def test_a_guardrail_stops_the_arm_and_its_users_go_back_to_control(catalog: Any,
                                                                     stop_all: Any) -> None:
    client, _ = catalog
    exp = create(client, name="guarded", surfaces=["new-items"], guardrails=[
        {"metric": "p95_ms", "max_value": 0.0001}])
    ok(client.post(f"/v1/experiments/{exp['id']}/start"))
    served = {u: ok(client.get(f"/v1/users/{u}/new-items"))["arm"] for u in USERS}
    bad = [u for u, arm in served.items() if arm == "blend"]
    assert bad
    for k in range(60):  # the latency bound is judged over at least 50 of the arm's answers
        ok(client.get(f"/v1/users/{bad[k % len(bad)]}/new-items"))
    exposures(client, exp["id"])
    stopped = client.app.state.service.experiments.guard()  # what the loop runs each 20 s
    assert [(e, arm) for e, arm, _ in stopped] == [(exp["id"], "blend")]
    after = ok(client.get(f"/v1/experiments/{exp['id']}"))
    assert after["status"] == "stopped"  # only control was left
    assert after["history"][-2]["action"] == "guardrail"
    assert "p95 latency" in after["history"][-2]["detail"]["why"]
    assert ok(client.get(f"/v1/users/{bad[0]}/new-items"))["experiment"] is None


def test_interleaving_merges_both_rankings_and_credits_clicks_by_team(catalog: Any,
                                                                      stop_all: Any) -> None:
    client, ids = catalog
    exp = create(client, name="interleaved", mode="interleave",
                 arms=[{"name": "live"}, {"name": "diverse", "mmr_lambda": 0.1}])
    ok(client.post(f"/v1/experiments/{exp['id']}/start"))
    for user in USERS[:6]:
        liked = ids["space"][0]
        ok(client.post("/v1/events", json={"events": [{
            "event_id": str(uuid.uuid4()), "user_id": user, "item_id": liked, "type": "like",
            "timestamp": datetime.now(UTC).isoformat()}]}))
    wait_until(lambda: client.get("/healthz").json()["recommendations"]["events_applied"] > 0)
    for user in USERS[:6]:
        answer = ok(client.get(f"/v1/users/{user}/recommendations", params={"limit": 6}))
        assert answer["experiment"] == exp["id"] and answer["arm"] is None
        click(client, user, answer)  # the first item
    exposures(client, exp["id"])
    service = client.app.state.service
    with service.runtime.db.session() as s:
        teams = list(s.scalars(select(Exposure.teams)
                               .where(Exposure.experiment_id == exp["id"])))
    assert len(teams) == 6 and all(t and set(t) <= set("ABab") for t in teams)
    # Each user clicked their first item: a win for its team, a tie when both rankings had it.
    want = {"live": sum(t[0] == "A" for t in teams), "diverse": sum(t[0] == "B" for t in teams)}
    verdict = ok(client.get(f"/v1/experiments/{exp['id']}/results"))["interleaving"]
    assert verdict["users"] == 6 and verdict["wins"] == want
    assert verdict["ties"] == sum(t[0].islower() for t in teams)


def test_shipping_serves_the_winner_to_everyone_and_erasure_forgets_exposures(
        catalog: Any, stop_all: Any) -> None:
    client, _ = catalog
    exp = create(client, name="to ship")
    ok(client.post(f"/v1/experiments/{exp['id']}/start"))
    user = "ship-user"  # seen by this experiment only
    ok(client.get(f"/v1/users/{user}/recommendations"))
    assert exposures(client, exp["id"]) == 1
    r = client.post(f"/v1/experiments/{exp['id']}/ship", json={"arm": "nope"})
    assert r.status_code == 422 and "control" in r.text
    shipped = ok(client.post(f"/v1/experiments/{exp['id']}/ship", json={"arm": "blend"}))
    assert shipped["status"] == "shipped" and shipped["winner"] == "blend"
    assert {ok(client.get(f"/v1/users/{u}/recommendations"))["arm"] for u in USERS} == {"blend"}
    assert exposures(client, exp["id"]) == 1  # a shipped arm is no longer measured
    receipt = ok(client.delete(f"/v1/users/{user}"))
    assert receipt["erased"]["exposures"] == 1
    assert exposures(client, exp["id"]) == 0


def test_similar_serves_an_arm_only_to_a_named_user(catalog: Any, stop_all: Any) -> None:
    client, ids = catalog
    exp = create(client, name="similar items", surfaces=["similar"])
    ok(client.post(f"/v1/experiments/{exp['id']}/start"))
    item = ids["cooking"][0]
    anonymous = ok(client.get(f"/v1/items/{item}/similar"))
    assert anonymous["experiment"] is None and anonymous["items"]
    arms = {ok(client.get(f"/v1/items/{item}/similar", params={"user_id": u}))["arm"]
            for u in USERS}
    assert arms == {"control", "blend"}
    assert exposures(client, exp["id"]) == len(USERS)  # the anonymous answer is not logged
