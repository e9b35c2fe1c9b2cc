"""`medley keys` and the first admin key `medley serve` prints: what an operator sees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medley import cli
from medley.config import Settings, get_settings
from medley.db import Database
from medley.keys import KeyStore, Role


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MEDLEY_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MEDLEY_DATABASE_URL", raising=False)
    monkeypatch.delenv("MEDLEY_BOOTSTRAP_ADMIN_KEY", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _store(data_dir: Path) -> KeyStore:
    db = Database(Settings(data_dir=data_dir).resolved_database_url)
    db.migrate()
    return KeyStore(db, cache_s=0)


def test_create_prints_the_secret_once_and_list_never_does(data_dir: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(cli.app, ["keys", "create", "--role", "editor", "--name", "Ada"])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip().splitlines()[0]
    assert secret.startswith("mdl_")
    who = _store(data_dir).verify(secret)
    assert who is not None and who.role is Role.EDITOR and who.name == "Ada"
    listed = runner.invoke(cli.app, ["keys", "list"])
    assert "Ada" in listed.stdout and "editor" in listed.stdout and secret not in listed.stdout
    gone = runner.invoke(cli.app, ["keys", "revoke", who.key_id])
    assert gone.exit_code == 0 and _store(data_dir).verify(secret) is None
    assert "revoked" in runner.invoke(cli.app, ["keys", "list"]).stdout


def test_bad_role_and_unknown_key_are_refused_plainly(data_dir: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(cli.app, ["keys", "create", "--role", "root"])
    assert bad.exit_code != 0 and "is not one of" in bad.output
    missing = runner.invoke(cli.app, ["keys", "revoke", "nope"])
    assert missing.exit_code != 0 and "no API key" in missing.output


def test_serve_prints_a_first_admin_key_only_on_an_empty_database(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli._first_admin_key(get_settings())
    printed = capsys.readouterr().err
    secret = next(w for w in printed.split() if w.startswith("mdl_"))
    who = _store(data_dir).verify(secret)
    assert who is not None and who.role is Role.ADMIN
    cli._first_admin_key(get_settings())  # a restart prints nothing: the key exists
    assert "mdl_" not in capsys.readouterr().err
    assert len(_store(data_dir).list()) == 1


def test_a_deployment_key_from_settings_replaces_the_printed_one(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(data_dir=data_dir, bootstrap_admin_key="mdl_from_a_secret_store")
    cli._first_admin_key(settings)
    assert "mdl_" not in capsys.readouterr().err
    store = _store(data_dir)
    store.ensure_bootstrap("mdl_from_a_secret_store")
    store.ensure_bootstrap("mdl_from_a_secret_store")  # every start: still one key
    assert [k.role for k in store.list()] == [Role.ADMIN]
    assert store.verify("mdl_from_a_secret_store") is not None
    store.ensure_bootstrap("mdl_rotated")  # the secret changed: the old one stops working
    assert store.verify("mdl_from_a_secret_store") is None
    assert store.verify("mdl_rotated") is not None
