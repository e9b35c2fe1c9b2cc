"""Measurements beside the profile of `python -m benchmarks serve`: whether work overlaps across
threads, what the idle background sync costs, and what one index query costs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def thread_scaling(call: Callable[[], Any], n: int) -> dict[str, float]:
    """Calls per second (and CPU cores used) with 1 and 2 threads: ~2x means the work runs in
    parallel, ~1x that the GIL (or one lock) serialises it."""
    rates = {}
    for threads in (1, 2):
        per = n // threads

        def work(count: int = per) -> None:
            for _ in range(count):
                call()

        workers = [threading.Thread(target=work) for _ in range(threads)]
        started, cpu = time.perf_counter(), time.process_time()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        wall = time.perf_counter() - started
        rates[f"threads_{threads}_per_s"] = round(per * threads / wall, 1)
        rates[f"threads_{threads}_cores"] = round((time.process_time() - cpu) / wall, 2)
    rates["speedup"] = round(rates["threads_2_per_s"] / rates["threads_1_per_s"], 2)
    return rates


def idle_tick(sync: Any, interval_s: float, rounds: int = 20) -> dict[str, Any]:
    """The background sync's work with nothing changing (it runs every `interval_s`, holding
    the GIL like a request would): median ms per stage and per tick, and the cores it takes."""
    sync.tick()  # the first one also checks the model and reconciles
    stages = [s for s in ("load_items", "tail_events", "warm_priors") if hasattr(sync, s)]
    times: dict[str, list[float]] = {s: [] for s in [*stages, "tick"]}
    for _ in range(rounds):
        for name in stages:
            started = time.perf_counter()
            getattr(sync, name)()
            times[name].append(time.perf_counter() - started)
        started = time.perf_counter()
        sync.tick()
        times["tick"].append(time.perf_counter() - started)
    out: dict[str, Any] = {f"{k}_ms": round(float(np.median(v)) * 1000, 2)
                           for k, v in times.items()}
    out["ticks_per_s"] = round(1 / interval_s, 1)
    out["cores"] = round(float(np.median(times["tick"])) / interval_s, 2)
    return out


def index_costs(index: Any, ids: list[str], vecs: np.ndarray, limit: int) -> dict[str, Any]:
    """One fused query as the service sends it (similar's filter, payload returned) beside the
    same query without payload, and whether queries from two threads run in parallel."""
    import qdrant_edge as qe

    from index.base import FUSED, Where
    from index.edge import _edge_filter

    queries = [(v.tolist(), _edge_filter(Where(exclude_ids=frozenset({i}))))
               for i, v in zip(ids, vecs, strict=True)]

    def query(k: int, payload: bool) -> Any:
        v, flt = queries[k % len(queries)]
        return index.shard.query(qe.QueryRequest(
            limit=limit, query=qe.Query.Nearest(v, using=FUSED), filter=flt,
            with_payload=payload))

    out: dict[str, Any] = {"limit": limit}
    for payload in (True, False, True, False):  # twice, interleaved; the second pair counts
        started = time.perf_counter()
        for k in range(len(queries)):
            query(k, payload)
        ms = (time.perf_counter() - started) / len(queries) * 1000
        out["query_ms_with_payload" if payload else "query_ms_without_payload"] = round(ms, 2)
    it = iter(range(10**9))
    out["thread_scaling_without_payload"] = thread_scaling(lambda: query(next(it), False), 400)
    out["created_filter"] = _created_filter(index, [q for q, _ in queries[:50]], limit)
    return out


def index_recall(index: Any, table: Any, rows: list[int], limit: int) -> dict[str, Any]:
    """How many of the exact top-`limit` fused neighbours (cosine over the serving table, the
    query item left out) the index returns, as the service asks it (`VectorIndex.search`):
    what quantizing the index costs the candidates."""
    from index.base import FUSED, Where

    n = len(table.ids)
    queries = table.vectors_of(np.array(rows))
    scores = np.empty((len(rows), n), dtype=np.float32)
    for at in range(0, n, 10_000):  # the table in blocks: bounded memory at any size
        block = np.arange(at, min(at + 10_000, n))
        mat = table.vectors_of(block)
        mat[~table.alive[block]] = 0.0
        scores[:, block] = queries @ mat.T
    scores[np.arange(len(rows)), rows] = -np.inf
    found = []
    for k, r in enumerate(rows):
        exact = {table.ids[i] for i in np.argpartition(-scores[k], limit - 1)[:limit]}
        hits = index.search(FUSED, queries[k].tolist(), limit,
                            where=Where(exclude_ids=frozenset({table.ids[r]})),
                            with_payload=False)
        found.append(len(exact & {h.id for h in hits}) / limit)
    return {"queries": len(rows), "limit": limit,
            "recall_mean": round(float(np.mean(found)), 4),
            "recall_min": round(float(np.min(found)), 4)}


def _created_filter(index: Any, vectors: list[list[float]], limit: int) -> dict[str, Any]:
    """Fused queries restricted to recently created items (new-item candidates), with the
    shard as the service left it, then with a payload index on created_at toggled (made or
    dropped for this measurement, then put back as it was)."""
    import qdrant_edge as qe

    from index.base import FUSED

    now = time.time()
    out: dict[str, Any] = {}

    def measure(label: str) -> None:
        for days in (14, 2):
            flt = qe.Filter(must=[qe.FieldCondition(
                "created_at", range=qe.RangeFloat(gte=now - days * 86400))])
            matching = int(index.shard.count(qe.CountRequest(filter=flt)))
            started, hits = time.perf_counter(), 0
            for v in vectors:
                hits += len(index.shard.query(qe.QueryRequest(
                    limit=limit, query=qe.Query.Nearest(v, using=FUSED), filter=flt,
                    with_payload=False)))
            out[f"{label}_{days}d"] = {
                "ms": round((time.perf_counter() - started) / len(vectors) * 1000, 2),
                "hits_per_query": round(hits / len(vectors), 1),
                "wanted": min(limit, matching), "matching_items": matching}

    create = qe.UpdateOperation.create_field_index("created_at", qe.PayloadSchemaType.Float)
    drop = qe.UpdateOperation.delete_field_index("created_at")
    had = "created_at" in set(index.shard.info().payload_schema)
    measure("payload_index" if had else "no_payload_index")
    index.shard.update(drop if had else create)
    try:
        measure("no_payload_index" if had else "payload_index")
    finally:
        index.shard.update(create if had else drop)
    return out
