"""The fusion editor on a running app: profiles, preview, publish (a real re-fusion job on the
in-process worker), rollback, audit log, and refusals.

The catalog's items have two modalities that disagree: metadata text (MiniLM: topical) and
CLIP text (a tiny random CLIP: unrelated to topic). Weighting CLIP text alone must therefore
change every item's neighbours, which is what an editor would see.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.api.conftest import wait_until

TEXT_ONLY = {"image": 1, "video": 1, "speech": 1, "text": 1, "clip_text": 0}
CLIP_ONLY = {"image": 1, "video": 1, "speech": 1, "text": 0, "clip_text": 1}
WHO: dict[str, str] = {}  # an editor key named "ana": the audit log names the key


@pytest.fixture(autouse=True, scope="module")
def _editor_key(catalog: Any) -> None:
    client, _ = catalog
    made = client.post("/v1/keys", json={"role": "editor", "name": "ana"})
    assert made.status_code == 201, made.text
    WHO["Authorization"] = f"Bearer {made.json()['key']}"


def ok(r: Any, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body


def similar_ids(client: Any, item: str) -> list[str]:
    return [i["item_id"] for i in ok(client.get(f"/v1/items/{item}/similar",
                                                params={"limit": 10}))["items"]]


def finish(client: Any, job: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
        job = ok(client.get(f"/v1/fusion/jobs/{job['id']}"))
    return job


def live_profile(client: Any) -> int:
    return int(ok(client.get("/v1/fusion/profiles"))["active"]["profile_id"])


def test_the_service_starts_on_a_default_profile_from_the_settings(catalog):
    client, _ = catalog
    body = ok(client.get("/v1/fusion/profiles"))
    default = [p for p in body["profiles"] if p["name"] == "default"]
    assert len(default) == 1 and default[0]["active"] and default[0]["published"]
    assert body["active"]["weights"]["text"] == 1.0
    assert body["active"]["weights"]["clip_text"] == 0.5
    assert body["job"] is None


def test_a_profile_keeps_its_versions_and_the_log_says_what_changed(catalog):
    client, _ = catalog
    v1 = ok(client.post("/v1/fusion/profiles", json={"name": "dialogue", "weights": TEXT_ONLY},
                        headers=WHO), 201)
    v2 = ok(client.post("/v1/fusion/profiles",
                        json={"name": "dialogue", "weights": {**TEXT_ONLY, "speech": 3}},
                        headers=WHO), 201)
    assert (v1["version"], v2["version"]) == (1, 2) and v1["id"] != v2["id"]
    assert not v2["active"] and not v2["published"]
    assert ok(client.get(f"/v1/fusion/profiles/{v1['id']}"))["weights"]["speech"] == 1.0
    log = ok(client.get("/v1/fusion/history"))["entries"]
    created = next(e for e in log if e["profile_id"] == v2["id"])
    assert created["action"] == "create" and created["actor"].startswith("ana (")
    assert created["detail"]["changed"] == {"speech": [1.0, 3.0]}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"name": "x", "weights": {"text": -1}}, "between 0 and 100"),
        ({"name": "x", "weights": {"text": 1000}}, "between 0 and 100"),
        ({"name": "x", "weights": {"text": 0, "speech": 0}}, "above zero"),
        ({"name": "x", "weights": {"smell": 1}}, "weights.smell"),
        ({"name": "x", "weights": {"text": 1}, "surfaces": {"home": {"text": 1}}}, "surface"),
        ({"name": "<script>", "weights": {"text": 1}}, "name"),
        ({"name": "", "weights": {"text": 1}}, "name"),
        ({"weights": {"text": 1}}, "name"),
        ({"name": "x", "weights": {"text": 1}, "extra": 1}, "extra"),
    ],
)
def test_bad_profiles_are_refused_with_the_field_named(catalog, body, needle):
    client, _ = catalog
    before = len(ok(client.get("/v1/fusion/profiles"))["profiles"])
    err = ok(client.post("/v1/fusion/profiles", json=body), 422)["error"]
    assert needle in err["message"] or needle in str(err.get("details"))
    assert len(ok(client.get("/v1/fusion/profiles"))["profiles"]) == before


def test_unknown_profiles_and_jobs_are_404(catalog):
    client, _ = catalog
    assert client.get("/v1/fusion/profiles/99999").status_code == 404
    assert client.post("/v1/fusion/profiles/99999/publish").status_code == 404
    assert client.post("/v1/fusion/profiles/99999/preview", json={"items": ["x"]}
                       ).status_code == 404
    assert client.get("/v1/fusion/jobs/nope").status_code == 404


def test_preview_shows_the_candidate_beside_the_live_answer(catalog):
    client, ids = catalog
    item = ids["space"][0]
    body = ok(client.post("/v1/fusion/preview", json={"weights": CLIP_ONLY, "items": [item]}))
    assert body["candidate"]["profile_id"] is None
    [res] = body["results"]
    assert res["kind"] == "item" and res["surface"] == "similar" and res["title"]
    before, after = res["before"], res["after"]
    assert len(before) == len(after) == 10
    # Live: topical neighbours, explained by the text space. Candidate: CLIP text alone.
    space = set(ids["space"])
    assert sum(r["item_id"] in space for r in before) >= 8
    assert all(r["contributions"]["text"] > 0 for r in before)
    assert all(r["contributions"]["text"] == 0 for r in after)
    assert res["overlap_at_10"] < 1.0
    assert res["overlap_at_10"] == len({r["item_id"] for r in before}
                                       & {r["item_id"] for r in after}) / 10
    for r in after:  # a rank shift is the rank under the live profile minus the rank here
        was = next((b["rank"] for b in before if b["item_id"] == r["item_id"]), None)
        assert r["shift"] == (None if was is None else was - r["rank"])
    # The live answer is what the preview calls "before".
    assert similar_ids(client, item) == [r["item_id"] for r in before]


def test_preview_needs_something_to_show_and_refuses_unknown_items(catalog):
    client, ids = catalog
    assert "pick at least one" in ok(client.post(
        "/v1/fusion/preview", json={"weights": CLIP_ONLY}), 422)["error"]["message"]
    assert client.post("/v1/fusion/preview",
                       json={"weights": CLIP_ONLY, "items": ["no-such"]}).status_code == 404
    assert client.post("/v1/fusion/preview",
                       json={"weights": CLIP_ONLY, "items": [ids["space"][0]] * 11}
                       ).status_code == 422


def test_publish_refuses_every_item_then_switches_and_rollback_is_instant(catalog):
    client, ids = catalog
    item = ids["cooking"][0]
    original = similar_ids(client, item)
    cache = client.app.state.service.recs.answers

    def served_from_cache() -> bool:  # (a model retrained meanwhile starts a new generation)
        hits = cache.hits
        return similar_ids(client, item) == original and cache.hits == hits + 1

    wait_until(served_from_cache)  # until the switch below
    default_id = live_profile(client)
    preview = ok(client.post("/v1/fusion/preview", json={"weights": CLIP_ONLY, "items": [item]}))
    expected = [r["item_id"] for r in preview["results"][0]["after"]]

    profile = ok(client.post("/v1/fusion/profiles", json={"name": "clip", "weights": CLIP_ONLY},
                             headers=WHO), 201)
    job = ok(client.post(f"/v1/fusion/profiles/{profile['id']}/publish", headers=WHO), 202)
    assert job["action"] == "publish" and job["total"] == 36
    job = finish(client, job)
    assert job["status"] == "succeeded" and job["done"] == 36 and job["progress"] == 1.0
    wait_until(lambda: live_profile(client) == profile["id"])
    # Serving moved to the new vectors: what the preview promised is what clients get.
    wait_until(lambda: similar_ids(client, item) == expected, timeout=5)
    assert ok(client.get(f"/v1/fusion/profiles/{profile['id']}"))["published"]

    # Publishing the live profile again is refused plainly.
    assert client.post(f"/v1/fusion/profiles/{profile['id']}/publish").status_code == 409

    # The previous profile is still on standby: rolling back needs no re-fusion.
    back = ok(client.post(f"/v1/fusion/profiles/{default_id}/rollback", headers=WHO), 202)
    assert back["status"] == "succeeded" and back["action"] == "rollback"
    wait_until(lambda: live_profile(client) == default_id)
    wait_until(lambda: similar_ids(client, item) == original, timeout=5)

    log = ok(client.get("/v1/fusion/history", params={"limit": 10}))["entries"]
    actions = [(e["action"], e["profile_id"]) for e in log[:4]]
    assert actions == [("switch", default_id), ("rollback", default_id),
                       ("switch", profile["id"]), ("publish", profile["id"])]
    assert all(e["actor"].startswith("ana (") for e in log[:4])


def test_rollback_to_a_version_never_published_is_refused(catalog):
    client, _ = catalog
    draft = ok(client.post("/v1/fusion/profiles", json={"name": "draft", "weights": TEXT_ONLY}),
               201)
    err = ok(client.post(f"/v1/fusion/profiles/{draft['id']}/rollback"), 409)["error"]
    assert "never published" in err["message"]


def test_evaluate_reports_metrics_for_both_profiles_on_the_current_events(catalog):
    from datetime import UTC, datetime, timedelta

    client, ids = catalog
    empty = ok(client.post("/v1/fusion/evaluate", json={"weights": CLIP_ONLY}))
    assert empty["users"] == 0 and empty["active"]["ndcg_at_10"] is None and empty["note"]

    start = datetime.now(UTC) - timedelta(hours=2)
    events = []
    for u in range(12):  # each user likes one topic, one item a minute
        topic = list(ids)[u % len(ids)]
        for k, item in enumerate(ids[topic][u % 3: u % 3 + 8]):
            at = start + timedelta(minutes=u * 10 + k)
            events.append({"event_id": f"ev-{u}-{k}", "user_id": f"fan-{u}", "item_id": item,
                           "type": "like", "timestamp": at.isoformat()})
    assert ok(client.post("/v1/events", json={"events": events}))["accepted"] == len(events)
    wait_until(lambda: client.get("/healthz").json()["recommendations"]["events_applied"]
               >= len(events))
    profile = ok(client.post("/v1/fusion/profiles", json={"name": "eval", "weights": CLIP_ONLY}),
                 201)
    body = ok(client.post(f"/v1/fusion/profiles/{profile['id']}/evaluate"))
    assert body["events"] >= len(events) and body["users"] >= 5
    for side in ("active", "candidate"):
        assert 0.0 <= body[side]["ndcg_at_10"] <= 1.0
        assert 0.0 < body[side]["coverage_at_10"] <= 1.0
    # The same weights as the live profile measure the same (one split, one fitted state);
    # which weights win is tested on a controlled catalog in tests/unit/test_editor_evaluate.py.
    live = ok(client.get("/v1/fusion/profiles"))["active"]["weights"]
    same = ok(client.post("/v1/fusion/evaluate", json={"weights": live}))
    assert same["candidate"] == same["active"] and same["users"] == body["users"]

    # As a background job: answered at once, then the same figures with progress at 1.
    job = ok(client.post(f"/v1/fusion/profiles/{profile['id']}/evaluations"), 202)
    assert job["status"] in ("queued", "running", "succeeded")
    assert job["subject"] == f"profile:{profile['id']}"
    wait_until(lambda: ok(client.get(f"/v1/fusion/evaluations/{job['id']}"))["status"]
               in ("succeeded", "failed"), timeout=120)
    done = ok(client.get(f"/v1/fusion/evaluations/{job['id']}"))
    assert done["status"] == "succeeded" and done["progress"] == 1.0, done
    assert {k: done["result"][k] for k in ("active", "candidate", "users")} == \
        {k: body[k] for k in ("active", "candidate", "users")}
    assert client.get("/v1/fusion/evaluations/no-such-job").status_code == 404


def test_preview_covers_users_and_queries_and_honours_surface_overrides(catalog):
    client, ids = catalog
    fan = "surface-fan"
    likes = [{"event_id": f"sf-{k}", "user_id": fan, "item_id": item, "type": "like",
              "timestamp": "2026-01-01T00:00:00Z"} for k, item in enumerate(ids["space"][:3])]
    ok(client.post("/v1/events", json={"events": likes}))
    wait_until(lambda: client.get("/healthz").json()["recommendations"]["events_applied"] >= 3)
    draft = {"weights": TEXT_ONLY, "surfaces": {"similar": CLIP_ONLY, "search": CLIP_ONLY}}
    body = ok(client.post("/v1/fusion/preview", json={
        **draft, "items": [ids["space"][1]], "users": [fan], "queries": ["rocket launch"],
        "limit": 5}))
    by_kind = {r["kind"]: r for r in body["results"]}
    assert set(by_kind) == {"item", "user", "query"}
    assert [by_kind[k]["surface"] for k in ("item", "user", "query")] == [
        "similar", "recommendations", "search"]
    # The similar and search overrides weigh CLIP text alone; recommendations keep the text space.
    assert all(set(r["contributions"]) <= {"clip_text"} or r["contributions"].get("text") == 0
               for r in by_kind["item"]["after"])
    assert all(set(r["contributions"]) == {"clip_text"} for r in by_kind["query"]["after"])
    assert {"text"} <= set(by_kind["query"]["before"][0]["contributions"])
    assert all(r["contributions"]["clip_text"] == 0 for r in by_kind["user"]["after"])
    for res in body["results"]:
        assert 1 <= len(res["after"]) <= 5 and 0.0 <= res["overlap_at_10"] <= 1.0
