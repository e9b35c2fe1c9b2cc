"""Load generator for `python -m benchmarks serve`, run as its own process so its work is not the
server's: `python -m benchmarks.loadgen --port P --endpoint similar --concurrency 16 ...`.

Closed loop: each client holds one keep-alive HTTP/1.1 connection and sends its next request as
soon as the previous answer is read (no think time), so at concurrency N the latency is about
N / throughput. The client is a few lines over asyncio streams (uvloop when present): cheaper per
request than a general HTTP library, which matters when it shares the CPUs with the server.
Every request's latency is measured at the client; a non-2xx answer or a broken connection is an
error and is not in the percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import numpy as np

ENDPOINTS = ("healthz", "similar", "recommendations", "new-items", "search", "events")
KNOWN_USER_SHARE = 0.85  # recommendations / new-items: users with history; the rest are unknown
EVENT_MIX = (("impression", 30), ("view", 38), ("complete", 12), ("like", 8), ("skip", 7),
             ("dislike", 2), ("share", 3))


def summarize(latencies_s: Sequence[float], errors: int, elapsed_s: float) -> dict[str, Any]:
    """p50/p95/p99/mean/max in ms (linear interpolation between order statistics) and
    successful requests per second."""
    ms = np.asarray(latencies_s, dtype=np.float64) * 1000.0
    out: dict[str, Any] = {"requests": len(ms), "errors": int(errors),
                           "rps": round(len(ms) / elapsed_s, 1) if elapsed_s > 0 else 0.0}
    if not len(ms):
        return {**out, "p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None,
                "max_ms": None}
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {**out, "p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2),
            "p99_ms": round(float(p99), 2), "mean_ms": round(float(ms.mean()), 2),
            "max_ms": round(float(ms.max()), 2)}


class Requests:
    """The next request for an endpoint: (method, path, JSON body or None)."""

    def __init__(self, endpoint: str, inputs: dict[str, Any], seed: int) -> None:
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; known: {', '.join(ENDPOINTS)}")
        self.endpoint = endpoint
        self.inputs = inputs
        self.rng = random.Random(seed)
        kinds, weights = zip(*EVENT_MIX, strict=True)
        self.kinds, self.weights = list(kinds), list(weights)

    def _user(self) -> str:
        pool = "users" if self.rng.random() < KNOWN_USER_SHARE else "unknown_users"
        return quote(self.rng.choice(self.inputs[pool]), safe="")

    def next(self) -> tuple[str, str, bytes | None]:
        rng, e = self.rng, self.endpoint
        if e == "healthz":
            return "GET", "/healthz", None
        if e == "similar":
            return "GET", f"/v1/items/{rng.choice(self.inputs['items'])}/similar?limit=10", None
        if e in ("recommendations", "new-items"):
            params: dict[str, str] = {"limit": "10"}
            if rng.random() < 0.5:
                params.update(device=rng.choice(["mobile", "tv", "web"]),
                              surface="home" if e == "recommendations" else "new")
            return "GET", f"/v1/users/{self._user()}/{e}?{urlencode(params)}", None
        if e == "search":
            params = {"q": rng.choice(self.inputs["queries"]), "limit": "10"}
            if rng.random() < 0.2:
                params["user_id"] = rng.choice(self.inputs["users"])
            return "GET", f"/v1/search?{urlencode(params)}", None
        return "POST", "/v1/events", json.dumps({"events": self._events()}).encode()

    def _events(self) -> list[dict[str, Any]]:
        rng = self.rng
        now = datetime.now(UTC).isoformat()
        user = rng.choice(self.inputs["users"])
        out = []
        for _ in range(rng.randint(1, 20)):
            kind = rng.choices(self.kinds, self.weights)[0]
            out.append({
                "event_id": uuid.uuid4().hex, "user_id": user, "type": kind,
                "item_id": rng.choice(self.inputs["event_items"]), "timestamp": now,
                "value": float(rng.randint(1, 100)) if kind == "view" else None,
                "context": {"device": "mobile", "surface": "home", "locale": "en-US"},
            })
        return out


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    fallback: int = 0
    first_error: str | None = None

    def fail(self, why: str) -> None:
        self.errors += 1
        self.statuses[why] += 1
        self.first_error = self.first_error or why


EXCHANGE_TIMEOUT_S = 30.0  # one request's answer, at most


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    data: bytes) -> tuple[int, bytes, bool]:
    """Send one request; (status, body, server closes) of the answer."""
    writer.write(data)
    await writer.drain()
    line = await reader.readline()
    if not line:
        raise ConnectionError("the server closed the connection")
    status = int(line.split(b" ", 2)[1])
    length, chunked, close = 0, False, False
    while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = header.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = b"close" in value.lower()
    if not chunked:
        return status, await reader.readexactly(length), close
    body = b""
    while size := int((await reader.readline()).split(b";")[0], 16):
        body += await reader.readexactly(size + 2)
    await reader.readline()
    return status, body, close


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def timed_exchange(conn: Connection | None, host: str, port: int, data: bytes,
                         timeout_s: float
                         ) -> tuple[Connection | None, tuple[int, bytes, bool, float] | Exception]:
    """One request on `conn` (opened first if None): (the connection, (status, body, whether
    the server closes it, seconds)); or (None, the error), the connection closed. A server that
    stops answering is a failed request after `timeout_s`, not a stalled client."""
    try:
        if conn is None:
            conn = await asyncio.open_connection(host, port)
        started = time.perf_counter()
        status, answer, close = await asyncio.wait_for(_exchange(*conn, data), timeout_s)
        return conn, (status, answer, close, time.perf_counter() - started)
    except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError,
            TimeoutError) as exc:
        if conn is not None:
            conn[1].close()
        return None, exc


async def _client(host: str, port: int, requests: Requests, deadline: float, tally: Tally,
                  key: str | None = None) -> None:
    conn: Connection | None = None
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    while time.perf_counter() < deadline:
        method, path, body = requests.next()
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        data = (head + "\r\n").encode() + (body or b"")
        conn, got = await timed_exchange(conn, host, port, data, EXCHANGE_TIMEOUT_S)
        if isinstance(got, Exception):
            tally.fail(f"{type(got).__name__}: {got}")
            await asyncio.sleep(0.05)
            continue
        status, answer, close, took = got
        if 200 <= status < 300:
            tally.latencies.append(took)
            tally.statuses[str(status)] += 1
            tally.fallback += b'"fallback":true' in answer
        else:
            tally.fail(str(status))
        if close and conn is not None:
            conn[1].close()
            conn = None
    if conn is not None:
        conn[1].close()


async def run(host: str, port: int, endpoint: str, concurrency: int, duration: float,
              inputs: dict[str, Any], seed: int = 0, key: str | None = None) -> dict[str, Any]:
    tally = Tally()
    cpu, started = time.process_time(), time.perf_counter()
    deadline = started + duration
    await asyncio.gather(*(
        _client(host, port, Requests(endpoint, inputs, seed * 1000 + k), deadline, tally, key)
        for k in range(concurrency)
    ))
    elapsed = time.perf_counter() - started
    return {"endpoint": endpoint, "concurrency": concurrency, "elapsed_s": round(elapsed, 2),
            **summarize(tally.latencies, tally.errors, elapsed),
            "fallback_answers": tally.fallback, "statuses": dict(tally.statuses),
            "first_error": tally.first_error,
            "client_cpu_cores": round((time.process_time() - cpu) / elapsed, 2)}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--endpoint", choices=ENDPOINTS, required=True)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--duration", type=float, default=15.0, help="seconds")
    p.add_argument("--inputs", type=Path, required=True, help="loadgen-inputs.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="result JSON (default: stdout)")
    p.add_argument("--key", help="API key sent as a bearer token (default: MEDLEY_API_KEY)")
    a = p.parse_args(argv)
    inputs = json.loads(a.inputs.read_text())
    if a.key is None:
        from medley.config import Settings

        secret = Settings().api_key
        a.key = secret.get_secret_value() if secret else None
    coro = run(a.host, a.port, a.endpoint, a.concurrency, a.duration, inputs, a.seed, a.key)
    try:
        import uvloop

        result = uvloop.run(coro)
    except ImportError:
        result = asyncio.run(coro)
    text = json.dumps(result)
    if a.out is not None:
        a.out.write_text(text)
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
