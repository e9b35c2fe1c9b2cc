"""Faults the service survives, each produced for real where this machine allows it:

- the Redis broker killed (no persistence: every queued message lost) and restarted in the
  middle of an ingestion, with uploads arriving while it is down;
- the vector index (a Qdrant server, reached through the real qdrant-client over HTTP) going
  away and coming back;
- a full disk under the media store, the thumbnail cache and the database (tmpfs mounts).

A worker killed mid-task (test_deployments.py) and a model that cannot load
(tests/api/test_clip_unavailable.py) are covered where they are.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from medley.config import Precision, Settings
from tests.conftest import ADMIN_KEY, AUTH, wait_for
from tests.integration.test_deployments import _env, _kill, _spawn
from tests.support.faults import RedisServer, SmallDisk, noise_png

pytestmark = [pytest.mark.integration, pytest.mark.heavy]


def _upload(client: Any, title: str, **files: Path) -> httpx.Response:
    meta = {"title": title, "description": f"{title}: a short description", "tags": ["fault"]}
    return client.post("/v1/items", data={"metadata": json.dumps(meta)},
                       files={k: (p.name, p.read_bytes()) for k, p in files.items()})


def _accepted(client: Any, title: str, **files: Path) -> str:
    r = _upload(client, title, **files)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


# --- the broker restarted mid-ingestion ----------------------------------------------------
def _statuses(client: Any, ids: list[str]) -> dict[str, dict[str, str]]:
    out = {}
    for item_id in ids:
        body = client.get(f"/v1/items/{item_id}").json()
        out[item_id] = {m: v["status"] for m, v in body["modalities"].items()}
    return out


def test_redis_restarted_mid_ingestion_every_item_completes(
    tmp_path: Path, tiny_clip: dict[str, Any], samples: Any, fresh_pg: str
) -> None:
    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    shared: dict[str, Any] = {
        "data_dir": tmp_path / "data", "database_url": fresh_pg, "broker_url": redis_server.url,
        "clip_precision": Precision.FP32.value, "bootstrap_admin_key": ADMIN_KEY,
        **{k: str(v) for k, v in tiny_clip.items()},
    }
    # One worker process doing one task at a time, so most of the work is still queued (and
    # lost) when the broker dies.
    worker = _spawn(["worker", "--queues", "media,text", "--concurrency", "1"], _env(shared),
                    tmp_path / "worker.log")
    settings = Settings(**shared, stale_sweep_interval_s=1.0, redispatch_idle_s=3.0)
    try:
        with TestClient(create_app(settings), headers=AUTH) as client:
            ids = [
                _accepted(client, "Talk", audio=samples.speech["space"]),
                _accepted(client, "Coffee", image=samples.photos["coffee"]),
                _accepted(client, "Slides", video=samples.slideshow),
                *(_accepted(client, f"Note {i}") for i in range(3)),
            ]
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:  # ingestion under way: something is done
                states = _statuses(client, ids)
                if any(s == "ready" for mods in states.values() for s in mods.values()):
                    break
                time.sleep(0.1)
            redis_server.kill()
            queued = [s for mods in _statuses(client, ids).values() for s in mods.values()
                      if s == "queued"]
            assert queued, "everything finished before the broker died: nothing was at stake"

            # Uploads while the broker is down: accepted and stored, not lost, no 500.
            started = time.monotonic()
            during = [_accepted(client, "Chelsea", image=samples.photos["chelsea"]),
                      _accepted(client, "Note during the outage")]
            assert time.monotonic() - started < 20  # a failed dispatch does not hang uploads
            for item_id in during:
                assert client.get(f"/v1/items/{item_id}").json()["status"] == "queued"
            time.sleep(3)  # the workers see the broker gone and start reconnecting

            # Nothing on disk to reload: the restarted broker starts empty, the queue is gone.
            assert [f.name for f in redis_server.folder.iterdir()] == ["redis.log"]
            redis_server.start()
            done = {i: wait_for(client, i, timeout=300) for i in ids + during}
    finally:
        _kill(worker)
        redis_server.kill()
    log = (tmp_path / "worker.log").read_text()[-3000:]
    for item_id, body in done.items():
        mods = {m: v["status"] for m, v in body["modalities"].items()}
        assert body["status"] in ("ready", "partial"), (item_id, body, log)
        assert set(mods.values()) <= {"ready", "absent"}, (item_id, mods, log)
    talk, slides = done[ids[0]], done[ids[2]]
    assert talk["transcript"]["text"] and slides["modalities"]["video"]["status"] == "ready"


# --- the index unreachable --------------------------------------------------------------------
TOPICS = {
    "Rocket launch": "A rocket lifts off from the launch pad into orbit",
    "Space station": "Astronauts float inside the space station above the earth",
    "Hubble": "The telescope sees distant galaxies in deep space",
    "Espresso": "A cup of coffee with crema on a wooden table",
    "Pasta dinner": "Fresh pasta with tomato sauce for dinner",
    "Football final": "The striker scores a goal in the football final",
}


def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _answers(client: Any, user: str, item: str) -> dict[str, dict[str, Any]]:
    urls = {"similar": (f"/v1/items/{item}/similar", {}),
            "for-you": (f"/v1/users/{user}/recommendations", {}),
            "new-items": (f"/v1/users/{user}/new-items", {}),
            "search": ("/v1/search", {"q": "rockets and space", "user_id": user})}
    out = {}
    for name, (url, params) in urls.items():
        r = client.get(url, params=params)
        assert r.status_code == 200, (name, r.text)  # never a 500, index or not
        out[name] = r.json()
    return out


def test_index_outage_searches_fall_back_flagged_then_recover(
    make_settings: Callable[..., Settings], client_for: Callable[[Settings], Any]
) -> None:
    from tests.support.qdrant_stub import QdrantStub

    qdrant = QdrantStub()
    qdrant.start()
    try:
        # No answer cache: a cached answer would (rightly) keep serving through the outage, and
        # this test is about what a request that must reach the index does when it cannot.
        client = client_for(make_settings(qdrant_url=qdrant.url, redispatch_idle_s=2.0,
                                          answer_cache_size=0))
        ids = {}
        for title, text in TOPICS.items():
            r = client.post("/v1/items", data={"metadata": json.dumps(
                {"title": title, "description": text})})
            assert r.status_code == 202, r.text
            ids[title] = r.json()["id"]
        for item_id in ids.values():
            wait_for(client, item_id)
        service = client.app.state.service
        user = f"fault-{uuid.uuid4().hex[:6]}"
        liked = {"event_id": str(uuid.uuid4()), "user_id": user, "type": "like",
                 "item_id": ids["Rocket launch"], "timestamp": _now()}
        assert client.post("/v1/events", json={"events": [liked]}).json()["accepted"] == 1
        _until(lambda: service.recs.behavior.user(user) is not None, 30, "the event folded in")
        _until(lambda: all(not a["fallback"] and a["items"] for a in
                           _answers(client, user, ids["Hubble"]).values()), 30,
               "every answer served from the index")

        rec = service.recs.rec
        _until(lambda: rec.neighbours.get(rec.table.row[ids["Hubble"]]) is not None, 30,
               "Hubble's neighbour list found (the sync's ticks)")
        qdrant.stop()  # connections refused from here on
        down = _answers(client, user, ids["Hubble"])
        for name, body in down.items():
            if name == "similar":  # read from the list found before the outage: no search
                assert body["fallback"] is False and body["items"], body
                continue
            assert body["fallback"] is True and "Qdrant" in body["note"], (name, body)
            assert body["items"], name
        seen = {"event_id": str(uuid.uuid4()), "user_id": user, "type": "view",
                "item_id": ids["Hubble"], "timestamp": _now()}
        r = client.post("/v1/events", json={"events": [seen]})
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
        health = client.get("/healthz")
        assert health.status_code == 200
        assert health.json()["index"]["status"] == "unavailable"
        assert health.json()["status"] == "degraded"
        # An upload is accepted and extracted; only its index write waits.
        late = client.post("/v1/items", data={"metadata": json.dumps(
            {"title": "Moon landing", "description": "Astronauts walk on the moon"})})
        assert late.status_code == 202, late.text
        late_id = late.json()["id"]
        _until(lambda: client.get(f"/v1/items/{late_id}").json()["status"] == "ready", 60,
               "the late item extracted")
        time.sleep(3)  # past the sweep's wait: it keeps re-sending, the index keeps refusing
        body = client.get(f"/v1/items/{late_id}").json()
        assert body["indexed"] is False

        qdrant.start()  # back, with its data
        wait_for(client, late_id, timeout=90)  # indexed now (task retry or the sweep)
        _until(lambda: all(not a["fallback"] for a in
                           _answers(client, user, ids["Hubble"]).values()), 30,
               "answers unflagged again")
        _until(lambda: client.get("/healthz").json()["index"]["status"] == "ok", 10,
               "healthz reporting the index back")
        hits = client.get("/v1/search", params={"q": "walking on the moon"}).json()
        assert late_id in {i["item_id"] for i in hits["items"]}
    finally:
        qdrant.stop()


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


# --- a full disk ----------------------------------------------------------------------------
def _total(client: Any) -> int:
    return int(client.get("/v1/items", params={"limit": 1}).json()["total"])


def _refused_full(r: httpx.Response) -> None:
    assert r.status_code == 507, r.text
    assert r.json()["error"]["code"] == "storage_full"


def test_disk_full_during_upload_is_507_and_leaves_nothing_behind(
    # The disks before the app: torn down after it, so nothing of the app still writes there.
    small_disks: Callable[[Path, int], SmallDisk], make_settings: Callable[..., Settings],
    client_for: Callable[[Settings], Any], samples: Any, tmp_path: Path,
) -> None:
    settings = make_settings()
    media = small_disks(settings.media_dir, 8)
    thumbs = small_disks(settings.data_dir / "thumbs", 1)
    client = client_for(settings)
    first = _accepted(client, "Coffee", image=samples.photos["coffee"])
    wait_for(client, first)
    big = noise_png(tmp_path / "big.png", 700)  # ~1.4 MiB
    before, count = media.files(), _total(client)

    media.fill()
    _refused_full(_upload(client, "Too big", image=big))
    # The first part fits, the second does not: the first part's file goes too.
    small = samples.photos["flower"]
    media.make_room()
    media.fill(leave=small.stat().st_size + 256 * 1024)
    _refused_full(_upload(client, "Half", image=small, audio=samples.speech["tour"]))
    assert _total(client) == count  # no item row
    assert media.files() == before  # no file, whole or partial, in the store or its tmp/

    # The thumbnail cache full too: the picture is still served, just not kept.
    thumbs.fill()
    r = client.get(f"/v1/items/{first}/thumbnail")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert thumbs.files() == set()

    # The others are unaffected, and uploads work again once there is room.
    assert client.get(f"/v1/items/{first}").json()["status"] == "ready"
    media.make_room()
    again = _accepted(client, "Big, later", image=big)
    assert wait_for(client, again)["modalities"]["image"]["status"] == "ready"
    assert _total(client) == count + 1


def test_database_disk_full_during_upload_is_507_and_leaves_nothing_behind(
    # The disks before the app: torn down after it, so nothing of the app still writes there.
    small_disks: Callable[[Path, int], SmallDisk], make_settings: Callable[..., Settings],
    client_for: Callable[[Settings], Any], samples: Any, tmp_path: Path,
) -> None:
    import sqlite3

    disk = small_disks(tmp_path / "db", 16)
    path = disk.path / "medley.db"
    settings = make_settings(database_url=f"sqlite:///{path}")
    client = client_for(settings)
    first = _accepted(client, "Before")
    wait_for(client, first)
    count = _total(client)
    media_before = {p for p in settings.media_dir.rglob("*") if p.is_file()}

    # An empty write-ahead log, then no room for it to grow: the next write needs space.
    with sqlite3.connect(path) as db:
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0
    disk.fill()
    r = _upload(client, "No room", image=samples.photos["rocket"])
    _refused_full(r)
    assert "database" in r.json()["error"]["message"]
    assert _total(client) == count
    # Its stored image is removed with the refused row.
    assert {p for p in settings.media_dir.rglob("*") if p.is_file()} == media_before
    # Every other write says the same, not 500: events, a change to an item.
    ev = client.post("/v1/events", json={"events": [
        {"event_id": "full-1", "user_id": "u", "item_id": first, "type": "view",
         "timestamp": datetime.now(UTC).isoformat()}]})
    assert ev.status_code == 507 and ev.json()["error"]["code"] == "storage_full"
    patched = client.patch(f"/v1/items/{first}", json={"description": "Renamed " + "x" * 4000})
    assert patched.status_code == 507, patched.text

    disk.make_room()
    again = _accepted(client, "Room again", image=samples.photos["rocket"])
    assert wait_for(client, again)["status"] == "ready"
    assert client.get(f"/v1/items/{first}").json()["status"] == "ready"
    assert client.get(f"/v1/items/{first}").json()["title"] == "Before"  # the refused change
