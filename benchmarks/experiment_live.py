"""`python -m benchmarks experiment --live`: simulated users against the live HTTP service.

A real `medley serve` app (embedded default, real text model) runs on a local port in this
process; the simulator talks to it over HTTP only, as client apps and editors do. Items come in
TOPICS, written from phrase templates, and enriched by the service; each user has a hidden
favourite subject within a topic, likes a few of its items first (their history), then opens
answers and clicks with a position-biased model: slot p is examined with probability
1 / (p + 1), an examined item is clicked with probability CLICK["subject"] when it is on the
user's subject, CLICK["topic"] on another subject of their topic, else CLICK["other"].
Clicks go back as `view` events citing the answer's recommendation_id.

Two experiments run one after the other on `recommendations`:
- A/B: control ranks with MMR λ 0 (each next item the least like those above it), the
  treatment as the service is configured (λ 0.8), truly better for these users. The results
  are read every PEEK users until the always-valid CTR interval excludes zero.
- Circuit breaker: the treatment serves a fusion profile that weighs only artwork, which these
  text-only items lack (a misconfigured profile: its answers fall back to what is popular); a
  guardrail on CTR (20% drop) must stop it. The service's own guard loop does it; the report
  says after how many users and seconds.
"""

from __future__ import annotations

import random
import socket
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

TOPICS = {
    "space": ("astronauts", "rocket launch", "the space station", "distant galaxies",
              "the Moon landing", "Mars rovers", "a space telescope", "black holes"),
    "cooking": ("sourdough bread", "fresh pasta", "a slow-cooked stew", "street food",
                "chocolate cake", "homemade curry", "knife skills", "fermented kimchi"),
    "football": ("a late winning goal", "the cup final", "a penalty shoot-out",
                 "the league title race", "a young striker", "pressing tactics",
                 "the world cup", "a derby match"),
    "wildlife": ("wolves in winter", "humpback whales", "a lion pride", "migrating birds",
                 "coral reef fish", "mountain gorillas", "arctic foxes", "elephant herds"),
    "music": ("a jazz quartet", "a symphony orchestra", "a rock festival", "hip-hop producers",
              "a piano recital", "folk songs", "an opera premiere", "a drum workshop"),
}
FRAMES = ("A documentary about {}", "Behind the scenes with {}", "The story of {}",
          "A short film on {}", "Everything you wanted to know about {}")
CLICK = {"subject": 0.6, "topic": 0.15, "other": 0.02}
HISTORY_LIKES = 3
PEEK = 50  # users between two reads of the results
ADMIN = "mdl_benchexperiment_0123456789abcdef0123456789"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


class Live:
    """The service on a local port, with an admin client."""

    def __init__(self, data_dir: Path) -> None:
        import uvicorn

        from api.app import create_app
        from benchmarks.serve_data import bench_settings

        limits = {r: (1e6, 1e6) for r in ("client", "content", "editor", "admin")}
        settings = bench_settings(data_dir, bootstrap_admin_key=ADMIN, rate_limits=limits,
                                  events_poll_interval_s=0.2)
        self.port = _port()
        self.server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1",
                                                    port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60,
                                 headers={"Authorization": f"Bearer {ADMIN}"})

    def __enter__(self) -> Live:
        self.thread.start()
        _wait(lambda: self.http.get("/healthz").status_code == 200, 300, "service start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(60)
        self.http.close()

    def ok(self, r: httpx.Response) -> Any:
        if r.status_code >= 300:
            raise RuntimeError(f"{r.request.method} {r.request.url}: {r.status_code} {r.text}")
        return r.json()

    def recs(self) -> dict[str, Any]:
        return dict(self.ok(self.http.get("/healthz"))["recommendations"])


Kind = tuple[str, str]  # (topic, subject)


def _catalog(live: Live) -> dict[str, Kind]:
    """Uploads every item; returns item id -> (topic, subject) once the service serves all."""
    topic_of: dict[str, Kind] = {}
    for topic, subjects in TOPICS.items():
        for subject in subjects:
            for frame in FRAMES:
                meta = {"title": frame.format(subject)[:80], "description": frame.format(subject),
                        "tags": [topic]}
                made = live.ok(live.http.post("/v1/items", data={"metadata": _json(meta)}))
                topic_of[made["id"]] = (topic, subject)
    _wait(lambda: live.recs()["items"] == len(topic_of), 600, "catalog enrichment")
    return topic_of


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def _event(user: str, item: str, kind: str, rec_id: str | None = None) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "user_id": user, "item_id": item, "type": kind,
            "timestamp": datetime.now(UTC).isoformat(), "recommendation_id": rec_id}


def _users(live: Live, topic_of: dict[str, Kind], n: int, rng: random.Random, prefix: str
           ) -> dict[str, Kind]:
    """n users with a hidden subject, each with HISTORY_LIKES likes on it."""
    by_kind: dict[Kind, list[str]] = {}
    for item, kind in topic_of.items():
        by_kind.setdefault(kind, []).append(item)
    kinds = sorted(by_kind)
    users = {f"{prefix}-{k}": rng.choice(kinds) for k in range(n)}
    events = [_event(u, item, "like") for u, kind in users.items()
              for item in rng.sample(by_kind[kind], HISTORY_LIKES)]
    target = live.recs()["events_applied"] + len(events)
    for k in range(0, len(events), 1000):
        live.ok(live.http.post("/v1/events", json={"events": events[k:k + 1000]}))
    _wait(lambda: live.recs()["events_applied"] >= target, 120, "history applied")
    return users


def _visit(live: Live, user: str, taste: Kind, topic_of: dict[str, Kind], rng: random.Random
           ) -> str | None:
    """One answer opened and clicked; returns the arm that served it."""
    answer = live.ok(live.http.get(f"/v1/users/{user}/recommendations", params={"limit": 10}))
    clicks = []
    for p, item in enumerate(answer["items"]):
        kind = topic_of.get(item["item_id"])
        appeal = CLICK["subject"] if kind == taste else \
            CLICK["topic"] if kind and kind[0] == taste[0] else CLICK["other"]
        if rng.random() < 1.0 / (p + 1) and rng.random() < appeal:
            clicks.append(_event(user, item["item_id"], "view", answer["recommendation_id"]))
    if clicks:
        live.ok(live.http.post("/v1/events", json={"events": clicks}))
    arm: str | None = answer.get("arm")
    return arm


def _experiment(live: Live, name: str, arms: list[dict[str, Any]],
                guardrails: list[dict[str, Any]] | None = None) -> int:
    made = live.ok(live.http.post("/v1/experiments", json={
        "name": name, "arms": arms, "guardrails": guardrails or []}))
    live.ok(live.http.post(f"/v1/experiments/{made['id']}/start"))
    return int(made["id"])


def run_live(users: int = 600, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp, Live(Path(tmp)) as live:
        started = time.perf_counter()
        topic_of = _catalog(live)
        ready_s = time.perf_counter() - started
        ab_users = _users(live, topic_of, users, rng, "ab")
        exp = _experiment(live, "relevance first", [{"name": "control", "mmr_lambda": 0.0},
                                                     {"name": "relevance"}])
        verdict: dict[str, Any] = {"users": None}
        for k, (user, topic) in enumerate(ab_users.items(), 1):
            _visit(live, user, topic, topic_of, rng)
            if k % PEEK == 0 or k == len(ab_users):
                time.sleep(0.6)  # the service writes exposures every half second
                res = live.ok(live.http.get(f"/v1/experiments/{exp}/results"))
                ctr = (res["arms"]["relevance"].get("versus_control") or {}).get("ctr")
                verdict = {"users": k, "ctr": ctr, "winner": None,
                           "arms": {a: r.get("metrics", {}).get("ctr")
                                    for a, r in res["arms"].items()}}
                if ctr and ctr["significant"]:
                    verdict["winner"] = "relevance" if ctr["diff"] > 0 else "control"
                    break
        live.ok(live.http.post(f"/v1/experiments/{exp}/stop"))

        cb_users = _users(live, topic_of, users, rng, "cb")
        broken = live.ok(live.http.post("/v1/fusion/profiles", json={
            "name": "artwork only", "weights": {"image": 1}}))
        bad = _experiment(live, "artwork only", [{"name": "control"}, {
            "name": "broken", "profile_id": broken["id"]}], [{"metric": "ctr", "max_drop": 0.2}])
        t0 = time.perf_counter()
        breaker: dict[str, Any] = {"users": None}
        for k, (user, topic) in enumerate(cb_users.items(), 1):
            arm = _visit(live, user, topic, topic_of, rng)
            if k % 10 == 0 or arm is None:
                state = live.ok(live.http.get(f"/v1/experiments/{bad}"))
                stopped = [a for a in state["arms"] if a["stopped"]]
                if stopped:
                    breaker = {"users": k, "seconds": round(time.perf_counter() - t0, 1),
                               "why": stopped[0]["stopped"]}
                    break
        return {"items": len(topic_of), "topics": len(TOPICS),
                "catalog_ready_s": round(ready_s, 1),
                "users_per_phase": users, "ab": verdict, "breaker": breaker}
