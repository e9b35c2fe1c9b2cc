"""Privacy on a running app: erasure leaves nothing behind, users' own controls ("not
interested", pausing history, reset), and differentially private analytics with a budget."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import inspect, select, text

from medley import erasures
from medley.config import Precision, Settings
from medley.db.models import CollabModelRecord
from medley.keys import Role
from medley.recs.collab import CollabModel
from tests.api.conftest import wait_until
from tests.api.test_recs_api import cluster_of, event, top
from tests.conftest import ADMIN_KEY


@pytest.fixture(scope="module")
def rec_settings(tmp_path_factory: pytest.TempPathFactory, tiny_clip: dict[str, Any]) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("privacy-data"),
                    clip_precision=Precision.FP32, events_poll_interval_s=0.1,
                    collab_retrain_interval_s=2.0, bootstrap_admin_key=SecretStr(ADMIN_KEY),
                    analytics_epsilon=1.0, analytics_budget=3.0, **tiny_clip)


def key(client: Any, role: Role) -> dict[str, str]:
    _, secret = client.app.state.service.keys.create(role, f"{role.value}-{uuid.uuid4().hex[:6]}")
    return {"Authorization": f"Bearer {secret}"}


def ids_of(body: dict[str, Any]) -> list[str]:
    return [i["item_id"] for i in body["items"]]


def db_mentions(client: Any, needle: str) -> list[str]:
    """Every (table, column) of any table whose value holds `needle`, stored models decoded."""
    db = client.app.state.service.recs.db
    hits = []
    with db.engine.connect() as c:
        for table in inspect(db.engine).get_table_names():
            for row in c.execute(text(f'SELECT * FROM "{table}"')).mappings():
                for col, value in row.items():
                    found = (needle.encode() in value if isinstance(value, bytes)
                             else needle in json.dumps(value, default=str))
                    if found:
                        hits.append(f"{table}.{col}")
    with db.session() as s:
        for blob in s.scalars(select(CollabModelRecord.blob)):
            if needle in CollabModel.from_bytes(blob).user_ids:
                hits.append("collab_models.blob")
    return hits


def model_has(client: Any, user: str) -> bool:
    with client.app.state.service.recs.db.session() as s:
        latest = s.scalar(select(CollabModelRecord.blob).order_by(CollabModelRecord.id.desc()))
    return latest is not None and user in CollabModel.from_bytes(latest).user_ids


# --- erasure -------------------------------------------------------------------------------
def test_after_erasure_no_endpoint_and_no_table_holds_anything_of_the_user(catalog):
    client, ids = catalog
    recs = client.app.state.service.recs
    clusters = cluster_of(ids)
    user, newcomer = f"erase-{uuid.uuid4().hex[:8]}", f"fresh-{uuid.uuid4().hex[:8]}"
    solo = ids["football"][11]  # nobody else ever touches it
    surface = f"surf-{uuid.uuid4().hex[:6]}"
    liked = ids["cooking"][:5]
    crowd = [event(f"crowd-{k}", i) for k in range(3) for i in liked]  # so only `solo` is theirs
    assert client.post("/v1/events", json={"events": crowd}).json()["accepted"] == 15
    batch = [event(user, i, recommendation_id="rec-of-theirs") for i in liked]
    batch += [event(user, solo, "share", context={"surface": surface}),
              event(user, ids["space"][0], "skip")]
    assert client.post("/v1/events", json={"events": batch}).json()["accepted"] == 7
    assert client.put(f"/v1/users/{user}/preferences",
                      json={"liked_items": [ids["cooking"][6]], "text": "baking bread",
                            "disliked_tags": ["space"]}).status_code == 200
    assert client.post(f"/v1/users/{user}/not-interested", json={"tag": "football-0"}
                       ).status_code == 200

    def personal() -> bool:
        body = top(client, f"/v1/users/{user}/recommendations", limit=10)
        return sum(clusters[i] == "cooking" for i in ids_of(body)) >= 5

    wait_until(personal, timeout=5)
    wait_until(lambda: recs.behavior.trending_top(1, {"surface": surface})[:1] == [solo])
    wait_until(lambda: model_has(client, user), timeout=60)  # the ALS model learnt them too

    assert recs.answers.count(lambda u: u == user) > 0  # their answers are cached
    wait_until(lambda: user in recs.rec.user_lists)  # and their nearline candidates found
    assert client.delete(f"/v1/users/{user}", headers=key(client, Role.CLIENT)
                         ).status_code == 403  # erasure is for admins only
    r = client.delete(f"/v1/users/{user}")
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["kind"] == "erase" and receipt["user_id"] == user and receipt["receipt_id"]
    assert receipt["erased"] == {"events": 7, "recommendation_ids": 1, "exposures": 0,
                                 "collab_factors": True, "collab_items": 1, "preferences": True,
                                 "not_interested": 1,
                                 "history_paused": False, "behavior_state": True}
    assert receipt["retrain_scheduled"] is True and receipt["erased_at"]

    # Every serving process (here one) applies the notice: state rebuilt without them.
    wait_until(lambda: client.get("/healthz").json()["recommendations"]["erasures_applied"] >= 1)
    assert recs.behavior.user(user) is None
    assert recs.answers.count(lambda u: u == user) == 0  # no cached answer outlives them
    assert user not in recs.rec.user_lists  # nor their nearline candidates
    # nor their id among the users whose wishes a request reads (`medley/recs/stated.py`)
    wait_until(lambda: not recs.sync.stated.may_have(user))
    assert recs.behavior.interactions.get(solo, 0) == 0
    assert recs.behavior.audience.get(solo, 0) == 0  # new to the audience again
    assert solo not in recs.behavior.trending_top(50, {"surface": surface})
    assert solo not in recs.behavior.popularity_top(50)
    assert not recs.behavior.co_engagement(solo, 10)
    for path in (f"/v1/users/{user}/recommendations", f"/v1/users/{user}/new-items"):
        wait_until(lambda p=path: ids_of(top(client, p, limit=10)) == ids_of(
            top(client, p.replace(user, newcomer), limit=10)))
    assert ids_of(top(client, "/v1/search", q="baking bread", user_id=user)) == ids_of(
        top(client, "/v1/search", q="baking bread"))
    for item in top(client, f"/v1/users/{newcomer}/recommendations", surface=surface)["items"]:
        assert item["item_id"] != solo or "trending" not in item["reasons"]
    assert solo not in dict(recs.behavior.co_engagement(liked[0], 50))
    assert client.get(f"/v1/users/{user}/preferences").json() == {
        "user_id": user, "liked_items": [], "text": None, "disliked_tags": []}
    assert client.get(f"/v1/users/{user}/controls").json() == {
        "user_id": user, "history_paused": False, "not_interested": {"items": [], "tags": []}}
    wait_until(lambda: not model_has(client, user), timeout=30)
    assert db_mentions(client, user) == []
    assert db_mentions(client, "rec-of-theirs") == []

    again = client.delete(f"/v1/users/{user}").json()  # idempotent: a receipt of zeros
    assert not any(again["erased"].values()) and again["receipt_id"] != receipt["receipt_id"]
    assert client.delete("/v1/users/never-seen-anyone").status_code == 200


# --- users' own controls -------------------------------------------------------------------
def majority(values: list[str]) -> str:
    return Counter(values).most_common(1)[0][0]


def clusters_of(client: Any, user: str, ids: dict[str, list[str]]) -> list[str]:
    """The topics of what the user is offered, ordered: what their taste drives."""
    clusters = cluster_of(ids)
    return sorted(clusters[i] for i in ids_of(top(client, f"/v1/users/{user}/recommendations")))


def test_not_interested_items_and_tags_never_come_back_until_undone(catalog):
    client, ids = catalog
    user = f"ni-{uuid.uuid4().hex[:8]}"
    tags = {i: t for i, t in zip(ids["space"], [f"space-{k % 3}" for k in range(12)],
                                 strict=True)}
    assert client.post("/v1/events", json={"events": [event(user, i) for i in ids["space"][:3]]}
                       ).json()["accepted"] == 3
    wait_until(lambda: top(client, f"/v1/users/{user}/recommendations")["items"][0]["item_id"]
               in ids["space"])
    first = top(client, f"/v1/users/{user}/recommendations")["items"][0]["item_id"]
    found = ids_of(top(client, "/v1/search", q="rocket launch astronauts orbit", limit=20))
    r = client.post(f"/v1/users/{user}/not-interested", json={"item_id": first})
    assert r.status_code == 200 and r.json()["not_interested"]["items"] == [first]
    hidden_tag = "space-1"
    r = client.post(f"/v1/users/{user}/not-interested", json={"tag": hidden_tag})
    assert r.json()["not_interested"] == {"items": [first], "tags": [hidden_tag]}

    def shown() -> set[str]:
        out = set()
        for path, params in ((f"/v1/users/{user}/recommendations", {"limit": 30}),
                             (f"/v1/users/{user}/new-items", {"limit": 30}),
                             ("/v1/search", {"q": "rocket launch astronauts orbit",
                                             "user_id": user, "limit": 30})):
            out |= set(ids_of(top(client, path, **params)))
        return out

    seen = shown()
    assert first not in seen and not {i for i in seen if tags.get(i) == hidden_tag}
    assert set(found) & ({first} | {i for i, t in tags.items() if t == hidden_tag})  # not empty
    assert first in ids_of(top(client, "/v1/search", q="rocket launch astronauts orbit",
                                limit=30)) or first not in found  # others still see it

    r = client.delete(f"/v1/users/{user}/not-interested", params={"item_id": first})
    assert r.json()["not_interested"] == {"items": [], "tags": [hidden_tag]}
    client.delete(f"/v1/users/{user}/not-interested", params={"tag": hidden_tag})
    assert client.get(f"/v1/users/{user}/controls").json()["not_interested"] == {
        "items": [], "tags": []}
    assert client.delete(f"/v1/users/{user}/not-interested", params={"tag": "never-set"}
                         ).status_code == 200  # undoing what is not there changes nothing

    for bad in ({}, {"item_id": first, "tag": "x"}, {"item_id": ""}, {"colour": "red"}):
        r = client.post(f"/v1/users/{user}/not-interested", json=bad)
        assert r.status_code == 422, bad
    r = client.post(f"/v1/users/{user}/not-interested", json={"item_id": "no-such-item"})
    assert r.status_code == 422 and "does not exist" in r.json()["error"]["message"]
    assert client.delete(f"/v1/users/{user}/not-interested").status_code == 422


def test_a_paused_history_stores_nothing_and_changes_nothing(catalog):
    client, ids = catalog
    user, other = f"pause-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    client_key = key(client, Role.CLIENT)
    assert client.post("/v1/events", json={"events": [event(user, ids["football"][0])]},
                       headers=client_key).json()["accepted"] == 1
    wait_until(lambda: client.app.state.service.recs.behavior.user(user) is not None)
    clusters_before = clusters_of(client, user, ids)
    r = client.put(f"/v1/users/{user}/history", json={"paused": True}, headers=client_key)
    assert r.status_code == 200 and r.json()["history_paused"] is True
    batch = [event(user, i) for i in ids["cooking"][:6]] + [event(other, ids["cooking"][0])]
    body = client.post("/v1/events", json={"events": batch}, headers=client_key).json()
    assert body == {"accepted": 1, "duplicates": [], "rejected": [], "paused": 6, "repeated": []}
    only_paused = client.post("/v1/events", json={"events": [event(user, ids["space"][0])]})
    assert only_paused.status_code == 200 and only_paused.json()["paused"] == 1
    with client.app.state.service.recs.db.session() as s:
        stored = s.execute(text("SELECT count(*) FROM events WHERE user_id = :u"),
                           {"u": user}).scalar()
    assert stored == 1  # accepted stays == stored
    behavior = client.app.state.service.recs.behavior
    wait_until(lambda: behavior.user(other) is not None)  # the batch was folded in
    state = behavior.user(user)
    assert state is not None and state.events == 1
    assert [i for i, _, _ in state.positives] == [ids["football"][0]]
    # Others' events move popularity a little; this user's taste did not move at all.
    assert majority(clusters_of(client, user, ids)) == majority(clusters_before)
    assert client.put(f"/v1/users/{user}/history", json={"paused": "yes"}).status_code == 422
    client.put(f"/v1/users/{user}/history", json={"paused": False})
    assert client.post("/v1/events", json={"events": [event(user, ids["space"][1])]}
                       ).json()["accepted"] == 1


def test_a_reset_starts_recommendations_afresh_and_keeps_stated_wishes(catalog):
    client, ids = catalog
    user = f"reset-{uuid.uuid4().hex[:8]}"
    client.post("/v1/events", json={"events": [event(user, i) for i in ids["cooking"][:4]]})
    client.put(f"/v1/users/{user}/preferences", json={"text": "football matches"})
    client.post(f"/v1/users/{user}/not-interested", json={"item_id": ids["football"][1]})

    def liked_reason() -> bool:
        items = top(client, f"/v1/users/{user}/recommendations")["items"]
        return any(r.startswith("because you liked") for i in items for r in i["reasons"])

    wait_until(liked_reason)
    r = client.post(f"/v1/users/{user}/reset", headers=key(client, Role.CLIENT))
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["kind"] == "reset" and receipt["erased"]["events"] == 4
    assert "preferences" not in receipt["erased"]
    assert client.app.state.service.recs.behavior.user(user) is None  # at once, here
    body = top(client, f"/v1/users/{user}/recommendations")
    assert not liked_reason()
    assert ids["football"][1] not in ids_of(body)
    assert client.get(f"/v1/users/{user}/preferences").json()["text"] == "football matches"
    assert client.get(f"/v1/users/{user}/controls").json()["not_interested"]["items"] == [
        ids["football"][1]]
    # Once every process applied the reset's notice, their wishes still apply: a reset keeps
    # the user among those whose stated wishes a request reads.
    recs = client.app.state.service.recs
    with recs.db.session() as s:
        notice = erasures.latest_notice(s)
    wait_until(lambda: recs.sync.erasures_seen >= notice)
    assert recs.sync.stated.may_have(user)
    assert ids["football"][1] not in ids_of(top(client, f"/v1/users/{user}/recommendations"))


# --- analytics -----------------------------------------------------------------------------
def test_item_analytics_are_noisy_counts_within_a_budget_per_key(catalog):
    client, ids = catalog
    item = ids["space"][5]
    editor, content = key(client, Role.EDITOR), key(client, Role.CONTENT)
    assert client.get(f"/v1/analytics/items/{item}",
                      headers=key(client, Role.CLIENT)).status_code == 403
    assert client.get("/v1/analytics/items/no-such-item", headers=editor).status_code == 404
    lefts = []
    for _ in range(3):  # budget 3, a query costs 1 (the unknown item above cost nothing)
        r = client.get(f"/v1/analytics/items/{item}", headers=editor)
        assert r.status_code == 200, r.text
        body = r.json()
        counts = body["users_by_event_type"]
        assert set(counts) == {"impression", "view", "like", "dislike", "skip", "complete",
                               "share"}
        assert all(isinstance(v, int) and v >= 0 for v in counts.values())
        p = body["privacy"]
        assert body["noisy"] is True and "noisy" in body["note"]
        assert p["epsilon_spent"] == 1.0 and p["epsilon_per_count"] == pytest.approx(1 / 7,
                                                                                     abs=1e-6)
        assert p["mechanism"].startswith("discrete Laplace") and p["noise_stddev"] > 1
        lefts.append(p["budget_left"])
    assert lefts == [2.0, 1.0, 0.0]
    r = client.get(f"/v1/analytics/items/{item}", headers=editor)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "budget_exhausted"
    assert "budget" in r.json()["error"]["message"] and int(r.headers["Retry-After"]) >= 1
    assert client.get(f"/v1/analytics/items/{item}", headers=content).status_code == 200
    assert client.get(f"/v1/analytics/items/{item}").status_code == 200  # admin: own budget
