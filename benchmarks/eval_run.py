"""`python -m benchmarks eval`, the run: the protocol (`medley.recs.evaluation`, with the peers
and tuning of `benchmarks.evaluate`: fit, measure, tune) on both splits of MovieLens, then the
report (`benchmarks.eval_report`) written as bench/eval.json and bench/eval.md. Kept apart from
both, so the report reads the protocol's definitions and the protocol knows nothing of the
report."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks import movielens as ml
from benchmarks import peers
from benchmarks.eval_report import report
from benchmarks.evaluate import (
    EVAL_OVERRIDES,
    World,
    build_table,
    fit,
    measure,
    peers_of,
    tune,
)
from benchmarks.movielens import Movie
from benchmarks.report import write_report
from medley.config import Settings
from medley.recs import evaluation
from medley.recs.evaluation import train_collab
from medley.recs.learn import describe


def _with_peers(w: World, settings: Settings) -> World:
    """`w` with its peers prepared; the blend is chosen on a validation split of its training
    ratings, with ALS alone trained there."""
    w.peers = peers.prepare(w, settings, lambda s: train_collab(s, settings))
    return w


def run_eval(data: Path, out: Path | None, *, embed: ml.Embed | None = None,
             cache_dir: Path | None = Path("data/eval"), tune_settings: bool = False,
             overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The whole evaluation with Medley's settings as it ships (or, with `tune_settings`, the
    settings one pass of tuning on a validation split chooses); writes out/eval.json and
    out/eval.md unless `out` is None. `embed` replaces the packaged text model (tests); only
    the packaged model's vectors are cached under `cache_dir`."""
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    ratings, movies = ml.load(data)
    test = evaluation.split(ratings, list(movies))
    cut = evaluation.split(ratings, list(movies), per_user=False)
    texts = [movies.get(i, Movie(i, ())).text for i in test.catalog]
    cache = cache_dir if embed is None else None
    matrix = ml.embed_catalog(texts, embed or ml.default_embedder(), cache, "minilm-int8")
    vectors = dict(zip(test.catalog, matrix, strict=True))
    settings = Settings(data_dir=cache_dir or Path("data/eval"),
                        **{**EVAL_OVERRIDES, **dict(overrides or {})})
    trail: list[Any] = []
    with threadpool_limits(1, "blas"):  # small matrices: a second BLAS thread only spins
        on_val = None
        if tune_settings:
            val = evaluation.split(test.train, test.candidates, test_share=0.1, seed=1)
            val_table = build_table(val, movies, vectors)
            best, trail = tune(val, val_table, settings)
            settings = settings.model_copy(update=best)
            on_val = (val, measure(fit(val, val_table, settings)))
        worlds = [_with_peers(fit(s, build_table(s, movies, vectors), settings), settings)
                  for s in (test, cut)]
        results, at_cut = (measure(w) for w in worlds)
    splits = ("per_user", "global_cut")
    peer_info = {name: peers_of(w).describe() for name, w in zip(splits, worlds, strict=True)}
    model_info = {name: describe(w.collab) for name, w in zip(splits, worlds, strict=True)}
    data_out = report(test, results, cut, at_cut, settings, trail, on_val,
                      time.perf_counter() - t0, peer_info, ml.about(data), model_info)
    if out is not None:
        write_report(out, "eval", {k: v for k, v in data_out.items() if k != "markdown"},
                     data_out["markdown"])
    return data_out
