"""The embedded worker takes queued tasks as fast as it finishes them: its plumbing (the
in-memory broker's polling) must not bound a catalog import."""

from __future__ import annotations

from benchmarks.drain import drain_rate
from medley.config import Settings


def test_the_embedded_worker_drains_short_tasks_without_waiting_on_the_broker() -> None:
    # The embedded default's broker and worker as `workers.app.configure` sets them up.
    drained = drain_rate(Settings().embedded_poll_interval_s, tasks=60, task_ms=0.0)
    assert drained["tasks"] == 60
    # Two slots at kombu's default 1 s polling took ~30 s for this (about 2 tasks/s); at the
    # embedded interval it takes well under a second. 10 s leaves room for a busy machine.
    assert drained["seconds"] < 10, f"{drained}: the worker waits on polling"
