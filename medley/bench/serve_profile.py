"""Where a request's time goes: the serving state built in this process exactly as `medley serve`
builds it (start-up stages timed one by one), then each endpoint's handler work called directly
(the same calls the routes make, answer serialisation included), timed and profiled with
pyinstrument. Run after the server has stopped: one process at a time may open the index."""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medley.bench.loadgen import KNOWN_USER_SHARE, summarize
from medley.bench.serve_data import INPUTS, bench_settings

CALLS = 150  # per endpoint, timed; as many again under the profiler
TOP = 12
OURS = ("/medley/", "/index/", "/api/", "/enrich/")
WRAPPERS = ("<lambda>", "_guarded", "run")  # pass-through frames, as long as their callee


def _aggregate(root: Any, calls: int) -> dict[str, list[dict[str, Any]]]:
    """Per function: inclusive time (our code; recursion counted once) and self time (any code),
    in ms per call, top entries."""
    incl: dict[str, float] = {}
    own: dict[str, float] = {}

    def walk(frame: Any, above: frozenset[str]) -> None:
        if frame.is_synthetic:
            return
        key = f"{frame.file_path_short}:{frame.function}"
        path = frame.file_path or ""
        if (key not in above and any(p in path for p in OURS) and "/medley/bench/" not in path
                and frame.function not in WRAPPERS):
            incl[key] = incl.get(key, 0.0) + frame.time
        own[key] = own.get(key, 0.0) + frame.total_self_time
        for child in frame.children:
            walk(child, above | {key})

    if root is not None:
        walk(root, frozenset())

    def top(d: dict[str, float]) -> list[dict[str, Any]]:
        ranked = sorted(d.items(), key=lambda kv: -kv[1])[:TOP]
        return [{"function": k, "ms_per_call": round(v / calls * 1000, 3)} for k, v in ranked]

    return {"inclusive": top(incl), "self": top(own)}


class CountingSearch:
    """Wraps the index search the recommender calls: how many, how long."""

    def __init__(self, inner: Callable[..., Any]) -> None:
        self.inner, self.calls, self.seconds = inner, 0, 0.0
        self._lock = threading.Lock()

    def __call__(self, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.inner(*args)
        finally:
            with self._lock:
                self.calls += 1
                self.seconds += time.perf_counter() - started


def _handlers(recs: Any, inputs: dict[str, Any], rng: random.Random
              ) -> dict[str, Callable[[], Any]]:
    """What each route does, minus HTTP: the answer and its serialisation."""
    from api.rec_schemas import answer_out
    from index.base import Where

    def user() -> str:
        pool = "users" if rng.random() < KNOWN_USER_SHARE else "unknown_users"
        return str(rng.choice(inputs[pool]))

    def out(answer: Any) -> str:
        return answer_out(answer, recs.table).model_dump_json()

    return {
        "similar": lambda: out(recs.similar(rng.choice(inputs["items"]), 10, Where())),
        "recommendations": lambda: out(recs.for_user(user(), 10, Where(), {"surface": "home"})),
        "new-items": lambda: out(recs.for_user(user(), 10, Where(), {}, only_new=True)),
        "search": lambda: out(recs.search(rng.choice(inputs["queries"]), 10, Where(), None)),
    }


def _thread_scaling(call: Callable[[], Any], n: int) -> dict[str, float]:
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


def _idle_tick(sync: Any, interval_s: float, rounds: int = 20) -> dict[str, Any]:
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


def _index_costs(index: Any, ids: list[str], vecs: np.ndarray, limit: int) -> dict[str, Any]:
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
    out["thread_scaling_without_payload"] = _thread_scaling(lambda: query(next(it), False), 400)
    out["created_filter"] = _created_filter(index, [q for q, _ in queries[:50]], limit)
    return out


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


def profile_inprocess(data_dir: Path, inputs: dict[str, Any], *, calls: int = CALLS,
                      say: Callable[[str], None] = print) -> dict[str, Any]:
    from pyinstrument import Profiler
    from threadpoolctl import threadpool_limits

    from enrich.registry import Family
    from medley.recs.service import Recommendations
    from workers.runtime import Runtime

    threadpool_limits(1, user_api="blas")  # as `api.service.Service.start` does
    settings = bench_settings(data_dir)
    startup: dict[str, float] = {}
    t = time.perf_counter()
    rt = Runtime.build(settings)
    rt.index()
    startup["db_and_index_open_s"] = time.perf_counter() - t
    recs = Recommendations(settings, rt.db, rt.models, rt.index, lambda: None)
    sync = recs.sync
    for name, step in (("load_items", sync.load_items), ("tail_events", sync.tail_events),
                       ("check_model", sync.check_model), ("load_editorial", sync.load_editorial)):
        t = time.perf_counter()
        step()
        startup[f"{name}_s"] = time.perf_counter() - t
    sync.ready.set()
    rec = recs.rec
    young = rec.young(rec.filters(None, None, set()), rec.clock())
    t = time.perf_counter()
    rec.warm_priors(young, len(young))  # what the server's sync ticks did before the runs
    startup["warm_new_item_priors_s"] = time.perf_counter() - t
    startup = {k: round(v, 1) for k, v in startup.items()}
    say(f"in-process start-up stages: {startup}")
    try:
        rt.models.load(Family.TEXT)
    except Exception as exc:  # search then answers from the fallback; the report says so
        say(f"text model unavailable: {exc}")
    counter = CountingSearch(recs._search)
    rec.search = counter
    rng = random.Random(5)
    handlers = _handlers(recs, inputs, rng)
    endpoints: dict[str, Any] = {}
    for name, call in handlers.items():
        for _ in range(5):
            call()  # warm: first query embedding, lazy imports
        counter.calls, counter.seconds = 0, 0.0
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        timed = summarize(times, 0, sum(times))
        entry: dict[str, Any] = {k: timed[k] for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")}
        entry["index_searches_per_call"] = round(counter.calls / calls, 2)
        entry["index_ms_per_call"] = round(counter.seconds / calls * 1000, 2)
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for _ in range(calls):
            call()
        session = profiler.stop()
        entry.update(_aggregate(session.root_frame(), calls))
        (data_dir / "profiles").mkdir(exist_ok=True)
        (data_dir / "profiles" / f"{name}.txt").write_text(
            profiler.output_text(unicode=True, color=False))
        endpoints[name] = entry
        say(f"{name}: p50 {entry['p50_ms']} ms, {entry['index_searches_per_call']} index "
            f"searches ({entry['index_ms_per_call']} ms) per call")
    rec.search = recs._search
    idle = _idle_tick(sync, settings.events_poll_interval_s)
    say(f"idle sync tick: {idle}")
    rows = rng.sample(range(len(rec.table.ids)), 200)
    index = _index_costs(rt.index(), [rec.table.ids[r] for r in rows],
                         rec.table.vectors_of(np.array(rows)), settings.candidates_per_source)
    say(f"index: {index}")
    scaling = {"similar_handler": _thread_scaling(handlers["similar"], 100)}
    rt.close()
    return {"startup_stages_s": startup, "calls": calls, "endpoints": endpoints,
            "idle_tick": idle, "index": index, "thread_scaling": scaling, "new_items": len(young),
            "priors_cached": len(rec.priors), "profiles_dir": str(data_dir / "profiles")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m medley.bench.serve_profile", description=__doc__)
    p.add_argument("--data-dir", type=Path, required=True, help="a prepared bench-serve dataset")
    p.add_argument("--out", type=Path, required=True, help="result JSON")
    p.add_argument("--calls", type=int, default=CALLS)
    a = p.parse_args(argv)
    inputs = json.loads((a.data_dir / INPUTS).read_text())
    result = profile_inprocess(a.data_dir, inputs, calls=a.calls,
                               say=lambda m: print(m, file=sys.stderr, flush=True))
    a.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
