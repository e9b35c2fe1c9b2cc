"""Load with accounting: N clients for a while against a live `medley serve`, each asking for
recommendations and posting event batches with its own client key, then a count of what the
database stored against what the answers said was accepted.

Event batches are valid (known users and items, now) with duplicates on purpose: replays of a
client's own earlier events, ids from a small pool every client races to post, and repeats
inside one batch. Each answer must account for every distinct id it was sent (accepted +
duplicates), a replay must come back as a duplicate, and in the end the new rows in the events
table must equal the sum of `accepted`: nothing lost, nothing stored twice.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.loadgen import EVENT_MIX, Connection, Requests, summarize, timed_exchange

ENDPOINTS = ("recommendations", "events")
EVENTS_SHARE = 0.5  # of requests
REPLAY_P = 0.2  # a batch re-sends 1-3 of this client's accepted events
SHARED_P = 0.1  # a batch carries one id from the pool every client posts
INNER_DUP_P = 0.05  # a batch repeats one of its own events
SHARED_POOL = 64
REQUEST_TIMEOUT_S = 30.0


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {e: [] for e in ENDPOINTS})
    errors: Counter[str] = field(default_factory=Counter)  # endpoint: status or exception
    accepted: int = 0
    duplicates_reported: int = 0
    replays_sent: int = 0
    replays_reported: int = 0
    shared_sent: int = 0
    accounting_errors: list[str] = field(default_factory=list)
    sent_ids: set[str] = field(default_factory=set)

    def fail(self, endpoint: str, why: str) -> None:
        self.errors[f"{endpoint}: {why}"] += 1


class Client:
    """One closed-loop client: a keep-alive connection, its own key, its own events."""

    def __init__(self, k: int, key: str, inputs: dict[str, Any], shared: list[dict[str, Any]],
                 tally: Tally, seed: int) -> None:
        self.key, self.inputs, self.shared, self.tally = key, inputs, shared, tally
        self.rng = random.Random(seed * 1000 + k)
        self.recs = Requests("recommendations", inputs, seed * 1000 + k)
        self.mine: list[dict[str, Any]] = []  # events of this client the server accepted
        kinds, weights = zip(*EVENT_MIX, strict=True)
        self.kinds, self.weights = list(kinds), list(weights)

    def batch(self) -> tuple[list[dict[str, Any]], set[str], set[str]]:
        """(events, fresh ids, replayed ids)."""
        rng, now = self.rng, datetime.now(UTC).isoformat()
        user = rng.choice(self.inputs["users"])
        fresh = []
        for _ in range(rng.randint(1, 20)):
            kind = rng.choices(self.kinds, self.weights)[0]
            fresh.append({"event_id": uuid.uuid4().hex, "user_id": user, "type": kind,
                          "item_id": rng.choice(self.inputs["event_items"]), "timestamp": now,
                          "value": float(rng.randint(1, 100)) if kind == "view" else None,
                          "context": {"device": "mobile", "surface": "home"}})
        events = list(fresh)
        replays: list[dict[str, Any]] = []
        if self.mine and rng.random() < REPLAY_P:
            replays = rng.sample(self.mine, min(len(self.mine), rng.randint(1, 3)))
        if rng.random() < SHARED_P:
            events.append(rng.choice(self.shared))
        if rng.random() < INNER_DUP_P:
            events.append(dict(rng.choice(fresh)))
        events += replays
        rng.shuffle(events)
        return events, {e["event_id"] for e in fresh}, {e["event_id"] for e in replays}

    def account(self, events: list[dict[str, Any]], fresh: set[str], replays: set[str],
                body: dict[str, Any]) -> None:
        t = self.tally
        dups = set(body["duplicates"])
        distinct = {e["event_id"] for e in events}
        t.accepted += body["accepted"]
        t.duplicates_reported += len(dups)
        t.replays_sent += len(replays)
        t.replays_reported += len(replays & dups)
        t.shared_sent += len(distinct - fresh - replays)
        problems = []
        if body["rejected"]:
            problems.append(f"rejected {body['rejected'][:2]}")
        if body["accepted"] + len(dups) != len(distinct):
            problems.append(f"accepted {body['accepted']} + duplicates {len(dups)} != "
                            f"{len(distinct)} distinct ids")
        if replays - dups:
            problems.append(f"replays not reported as duplicates: {sorted(replays - dups)[:3]}")
        if fresh & dups:
            problems.append(f"new ids reported as duplicates: {sorted(fresh & dups)[:3]}")
        if problems and len(t.accounting_errors) < 20:
            t.accounting_errors.append("; ".join(problems))
        self.mine += [e for e in events if e["event_id"] in fresh]

    async def run(self, host: str, port: int, deadline: float) -> None:
        conn: Connection | None = None
        t = self.tally
        while time.perf_counter() < deadline:
            endpoint = "events" if self.rng.random() < EVENTS_SHARE else "recommendations"
            body: bytes | None = None
            if endpoint == "events":
                events, fresh, replays = self.batch()
                t.sent_ids |= {e["event_id"] for e in events}
                method, path = "POST", "/v1/events"
                body = json.dumps({"events": events}).encode()
            else:
                method, path, _ = self.recs.next()
            head = (f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    f"Authorization: Bearer {self.key}\r\n")
            if body is not None:
                head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            conn, got = await timed_exchange(conn, host, port,
                                             (head + "\r\n").encode() + (body or b""),
                                             REQUEST_TIMEOUT_S)
            if isinstance(got, Exception):
                t.fail(endpoint, type(got).__name__)
                await asyncio.sleep(0.05)
                continue
            status, answer, close, took = got
            if 200 <= status < 300:
                t.latencies[endpoint].append(took)
                if endpoint == "events":
                    self.account(events, fresh, replays, json.loads(answer))
            else:
                t.fail(endpoint, str(status))
            if close and conn is not None:
                conn[1].close()
                conn = None
        if conn is not None:
            conn[1].close()


def shared_events(inputs: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """The pool every client posts from; new ids on every run."""
    rng, run = random.Random(seed), uuid.uuid4().hex[:8]
    now = datetime.now(UTC).isoformat()
    return [{"event_id": f"shared-{run}-{k}", "user_id": rng.choice(inputs["users"]),
             "item_id": rng.choice(inputs["event_items"]), "type": "view", "value": 50.0,
             "timestamp": now} for k in range(SHARED_POOL)]


async def drive(host: str, port: int, keys: list[str], inputs: dict[str, Any], duration: float,
                seed: int = 0) -> tuple[Tally, float]:
    tally = Tally()
    shared = shared_events(inputs, seed)
    started = time.perf_counter()
    clients = [Client(k, key, inputs, shared, tally, seed) for k, key in enumerate(keys)]
    await asyncio.gather(*(c.run(host, port, started + duration) for c in clients))
    return tally, time.perf_counter() - started


def stored_events(db_path: Path) -> int:
    """Rows in the events table (read straight from the server's SQLite file)."""
    import sqlite3

    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def run_load(host: str, port: int, keys: list[str], inputs: dict[str, Any], duration: float,
             db_path: Path, seed: int = 0) -> dict[str, Any]:
    """Drive the load and count; the result says `ok` when nothing was lost or doubled and no
    request failed."""
    before = stored_events(db_path)
    tally, elapsed = asyncio.run(drive(host, port, keys, inputs, duration, seed))
    stored = stored_events(db_path) - before
    per_endpoint = {e: summarize(tally.latencies[e], sum(
        n for k, n in tally.errors.items() if k.startswith(f"{e}:")), elapsed) for e in ENDPOINTS}
    requests = sum(len(v) for v in tally.latencies.values()) + sum(tally.errors.values())
    result: dict[str, Any] = {
        "clients": len(keys), "duration_s": duration, "elapsed_s": round(elapsed, 2),
        "requests": requests, "errors": sum(tally.errors.values()),
        "errors_by_kind": dict(tally.errors), "rps": round(requests / elapsed, 1),
        "endpoints": per_endpoint,
        "events": {"ids_sent": len(tally.sent_ids), "accepted": tally.accepted,
                   "stored": stored, "duplicates_reported": tally.duplicates_reported,
                   "replays_sent": tally.replays_sent, "replays_reported": tally.replays_reported,
                   "shared_sent": tally.shared_sent,
                   "accounting_errors": tally.accounting_errors},
    }
    ev = result["events"]
    ev["stored_equals_accepted"] = stored == tally.accepted
    result["ok"] = (result["errors"] == 0 and ev["stored_equals_accepted"]
                    and not tally.accounting_errors and stored == len(tally.sent_ids)
                    and tally.replays_sent == tally.replays_reported)
    return result
