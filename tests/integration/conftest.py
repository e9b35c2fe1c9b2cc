"""Fixtures of the fault tests (test_faults.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN
from tests.support.faults import SmallDisk


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """A PostgreSQL database of this test's own: the sweep re-sends what it finds queued, so no
    other test's leftovers may be there."""
    from sqlalchemy import create_engine, text

    name = f"medley_fault_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def small_disks() -> Iterator[Callable[[Path, int], SmallDisk]]:
    made: list[SmallDisk] = []

    def make(path: Path, size_mib: int) -> SmallDisk:
        made.append(SmallDisk(path, size_mib))
        return made[-1]

    yield make
    for disk in reversed(made):
        disk.unmount()
