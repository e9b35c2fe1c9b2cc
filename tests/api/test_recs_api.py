"""Recommendation routes on a running app with a real-text-model catalog of three topics."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.api.conftest import wait_until


def now_iso(offset_s: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat()


def event(user: str, item: str, kind: str = "like", **extra: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "user_id": user, "item_id": item, "type": kind,
            "timestamp": now_iso(), **extra}


def cluster_of(ids: dict[str, list[str]]) -> dict[str, str]:
    return {i: c for c, members in ids.items() for i in members}


def top(client: Any, url: str, **params: Any) -> dict[str, Any]:
    r = client.get(url, params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# --- events --------------------------------------------------------------------------------
def test_a_batch_keeps_its_valid_events_and_says_why_each_bad_one_was_refused(catalog):
    client, ids = catalog
    item = ids["space"][0]
    batch = [
        event("ev-user", item, "view", value=42.0, context={"device": "tv"}),
        event("ev-user", "no-such-item"),
        {**event("ev-user", item), "type": "teleport"},
        {**event("ev-user", item), "timestamp": now_iso(86400)},
        {k: v for k, v in event("ev-user", item).items() if k != "user_id"},
        "not an object",
        event("ev-user", item, "like"),
    ]
    r = client.post("/v1/events", json={"events": batch})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 2
    reasons = {rej["index"]: rej["reason"] for rej in body["rejected"]}
    assert set(reasons) == {1, 2, 3, 4, 5}
    assert "does not exist" in reasons[1]
    assert reasons[2].startswith("type")
    assert "future" in reasons[3]
    assert reasons[4].startswith("user_id")
    assert "object" in reasons[5]

    again = client.post("/v1/events", json={"events": [batch[0], batch[6]]}).json()
    assert again["accepted"] == 0  # idempotent: the same event ids are not counted twice
    assert sorted(again["duplicates"]) == sorted([batch[0]["event_id"], batch[6]["event_id"]])


def test_a_batch_with_nothing_valid_is_422_and_an_oversized_one_413(catalog):
    client, _ = catalog
    r = client.post("/v1/events", json={"events": [event("u", "missing")]})
    assert r.status_code == 422
    assert "does not exist" in r.json()["error"]["message"]
    big = [event("u", "x") for _ in range(1001)]
    r = client.post("/v1/events", json={"events": big})
    assert r.status_code == 413 and "1000" in r.json()["error"]["message"]
    for body in ({"events": "nope"}, {"wrong": []}, [1, 2]):
        assert client.post("/v1/events", json=body).status_code == 422
    r = client.post("/v1/events", content=b'{"events": [', headers={"content-type":
                                                                   "application/json"})
    assert r.status_code == 422  # truncated JSON


# --- the loop ------------------------------------------------------------------------------
def test_a_new_user_who_likes_one_topic_gets_that_topic_within_two_seconds(catalog):
    client, ids = catalog
    clusters = cluster_of(ids)
    user = f"loop-{uuid.uuid4().hex[:6]}"
    liked = ids["cooking"][:5]
    r = client.post("/v1/events", json={"events": [event(user, i) for i in liked]})
    assert r.json()["accepted"] == 5
    sent = time.monotonic()

    def cooking_heavy() -> bool:
        items = top(client, f"/v1/users/{user}/recommendations", limit=10)["items"]
        return sum(clusters[i["item_id"]] == "cooking" for i in items) >= 6

    wait_until(cooking_heavy, timeout=2.0)
    assert time.monotonic() - sent <= 2.5
    body = top(client, f"/v1/users/{user}/recommendations", limit=10)
    got = [i["item_id"] for i in body["items"]]
    assert len(got) == 10 and len(set(got)) == 10
    assert not set(got) & set(liked)  # what they consumed is not offered again
    assert body["recommendation_id"] and body["fallback"] is False
    assert any(r.startswith("because you liked") for i in body["items"] for r in i["reasons"])
    assert all(i["reasons"] for i in body["items"])


def test_likes_in_a_context_make_an_item_trend_there_for_a_user_with_no_history(catalog):
    client, ids = catalog
    item = ids["football"][5]
    surface = f"surface-{uuid.uuid4().hex[:6]}"
    likes = [event(f"fan-{k}", item, context={"surface": surface}) for k in range(4)]
    assert client.post("/v1/events", json={"events": likes}).json()["accepted"] == 4

    def trending_first() -> bool:
        items = top(client, "/v1/users/nobody-yet/recommendations", surface=surface)["items"]
        return bool(items) and items[0]["item_id"] == item

    wait_until(trending_first, timeout=2.0)
    first = top(client, "/v1/users/nobody-yet/recommendations", surface=surface)["items"][0]
    assert "trending" in first["reasons"]


def test_an_unknown_user_still_gets_a_full_answer(catalog):
    client, _ = catalog
    body = top(client, f"/v1/users/{uuid.uuid4()}/recommendations", limit=10)
    assert len(body["items"]) == 10 and all(i["reasons"] for i in body["items"])


# --- similar -------------------------------------------------------------------------------
def test_similar_items_share_the_topic_and_honour_filters(catalog):
    client, ids = catalog
    clusters = cluster_of(ids)
    item = ids["space"][0]
    items = top(client, f"/v1/items/{item}/similar", limit=8)["items"]
    assert item not in {i["item_id"] for i in items}
    assert sum(clusters[i["item_id"]] == "space" for i in items) >= 6
    assert all(i["reasons"] for i in items)

    other = top(client, f"/v1/items/{item}/similar", exclude_tags="space")["items"]
    assert other and all(clusters[i["item_id"]] != "space" for i in other)
    only = top(client, f"/v1/items/{item}/similar", include_tags="cooking")["items"]
    assert only and all(clusters[i["item_id"]] == "cooking" for i in only)
    pg13 = {i for c in ids.values() for k, i in enumerate(c) if k % 4 == 3}
    young = top(client, f"/v1/items/{item}/similar", max_age_rating="12", limit=30)["items"]
    assert young and not {i["item_id"] for i in young} & pg13


def test_similar_refuses_unknown_items_and_bad_filters(catalog):
    client, ids = catalog
    assert client.get("/v1/items/nope/similar").status_code == 404
    item = ids["space"][0]
    assert client.get(f"/v1/items/{item}/similar", params={"max_age_rating": "weird"}
                      ).status_code == 422
    assert client.get(f"/v1/items/{item}/similar", params={"limit": 0}).status_code == 422
    assert client.get(f"/v1/items/{item}/similar", params={"limit": 1000}).status_code == 422
    r = client.get(f"/v1/items/{item}/similar", params={
        "published_after": "2030-01-01T00:00:00Z", "published_before": "2020-01-01T00:00:00Z"})
    assert r.status_code == 422


def test_co_engagement_lifts_an_item_from_another_topic(catalog):
    client, ids = catalog
    a, b = ids["space"][3], ids["cooking"][9]
    top(client, f"/v1/items/{a}/similar", limit=10)  # cached: the events below must show anyway
    batch = [event(f"pair-{k}", i) for k in range(8) for i in (a, b)]
    assert client.post("/v1/events", json={"events": batch}).json()["accepted"] == 16

    def lifted() -> bool:
        items = top(client, f"/v1/items/{a}/similar", limit=10)["items"]
        return any(i["item_id"] == b and any("also liked" in r for r in i["reasons"])
                   for i in items)

    wait_until(lifted, timeout=5.0)


# --- new items, search, preferences --------------------------------------------------------
def test_new_items_leave_out_items_older_than_the_age_limit(catalog, rec_settings):
    from sqlalchemy import create_engine, text

    client, ids = catalog
    old = ids["football"][:2]
    engine = create_engine(rec_settings.resolved_database_url)
    past = datetime.now(UTC) - timedelta(days=60)
    with engine.begin() as c:
        for item in old:
            c.execute(text("UPDATE items SET created_at = :t, updated_at = :u WHERE id = :i"),
                      {"t": past, "u": datetime.now(UTC), "i": item})
    engine.dispose()

    def excluded() -> bool:
        got = top(client, "/v1/users/new-items-user/new-items", limit=50)["items"]
        return len(got) >= 30 and not {i["item_id"] for i in got} & set(old)

    wait_until(excluded, timeout=5.0)
    got = top(client, "/v1/users/new-items-user/new-items", limit=50)["items"]
    assert all("new" in i["reasons"] for i in got)


def test_search_finds_the_topic_and_explains_the_match(catalog):
    client, ids = catalog
    clusters = cluster_of(ids)
    body = top(client, "/v1/search", q="rocket launch to the moon with astronauts", limit=5)
    assert sum(clusters[i["item_id"]] == "space" for i in body["items"][:3]) >= 2
    assert all(i["reasons"] for i in body["items"])
    personal = top(client, "/v1/search", q="dinner recipes", user_id="loop-user", limit=5)
    assert personal["items"]
    assert client.get("/v1/search", params={"q": "   "}).status_code == 422
    assert client.get("/v1/search").status_code == 422
    assert client.get("/v1/search", params={"q": "x" * 501}).status_code == 422


def test_stated_preferences_shape_a_cold_start(catalog):
    client, ids = catalog
    clusters = cluster_of(ids)
    user = f"prefs-{uuid.uuid4().hex[:6]}"
    prefs = {"liked_items": ids["football"][6:8], "text": "football goals and match highlights",
             "disliked_tags": ["space"]}
    r = client.put(f"/v1/users/{user}/preferences", json=prefs)
    assert r.status_code == 200, r.text
    assert client.get(f"/v1/users/{user}/preferences").json()["disliked_tags"] == ["space"]
    items = top(client, f"/v1/users/{user}/recommendations", limit=10)["items"]
    assert not any(clusters[i["item_id"]] == "space" for i in items)
    assert sum(clusters[i["item_id"]] == "football" for i in items) >= 6
    assert any(r.startswith("matches what you asked for") for i in items for r in i["reasons"])

    bad = client.put(f"/v1/users/{user}/preferences", json={"liked_items": ["nope"]})
    assert bad.status_code == 422 and "nope" in bad.json()["error"]["message"]
    assert client.put(f"/v1/users/{user}/preferences", json={"colour": "red"}).status_code == 422


# --- editorial, fallback, collaborative model ----------------------------------------------
def test_a_pinned_item_leads_for_you_answers_and_says_why(catalog):
    client, ids = catalog
    pin = ids["football"][4]
    r = client.put("/v1/editorial", json={"pins": [{"item_id": pin, "position": 0}]})
    assert r.status_code == 200, r.text
    try:
        first = top(client, "/v1/users/pinned-user/recommendations")["items"][0]
        assert first["item_id"] == pin and "editor's pick" in first["reasons"]
    finally:
        client.put("/v1/editorial", json={"pins": [], "boosts": []})
    both = {"boosts": [{"item_id": pin, "tag": "x", "factor": 2}]}
    assert client.put("/v1/editorial", json=both).status_code == 422
    assert client.put("/v1/editorial", json={"pins": [{"item_id": "nope", "position": 0}]}
                      ).status_code == 422


def test_a_repeated_answer_comes_from_the_cache_until_the_user_or_the_editors_act(catalog):
    client, ids = catalog
    clusters = cluster_of(ids)
    user = f"cached-{uuid.uuid4().hex[:6]}"
    url = f"/v1/users/{user}/recommendations"

    def hits() -> int:
        return int(client.get("/healthz").json()["recommendations"]["answer_cache"]["hits"])

    client.post("/v1/events", json={"events": [event(user, i) for i in ids["space"][:4]]})
    wait_until(lambda: sum(clusters[i["item_id"]] == "space"
                           for i in top(client, url, limit=10)["items"]) >= 6)
    def reopened() -> bool:  # the same screen again: no ranking work (unless a model was
        first, before = top(client, url, limit=10), hits()  # swapped in meanwhile)
        again = top(client, url, limit=10)
        return (hits() == before + 1 and again["items"] == first["items"]
                and again["recommendation_id"] != first["recommendation_id"])

    wait_until(reopened)

    # Their own events: the next answer is ranked afresh and follows them.
    client.post("/v1/events", json={"events": [event(user, i) for i in ids["cooking"][:8]]})
    wait_until(lambda: sum(clusters[i["item_id"]] == "cooking"
                           for i in top(client, url, limit=10)["items"]) >= 4, timeout=2.0)

    # An editor's pin shows in the very next answer, cached or not.
    pin = ids["football"][7]
    top(client, url, limit=10)
    assert client.put("/v1/editorial", json={"pins": [{"item_id": pin, "position": 0}]}
                      ).status_code == 200
    try:
        assert top(client, url, limit=10)["items"][0]["item_id"] == pin
    finally:
        client.put("/v1/editorial", json={"pins": [], "boosts": []})
    assert pin not in {i["item_id"] for i in top(client, url, limit=10)["items"][:1]}


def test_an_index_outage_flags_searched_answers_and_similar_reads_its_lists(catalog, monkeypatch):
    from index.base import IndexUnavailable

    client, ids = catalog
    service = client.app.state.service
    user = f"down-{uuid.uuid4().hex[:6]}"
    client.post("/v1/events", json={"events": [event(user, ids["space"][2])]})
    wait_until(lambda: service.recs.behavior.user(user) is not None)

    def down() -> Any:
        raise IndexUnavailable("the index is unreachable (test)")

    item = ids["space"][1]
    rec = service.recs.rec
    wait_until(lambda: rec.neighbours.get(rec.table.row[item]) is not None)  # the sync's ticks
    monkeypatch.setattr(service.recs, "_index", down)
    service.recs.answers.clear()  # answers cached before the outage would still be served
    for url, params in ((f"/v1/users/{user}/recommendations", {}),
                        ("/v1/search", {"q": "football"})):
        r = client.get(url, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["fallback"] is True and "unreachable" in body["note"]
        assert body["items"]
    # `similar` reads the item's neighbour list, found before the outage: its answer goes on,
    # unflagged, the same items as before (the other space titles first).
    body = client.get(f"/v1/items/{item}/similar").json()
    assert body["fallback"] is False and body["items"]
    assert body["items"][0]["item_id"] in ids["space"]


@pytest.mark.timeout(60)
def test_the_collaborative_model_is_trained_on_schedule_and_served(catalog):
    client, _ = catalog
    wait_until(lambda: client.get("/healthz").json()["recommendations"]["collab_model"],
               timeout=30.0)
    # Served, not only stored: the recommender answers with the model /healthz names.
    recs = client.app.state.service.recs
    model_id = client.get("/healthz").json()["recommendations"]["collab_model"]
    assert recs.sync.model_id == model_id and recs.rec.collab is not None
    assert recs.rec.collab.user_ids  # trained on the catalog's users, not an empty model


def test_a_deleted_item_disappears_from_answers_at_once(catalog):
    client, ids = catalog
    gone = ids["space"][11]
    assert client.delete(f"/v1/items/{gone}").status_code == 204
    similar = top(client, f"/v1/items/{ids['space'][10]}/similar", limit=30)["items"]
    assert gone not in {i["item_id"] for i in similar}
    assert client.get(f"/v1/items/{gone}/similar").status_code == 404
    r = client.post("/v1/events", json={"events": [event("late", gone)]})
    assert r.status_code == 422  # events about it are refused from now on


def test_new_items_right_after_importing_a_catalog_with_history(catalog, tmp_path):
    """A back catalog imported through `medley ingest`, then its history: new-items asked for
    items nobody engaged with returns exactly those; the default answer has no room for the
    established titles, dated or not."""
    from medley.ingest import ingest
    from tests.conftest import ADMIN_KEY, wait_for

    client, _ = catalog
    tag = f"import-{uuid.uuid4().hex[:6]}"
    today = datetime.now(UTC).date()
    rows = {  # title -> (description, release date or "")
        "dated-0": ("A heist thriller about a crew robbing a downtown bank", "1995-12-15"),
        "dated-1": ("A road movie: two friends drive across the desert", "1991"),
        "dated-2": ("A submarine crew hunts an enemy boat under the ice", "1990-03"),
        "known-0": ("A courtroom drama about a lawyer defending an innocent man", ""),
        "known-1": ("A family comedy about a chaotic holiday dinner", ""),
        "known-2": ("A detective solves a murder on a snowbound train", ""),
        "niche-0": ("A quiet documentary about beekeepers in the mountains", ""),
        "niche-1": ("An animated short about a lighthouse keeper and a seal", ""),
        "unseen-0": ("A heist comedy about stealing a famous painting", ""),
        "unseen-1": ("A thriller about a hacker breaking into a bank vault", ""),
        "unseen-2": ("A documentary about glaciers melting in the Arctic",
                     (today - timedelta(days=2)).isoformat()),  # released this week
        "unseen-3": ("A musical about a choir preparing for a competition",
                     (today - timedelta(days=5)).isoformat()),
    }
    manifest = tmp_path / "back-catalog.csv"
    manifest.write_text("title,description,tags,release_date\n" + "".join(
        f'{title},"{text}",{tag},{date}\n' for title, (text, date) in rows.items()))

    def through_app(request: httpx.Request) -> httpx.Response:  # ingest's client, this app
        r = client.request(request.method, request.url.path, content=request.read(),
                           headers={"content-type": request.headers["content-type"]})
        return httpx.Response(r.status_code, content=r.content,
                              headers={"content-type": r.headers.get("content-type", "")})

    report = ingest(manifest, "http://testserver", api_key=ADMIN_KEY, progress=False,
                    transport=httpx.MockTransport(through_app))
    assert report.submitted == len(rows) and not report.failures
    ids = dict(zip(rows, report.item_ids, strict=True))
    for item_id in ids.values():
        wait_for(client, item_id, timeout=120)
    title = {v: k for k, v in ids.items()}

    # The history that came with it: 25 people on each established title (more than the
    # default audience cap of 20), two on the niche ones, nobody on the new ones.
    history = [event(f"{tag}-fan-{u}", ids[t], "view" if u % 2 else "like",
                     timestamp=now_iso(-86400.0 * (30 + u)))
               for u in range(25) for t in ("dated-0", "dated-1", "dated-2",
                                            "known-0", "known-1", "known-2")]
    history += [event(f"{tag}-fan-{u}", ids[t], "complete") for u in range(2)
                for t in ("niche-0", "niche-1")]
    history += [event(f"{tag}-ana", catalog[1]["space"][k]) for k in (0, 1)]  # a taste
    r = client.post("/v1/events", json={"events": history})
    assert r.status_code == 200 and r.json()["accepted"] == len(history), r.text
    unseen = {"unseen-0", "unseen-1", "unseen-2", "unseen-3"}

    def new_items(user: str, **params: Any) -> set[str]:
        body = top(client, f"/v1/users/{user}/new-items", include_tags=tag, limit=50, **params)
        return {title[i["item_id"]] for i in body["items"]}

    wait_until(lambda: new_items(f"{tag}-ana", max_audience=0) == unseen, timeout=10.0)
    for user in (f"{tag}-ana", "nobody-yet"):  # a taste to match, and none
        assert new_items(user, max_audience=0) == unseen
        # The default: the established titles (25 people each) do not crowd the new ones out.
        assert new_items(user) == unseen | {"niche-0", "niche-1"}
        # Past the cap, the undated established titles are "recent" (they entered the catalog
        # today); the dated ones never are: their age counts from their release.
        assert new_items(user, max_audience=1000) == unseen | {
            "niche-0", "niche-1", "known-0", "known-1", "known-2"}
    foryou = top(client, f"/v1/users/{tag}-ana/recommendations", include_tags=tag,
                 max_audience=0, limit=20)["items"]
    assert foryou and {title[i["item_id"]] for i in foryou} <= unseen
    for bad in ("-1", "two", "1.5"):
        for url in (f"/v1/users/{tag}-ana/new-items", f"/v1/users/{tag}-ana/recommendations"):
            r = client.get(url, params={"max_audience": bad})
            assert r.status_code == 422 and "max_audience" in r.text, (url, bad, r.text)
