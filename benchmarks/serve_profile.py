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

from benchmarks.loadgen import KNOWN_USER_SHARE, summarize
from benchmarks.serve_data import INPUTS, bench_settings
from benchmarks.serve_probes import idle_tick, index_costs, index_recall, thread_scaling

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
        if (key not in above and any(p in path for p in OURS) and "/benchmarks/" not in path
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


def profile_inprocess(data_dir: Path, inputs: dict[str, Any], *, calls: int = CALLS,
                      say: Callable[[str], None] = print, user_lists_on: bool = True
                      ) -> dict[str, Any]:
    from pyinstrument import Profiler
    from threadpoolctl import threadpool_limits

    from enrich.registry import Family
    from medley.recs import neighbours, user_lists
    from medley.recs.service import Recommendations
    from workers.runtime import Runtime

    threadpool_limits(1, user_api="blas")  # as `api.service.Service.start` does
    settings = bench_settings(data_dir)
    startup: dict[str, float] = {}
    t = time.perf_counter()
    rt = Runtime.build(settings)
    rt.index()
    startup["db_and_index_open_s"] = time.perf_counter() - t
    # What a request costs when it is ranked: the answer cache off (a hit is a dict lookup).
    # `user_lists`: False serves without nearline user candidates (the code before them).
    off = {"answer_cache_size": 0, **({} if user_lists_on else {"user_lists_size": 0})}
    recs = Recommendations(settings.model_copy(update=off), rt.db,
                           rt.models, rt.index, lambda: None)
    sync = recs.sync
    def stated() -> None:  # whose wishes to read per request: the sync's first poll reads it
        with rt.db.session() as s:
            sync.stated.refresh(s)

    for name, step in (("stated_users", stated),
                       ("load_fusion", sync.load_fusion),  # the published view, as served
                       ("load_items", sync.load_items),
                       ("restore_neighbours", sync.restore_neighbours),  # a server's save
                       ("restore_snapshot", sync.restore_snapshot),  # what a server saved
                       ("tail_events", sync.tail_events),
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
    # What the server's sync finds ahead of requests: every item's neighbour list (those not
    # restored above; its ticks search them) and the collaborative model's item lists.
    t = time.perf_counter()
    neighbours.fill(rec.neighbours, rec.table, recs.index_search, len(rec.table.ids))
    startup["neighbour_lists_s"] = time.perf_counter() - t
    t = time.perf_counter()
    while rec.collab is not None and rec.collab.neighbours is None:  # check_model's thread
        time.sleep(0.1)
    startup["collab_neighbour_lists_s"] = time.perf_counter() - t  # what was left of it
    t = time.perf_counter()  # and every known user's nearline candidates (its idle ticks)
    while user_lists.fill(rec.user_lists, lambda: list(rec.behavior.users), rec.personal.warm,
                          60.0, rec.personal.walk_key()):
        pass
    startup["user_lists_s"] = time.perf_counter() - t
    kept = {"users": len(rec.user_lists), "mib": round(rec.user_lists.nbytes() / 2**20, 1)}
    startup = {k: round(v, 1) for k, v in startup.items()}
    say(f"in-process start-up stages: {startup}")
    try:
        rt.models.load(Family.TEXT)
    except Exception as exc:  # search then answers from the fallback; the report says so
        say(f"text model unavailable: {exc}")
    counter = CountingSearch(recs.index_search)
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
    rec.search = recs.index_search
    idle = idle_tick(sync, settings.events_poll_interval_s)
    say(f"idle sync tick: {idle}")
    rows = rng.sample(range(len(rec.table.ids)), 200)
    index = index_costs(rt.index(), [rec.table.ids[r] for r in rows],
                         rec.table.vectors_of(np.array(rows)), settings.candidates_per_source)
    index["recall"] = index_recall(rt.index(), rec.table, rows[:20],
                                   settings.candidates_per_source)
    say(f"index: {index}")
    scaling = {"similar_handler": thread_scaling(handlers["similar"], 100)}
    rt.close()
    return {"startup_stages_s": startup, "user_lists": kept, "calls": calls,
            "endpoints": endpoints,
            "idle_tick": idle, "index": index, "thread_scaling": scaling, "new_items": len(young),
            "priors_cached": len(rec.priors), "profiles_dir": str(data_dir / "profiles")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.serve_profile", description=__doc__)
    p.add_argument("--data-dir", type=Path, required=True, help="a prepared bench-serve dataset")
    p.add_argument("--out", type=Path, required=True, help="result JSON")
    p.add_argument("--calls", type=int, default=CALLS)
    p.add_argument("--no-user-lists", action="store_true",
                   help="serve without nearline user candidates (MEDLEY_USER_LISTS_SIZE=0)")
    a = p.parse_args(argv)
    inputs = json.loads((a.data_dir / INPUTS).read_text())
    result = profile_inprocess(a.data_dir, inputs, calls=a.calls,
                               say=lambda m: print(m, file=sys.stderr, flush=True),
                               user_lists_on=not a.no_user_lists)
    a.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
