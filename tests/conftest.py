"""Shared fixtures: a tiny random-weight CLIP, real sample media, database backends, the app."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from medley.config import Precision, Settings

PG_ADMIN = os.environ.get("MEDLEY_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("MEDLEY_TEST_REDIS", "redis://127.0.0.1:6379/0")
# The admin key test apps honour (Settings.bootstrap_admin_key); other roles' keys are minted
# per test through the app's key store.
ADMIN_KEY = "mdl_testadmin_0123456789abcdef0123456789abcdef"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
# Test apps (and the servers tests start as subprocesses, which inherit this) open the embedded
# shard in their own process, where index faults can be injected; tests/integration/
# test_index_process.py runs the default, the shard in a process of its own.
os.environ.setdefault("MEDLEY_INDEX_PROCESS", "false")
# anyio imports its file module on the first `anyio.open_file` (a FileResponse), and pytest
# rewrites anyio's modules as it imports them (anyio is a pytest plugin). Done on a request
# thread while another thread compiles, that rewrite hit CPython 3.11's "AST constructor
# recursion depth mismatch" SystemError in one full run (the console test); imported here,
# once, before any thread starts.
import anyio._core._fileio  # noqa: E402, F401


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> dict[str, Any]:
    """Settings for a tiny random-weight CLIP (plus the shared model cache)."""
    from tests.support.tiny_models import write_tiny_clip

    config, ckpt = write_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))
    return {"clip_model": config.stem, "clip_model_config": config, "clip_checkpoint": ckpt,
            "model_cache_dir": model_cache}


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Derived weights (int8 text encoder, converted Whisper) built once per test session."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from medley.samples import build_samples

    return build_samples(tmp_path_factory.mktemp("samples"))


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"medley_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # pragma: no cover - CI always has PostgreSQL
        pytest.fail(f"PostgreSQL is required for these tests: {exc}")
    yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# PostgreSQL cases are integration tests: `make test-fast` leaves them out.
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'medley.db'}"
    url: str = request.getfixturevalue("pg_url")
    from sqlalchemy import create_engine

    from medley.db.models import Base

    eng = create_engine(url)
    with eng.begin() as c:  # each test starts from empty tables
        for table in reversed(Base.metadata.sorted_tables):
            if eng.dialect.has_table(c, table.name):
                c.execute(table.delete())
    eng.dispose()
    return url


@pytest.fixture
def make_settings(tmp_path: Path, tiny_clip: dict[str, Any]) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "clip_precision": Precision.FP32,
            "stale_sweep_interval_s": 1.0,
            "bootstrap_admin_key": ADMIN_KEY,
            **tiny_clip,
        }
        base.update(overrides)
        return Settings(**base)

    return make


@pytest.fixture
def client_for() -> Iterator[Callable[[Settings], Any]]:
    """Start the real app (lifespan, in-process worker, embedded index) for given settings."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    opened: list[TestClient] = []

    def start(settings: Settings) -> TestClient:
        client = TestClient(create_app(settings), headers=AUTH)
        client.__enter__()
        opened.append(client)
        return client

    yield start
    for client in reversed(opened):
        client.__exit__(None, None, None)


def wait_for(
    client: Any,
    item_id: str,
    timeout: float = 180.0,
    done: tuple[str, ...] = ("ready", "partial", "failed"),
) -> dict[str, Any]:
    """Poll an item until it reaches a final status (and the index caught up)."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get(f"/v1/items/{item_id}").json()
        if body.get("status") in done and body.get("indexed"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"item {item_id} did not finish in {timeout}s: {body}")


@contextmanager
def database_with_items(url: str, n: int, tags: Callable[[int], list[str]] = lambda k: []
                        ) -> Iterator[Any]:
    """A migrated database holding ready items item-0 .. item-{n-1} ("Item k"), disposed
    after: what tests of events, behaviour and erasure need the catalog to hold."""
    from medley.db import Database
    from medley.db.models import Item

    db = Database(url)
    db.migrate()
    with db.session() as s:
        for k in range(n):
            s.add(Item(id=f"item-{k}", title=f"Item {k}", description="", tags=tags(k),
                       attributes={}, status="ready"))
    try:
        yield db
    finally:
        db.dispose()
