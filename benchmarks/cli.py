"""`python -m benchmarks`: the benchmarks, each writing a JSON report and its markdown view
(into bench/ by default). Run from a checkout: they are not in the wheel or the image.

Sub-commands: enrich, serve, scale, sizes, drain, ingest, refusion, experiment, trust, and eval
(the offline evaluation on MovieLens). Single measurements run as modules of their own:
`python -m benchmarks.ranker_cost`, `.scan_cost`, `.cals_cost`, `.serve_profile`, `.index_call`,
`.exposure_size`, `.startup`, `.startup_stages`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Medley's benchmarks: each writes JSON + markdown reports.",
                  no_args_is_help=True)

# The options most commands share, declared once.
Items = Annotated[int, typer.Option(help="synthetic items")]
Events = Annotated[int, typer.Option(help="synthetic events")]
Out = Annotated[Path, typer.Option(help="report folder")]
DataDir = Annotated[Path, typer.Option(help="dataset folder, reused when it matches")]


@app.command("eval")
def evaluate(
    data: Path = typer.Option(Path("../shared/data/movielens-small"), "--data"),
    out: Path = typer.Option(Path("bench"), "--out"),
    tune: bool = typer.Option(False, "--tune", help="choose settings on a validation split"),
) -> None:
    """Offline evaluation on MovieLens: Medley's blend beside popularity, ALS and content-only."""
    from benchmarks.eval_report import results_table
    from benchmarks.eval_run import run_eval
    from medley.config import get_settings

    report = run_eval(data, out, cache_dir=get_settings().data_dir / "eval", tune_settings=tune)
    typer.echo(results_table(report["results"]))
    changed = {k: v for k, v in report["settings"].items() if v != report["defaults"][k]}
    typer.echo(f"beats every peer: {report['medley_beats_every_peer']}; settings changed from "
               f"the defaults: {changed or 'none'}; {report['runtime_s']} s")


@app.command("enrich")
def bench_enrich(
    out: Out = Path("bench"),
    quick: Annotated[bool, typer.Option(help="fewer repeats")] = False,
) -> None:
    """Model throughput beside plain peers, and upload-to-ready for a 30 s video."""
    from benchmarks.enrich import run_enrich_bench
    from benchmarks.pipeline import measure_upload_to_ready

    stages = measure_upload_to_ready()
    result = run_enrich_bench(out, quick=quick, stages=stages)
    typer.echo(json.dumps(result.get("summary", result), indent=2, default=str))


@app.command("serve")
def bench_serve(
    items: Items = 100_000,
    events: Events = 1_000_000,
    duration: Annotated[float, typer.Option(help="seconds per endpoint and client count")] = 15.0,
    out: Out = Path("bench"),
    data_dir: DataDir = Path("data/bench-serve"),
    rebuild: Annotated[bool, typer.Option(help="build the dataset again")] = False,
) -> None:
    """Latency of the recommendation endpoints (1 and 16 clients) on a synthetic catalog."""
    from benchmarks.serve import run_serve_bench

    result = run_serve_bench(out, data_dir, items=items, events=events, duration=duration,
                             rebuild=rebuild)
    typer.echo(json.dumps(result["summary"], indent=2, default=str))


@app.command("scale")
def bench_scale(
    items: Items = 100_000,
    events: Events = 1_000_000,
    processes: Annotated[str, typer.Option(help="API process counts, comma-separated")] = "1,2,4",
    duration: Annotated[float, typer.Option(help="seconds per endpoint and count")] = 15.0,
    out: Out = Path("bench"),
    data_dir: DataDir = Path("data/bench-serve"),
) -> None:
    """Throughput of the read endpoints with 1, 2 and 4 API processes (16 clients)."""
    from benchmarks.serve_scale import run_scale_bench

    counts = [int(n) for n in processes.split(",") if n.strip()]
    result = run_scale_bench(out, data_dir, items=items, events=events, processes=counts,
                             duration=duration)
    typer.echo(json.dumps(result["runs"], indent=2, default=str))


@app.command("sizes")
def bench_sizes(
    out: Annotated[Path, typer.Option(help="report folder (and where scale-*.json are)")] = Path(
        "bench"),
) -> None:
    """Plot latency and memory against catalog size from `scale`'s reports."""
    from benchmarks.serve_sizes import run_sizes_report

    result = run_sizes_report(out, sorted(out.glob("scale-*.json")))
    typer.echo(json.dumps(result["memory_fit"], indent=2))


@app.command("drain")
def bench_drain(
    tasks: Annotated[int, typer.Option(help="short tasks to drain")] = 200,
    task_ms: Annotated[float, typer.Option(help="each task's stand-in work")] = 20.0,
    items: Annotated[int, typer.Option(help="text-only items for the end-to-end run")] = 150,
    out: Out = Path("bench"),
) -> None:
    """How fast the embedded worker takes tasks: plumbing alone, then text items end to end."""
    from benchmarks.drain import run_drain_bench
    from medley.config import get_settings

    result = run_drain_bench(out, tasks, task_ms, items, get_settings().models_dir)
    typer.echo(json.dumps(result, indent=2))


@app.command("ingest")
def bench_ingest(
    items: Annotated[int, typer.Option(help="catalog items (70% image, 20% speech, 1% video, "
                                       "the rest text only)")] = 2000,
    seed: Annotated[int, typer.Option(help="catalog seed")] = 0,
    broker: Annotated[str, typer.Option(help="Redis database for the distributed run "
                                        "(flushed before and after)")] = "redis://127.0.0.1:6379/11",
    database: Annotated[str, typer.Option(help="the distributed run's database: postgresql "
                                          "(a fresh one) or sqlite")] = "postgresql",
    pg_admin: Annotated[str, typer.Option(help="PostgreSQL URL allowed to create databases")] = (
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
    out: Out = Path("bench"),
) -> None:
    """A catalog import through `medley ingest`: the embedded default beside Redis + workers."""
    from benchmarks.ingest import run_ingest_bench
    from medley.config import get_settings

    if database not in ("postgresql", "sqlite"):
        raise typer.BadParameter("--database is postgresql or sqlite")
    result = run_ingest_bench(out, get_settings().data_dir / "bench-ingest", items=items,
                              seed=seed, broker=broker, database=database, pg_admin=pg_admin,
                              say=lambda s: typer.echo(s, err=True))
    typer.echo(json.dumps({k: result[k] for k in ("ratio_embedded_to_distributed",
                                                  "model_only", "runtime_s")}, indent=2))


@app.command("refusion")
def bench_refusion(
    items: Items = 100_000,
    out: Out = Path("bench"),
    data_dir: Annotated[Path, typer.Option(help="catalog folder, reused when it matches")] = Path(
        "data/bench-refusion"),
) -> None:
    """Publishing a fusion profile: every item re-fused from stored vectors, no model called."""
    from benchmarks.refusion import run_refusion_bench

    result = run_refusion_bench(out, data_dir, items=items)
    typer.echo(json.dumps(result["runs"], indent=2, default=str))


@app.command("experiment")
def bench_experiment(
    seeds: Annotated[int, typer.Option(help="simulated experiments per result")] = 20,
    live: Annotated[int, typer.Option(help="simulated users per experiment against the live "
                                      "HTTP service (0: skip)")] = 3000,
    out: Out = Path("bench"),
) -> None:
    """Simulated users against the experiment engine: A/B, A/A, breaker, SRM, interleaving."""
    from benchmarks.experiment import run_experiment_bench

    result = run_experiment_bench(out, seeds=seeds, live_users=live)
    typer.echo(json.dumps({k: v for k, v in result.items() if k not in ("ab", "interleaving")},
                          indent=2, default=str))


@app.command("trust")
def bench_trust(
    items: Items = 5000,
    events: Events = 50_000,
    clients: Annotated[int, typer.Option(help="concurrent load clients")] = 16,
    duration: Annotated[float, typer.Option(help="load seconds")] = 60.0,
    examples: Annotated[int, typer.Option(help="fuzz cases per operation and mode")] = 50,
    out: Out = Path("bench"),
    data_dir: Annotated[Path, typer.Option(help="dataset folder (rebuilt)")] = Path(
        "data/bench-trust"),
) -> None:
    """Hostile input at scale: load with event accounting, then schemathesis, on a live server."""
    from benchmarks.trust import run_trust_bench

    result = run_trust_bench(out, data_dir, items=items, events=events, clients=clients,
                             duration=duration, fuzz_examples=examples)
    typer.echo(json.dumps(result["verdict"], indent=2))
    if not result["verdict"]["ok"]:
        raise typer.Exit(1)
