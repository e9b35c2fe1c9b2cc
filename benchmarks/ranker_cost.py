"""What the learned ranker costs a request: the serving state built in this process as
`medley serve` builds it, on a prepared `python -m benchmarks serve` dataset, then the same
for-you and new-items requests answered with the stored model's ranker and with the hand-set
blend (the ranker taken off the model), in alternating rounds, measured in CPU time of this
process.
The answer cache is off: every request is ranked.

    python -m benchmarks.ranker_cost --data-dir data/bench-serve --out bench

writes `ranker-cost.json` and `ranker-cost.md`; a last table times each step of a for-you
request (the request thread's CPU inside the feature, index-table, model and tree calls).
`--blend-only` times the hand blend alone (any model, any code version: how two commits compare
on one dataset) into `blend-cost.*`. `--retrain` first trains the dataset's model again with
this code: a change to training is measured with the model it trains. Run it with the server
stopped (one process at a time may open the embedded index).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.report import publish
from benchmarks.serve_data import INPUTS, bench_settings, retrain

ROUNDS = 3  # ranker, blend, ranker, blend...: drift on a noisy machine hits both alike


def _serving(data_dir: Path) -> tuple[Any, Any]:
    from threadpoolctl import threadpool_limits

    from medley.recs.service import Recommendations
    from workers.runtime import Runtime

    threadpool_limits(1, user_api="blas")  # as `api.service.Service.start` does
    settings = bench_settings(data_dir)
    rt = Runtime.build(settings)
    rt.index()
    recs = Recommendations(settings.model_copy(update={"answer_cache_size": 0}), rt.db,
                           rt.models, rt.index, lambda: None)
    recs.sync.catch_up()  # as a server starts: its state then frozen out of the collector
    return rt, recs


def _cpu_ms(call: Callable[[str], Any], users: list[str]) -> float:
    for u in users[:10]:
        call(u)  # warm: lazy imports, the booster's first load
    started = time.process_time()
    for u in users:
        call(u)
    return (time.process_time() - started) / len(users) * 1000


def _paired(call: Callable[[str], Any], users: list[str], model: Any, ranker: Any
            ) -> dict[str, Any]:
    """Each user's request with the ranker and with the hand blend back to back (the order
    alternating), CPU time of each: the machine's drift hits both halves of a pair alike, so
    the per-request difference is steadier than the difference of two runs' medians. The
    interval is a 95% bootstrap of its mean over the requests."""
    import numpy as np

    both: list[tuple[float, float]] = []
    for k, u in enumerate(users):
        got = {}
        for mode in (("ranker", "blend") if k % 2 == 0 else ("blend", "ranker")):
            model.ranker = ranker if mode == "ranker" else None
            started = time.process_time()
            call(u)
            got[mode] = (time.process_time() - started) * 1000
        both.append((got["ranker"], got["blend"]))
    model.ranker = ranker
    r, b = np.array(both).T
    diff = r - b
    rng = np.random.default_rng(0)
    means = diff[rng.integers(0, len(diff), (2000, len(diff)))].mean(axis=1)
    return {"requests": len(diff), "ranker_ms": round(float(r.mean()), 3),
            "blend_ms": round(float(b.mean()), 3), "added_ms": round(float(diff.mean()), 3),
            "added_ms_median": round(float(np.median(diff)), 3),
            "added_ci95": [round(float(np.percentile(means, 2.5)), 3),
                           round(float(np.percentile(means, 97.5)), 3)]}


def measure(data_dir: Path, calls: int, blend_only: bool = False) -> dict[str, Any]:
    from api.rec_schemas import answer_out
    from index.base import Where
    from medley.recs import features

    rt, recs = _serving(data_dir)
    model = recs.rec.collab
    ranker = model.ranker if model is not None else None
    if not blend_only and (ranker is None or tuple(ranker.names) != features.NAMES):
        rt.close()
        raise SystemExit("the dataset's model has no ranker this code can serve: --retrain")
    inputs = json.loads((data_dir / INPUTS).read_text())
    rng = random.Random(3)
    users = [str(rng.choice(inputs["users"])) for _ in range(calls)]
    surfaces: dict[str, Callable[[str], Any]] = {
        "recommendations": lambda u: answer_out(
            recs.for_user(u, 10, Where(), {"surface": "home"}), recs.table).model_dump_json(),
        "new-items": lambda u: answer_out(
            recs.for_user(u, 10, Where(), {}, only_new=True), recs.table).model_dump_json(),
    }
    modes = ("blend",) if blend_only else ("ranker", "blend")
    runs: dict[str, dict[str, list[float]]] = {s: {m: [] for m in modes} for s in surfaces}
    for _ in range(ROUNDS):
        for surface, call in surfaces.items():
            for mode in modes:
                model.ranker = ranker if mode == "ranker" else None
                runs[surface][mode].append(round(_cpu_ms(call, users), 3))
    if model is not None:
        model.ranker = ranker
    paired = {} if blend_only else {surface: _paired(call, users * ROUNDS, model, ranker)
                                    for surface, call in surfaces.items()}
    trees = None if blend_only or ranker is None else \
        _tree_cost(ranker, surfaces["recommendations"], users)
    steps = None if blend_only or ranker is None else \
        _steps(surfaces["recommendations"], users, model, ranker)
    rt.close()
    out: dict[str, Any] = {"calls_per_run": calls, "rounds": ROUNDS, "runs_ms": runs,
                           "features": list(ranker.names) if ranker else [], "trees": trees,
                           "paired": paired, "steps": steps}
    for surface, r in runs.items():
        blended = statistics.median(r["blend"])
        out[surface] = {"blend_ms": blended}
        if not blend_only:
            ranked = statistics.median(r["ranker"])
            out[surface] |= {"ranker_ms": ranked, "added_ms": round(ranked - blended, 3)}
    return out


def _steps(call: Callable[[str], Any], users: list[str], model: Any, ranker: Any
           ) -> dict[str, dict[str, float]]:
    """Where a for-you request's scoring goes, per step, with the ranker and with the hand
    blend: CPU time of the request's own thread (`time.thread_time`: the process's other
    threads, the sync's and the index's, stay out of it) inside each wrapped call, ms per
    request. The wrappers are removed afterwards."""
    from medley.recs import behavior, collab, engine, features, items, knn, predicted
    from medley.recs import ranker as ranker_mod

    steps = [(engine.Recommender, "for_user"), (engine.Recommender, "score"),
             (features, "compute"), (features, "cold"), (items.ItemTable, "dots"),
             (ranker_mod.Ranker, "score"), (knn.ItemKnn, "scores_of"), (knn.ItemKnn, "top"),
             (collab.CollabModel, "scores"), (predicted.Predicted, "get"),
             (behavior.Behavior, "popularity_log"), (behavior.Behavior, "trending_log"),
             (behavior.Behavior, "counts")]
    spent: dict[str, float] = {}
    saved = [(owner, name, owner.__dict__[name]) for owner, name in steps]

    def timed(label: str, f: Callable[..., Any]) -> Callable[..., Any]:
        def run(*a: Any, **k: Any) -> Any:
            started = time.thread_time()
            try:
                return f(*a, **k)
            finally:
                spent[label] = spent.get(label, 0.0) + time.thread_time() - started
        return run

    out: dict[str, dict[str, float]] = {}
    try:
        for owner, name, f in saved:
            setattr(owner, name, timed(f"{getattr(owner, '__name__', owner)}.{name}", f))
        for mode in ("ranker", "blend"):
            model.ranker = ranker if mode == "ranker" else None
            spent.clear()
            for u in users:
                call(u)
            out[mode] = {k: round(v / len(users) * 1000, 3) for k, v in
                         sorted(spent.items(), key=lambda kv: -kv[1])}
    finally:
        for owner, name, f in saved:
            setattr(owner, name, f)
        model.ranker = ranker
    return out


def _tree_cost(ranker: Any, call: Callable[[str], Any], users: list[str]) -> dict[str, Any]:
    """The trees alone, on the feature matrices of these for-you requests: LightGBM's own
    predict, the compiled walk over the whole forest, and what the ranker serves (the cascade,
    where its model chose one), in CPU ms per request."""
    import numpy as np

    seen: list[np.ndarray] = []
    own = ranker._predict

    def recording(x: np.ndarray) -> np.ndarray:
        seen.append(x)
        return own(x)

    ranker._predict = recording
    try:
        for u in users:
            call(u)
    finally:
        del ranker._predict
    ranker.load()
    booster, forest = ranker._booster, ranker._forest
    ways: dict[str, Callable[[np.ndarray], Any]] = {
        "lightgbm": lambda x: booster.predict(x, num_threads=1), "served": ranker._predict}
    if forest is not None:
        ways["compiled, every tree"] = forest.predict
    ms: dict[str, float] = {}
    for name, way in ways.items():
        started = time.process_time()
        for x in seen:
            way(x)
        ms[name] = round((time.process_time() - started) / max(1, len(seen)) * 1000, 3)
    return {"requests": len(seen), "rows_mean": round(float(np.mean([len(x) for x in seen])), 1),
            "trees": forest.trees if forest is not None else None,
            "cascade": ranker.meta.get("cascade") or {}, "ms": ms}


def blend_report(result: dict[str, Any], commit: str) -> str:
    lines = ["# The hand blend's cost per request (`python -m benchmarks.ranker_cost "
             "--blend-only`)", "", f"CPU time per request, answer cache off, "
             f"{result['calls_per_run']} requests per run, {result['rounds']} runs (median); "
             f"commit {commit}.", "", "| surface | hand blend (ms) | runs |", "|---|---|---|"]
    for surface in ("recommendations", "new-items"):
        lines.append(f"| {surface} | {result[surface]['blend_ms']} | "
                     f"{result['runs_ms'][surface]['blend']} |")
    return "\n".join(lines) + "\n"


def report(result: dict[str, Any], commit: str) -> str:
    lines = ["# What the learned ranker costs a request (`python -m benchmarks.ranker_cost`)", "",
             f"CPU time of the serving process per request, answer cache off, "
             f"{result['calls_per_run']} requests per run, {result['rounds']} alternating runs "
             f"per mode (median shown); commit {commit}. The blend is the hand-set blend the "
             "service falls back to (the same request with the ranker taken off the model).", "",
             "| surface | with the ranker (ms) | hand blend (ms) | the ranker adds (ms) "
             "| runs (ranker / blend) |",
             "|---|---|---|---|---|"]
    for surface in ("recommendations", "new-items"):
        r, runs = result[surface], result["runs_ms"][surface]
        lines.append(f"| {surface} | {r['ranker_ms']} | {r['blend_ms']} | {r['added_ms']} | "
                     f"{runs['ranker']} / {runs['blend']} |")
    paired = result.get("paired")
    if paired:
        lines += ["", "Paired: each user's request with the ranker and with the blend back to back "
                  "(order alternating), so drift hits both; mean CPU ms per request and a 95% "
                  "bootstrap interval of the mean difference:", "",
                  "| surface | requests | with the ranker | hand blend | the ranker adds "
                  "(mean) | 95% interval | median of the differences |",
                  "|---|---|---|---|---|---|---|"]
        for surface in ("recommendations", "new-items"):
            p = paired[surface]
            lo, hi = p["added_ci95"]
            lines.append(f"| {surface} | {p['requests']} | {p['ranker_ms']} | {p['blend_ms']} | "
                         f"{p['added_ms']} | [{lo}, {hi}] | {p['added_ms_median']} |")
    lines += ["", f"Features ({len(result['features'])}): {', '.join(result['features'])}."]
    trees = result.get("trees")
    if trees:
        stages = trees["cascade"]
        how = (f"a cascade: every candidate through the first {stages['trees']} trees, the best "
               f"{stages['shortlist']} through the rest (validation NDCG@10 {stages['ndcg@10']}"
               f" against {stages['full_ndcg@10']} for the whole forest)") if stages else \
            "every candidate through every tree (the model chose no cascade)"
        lines += ["", f"The trees alone, on the {trees['requests']} for-you requests' feature "
                  f"matrices ({trees['rows_mean']} candidates each on average, "
                  f"{trees['trees']} trees); the ranker serves {how}:", "",
                  "| scoring | CPU ms per request |", "|---|---|"]
        lines += [f"| {name} | {v} |" for name, v in trees["ms"].items()]
    steps = result.get("steps")
    if steps:
        lines += ["", "Where a for-you request's time goes, per step: CPU time of the request's "
                  "thread inside each call, ms per request (nested: `for_user` holds `score`, "
                  "which holds the rest; steps the blend does not call are blank):", "",
                  "| step | with the ranker | hand blend |", "|---|---|---|"]
        lines += [f"| {name} | {v} | {steps['blend'].get(name, '')} |"
                  for name, v in steps["ranker"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ranker_cost", description=__doc__)
    p.add_argument("--data-dir", type=Path, required=True, help="a prepared bench-serve dataset")
    p.add_argument("--out", type=Path, default=Path("bench"), help="report folder")
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--blend-only", action="store_true", help="time the hand blend alone")
    p.add_argument("--retrain", action="store_true",
                   help="first train the dataset's model again with this code")
    a = p.parse_args(argv)
    if a.retrain:
        retrain(a.data_dir)
    result = measure(a.data_dir, a.calls, a.blend_only)
    print(publish(a.out, "blend-cost" if a.blend_only else "ranker-cost", result,
                  blend_report if a.blend_only else report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
