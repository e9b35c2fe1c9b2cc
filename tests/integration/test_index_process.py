"""The embedded shard in a process of its own (index/process.py): calls answered by the child,
an outage while it is away, the same data after the watcher restarts it, no child left
behind a killed server, and a serving app answering through it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index.base import IndexPoint, IndexUnavailable
from index.process import IndexProcess, remote
from medley.config import Settings
from tests.api.conftest import wait_until

pytestmark = pytest.mark.integration

DIM = 8


def _settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, index_process=True)


def _points(n: int) -> list[IndexPoint]:
    rng = np.random.default_rng(0)
    return [IndexPoint(str(uuid.UUID(int=k + 1)), {"text": rng.standard_normal(DIM).tolist()})
            for k in range(n)]


def test_calls_are_answered_by_the_child_and_survive_its_restart(tmp_path: Path) -> None:
    proc = IndexProcess(_settings(tmp_path))
    proc.start({"text": DIM})
    try:
        idx = remote(_settings(tmp_path))
        points = _points(20)
        idx.upsert(points)
        hits = idx.search("text", list(points[3].vectors["text"]), 3, with_payload=False)
        assert hits[0].id == points[3].id
        assert proc.pid() not in (None, os.getpid())

        os.kill(proc.pid() or 0, signal.SIGKILL)  # the child dies: an outage, not a hang
        wait_until(lambda: not _answers(idx), 10)
        with pytest.raises(IndexUnavailable):
            idx.count()

        import threading

        threading.Thread(target=proc.watch, daemon=True).start()
        wait_until(lambda: _answers(idx), 60)  # the watcher started a new child on the same shard
        assert proc.restarts == 1
        assert idx.count() == 20
        hits = idx.search("text", list(points[7].vectors["text"]), 1, with_payload=False)
        assert hits[0].id == points[7].id
    finally:
        proc.stop()


def _answers(idx) -> bool:
    try:
        idx.count()
        return True
    except IndexUnavailable:
        return False


def test_a_killed_server_leaves_no_index_process_holding_the_shard(tmp_path: Path) -> None:
    """The parent is SIGKILLed (no clean-up runs): its child notices and exits, and the
    next server can open the shard."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from index.process import IndexProcess, remote\n"
        "from medley.config import Settings\n"
        "p = IndexProcess(Settings(data_dir=Path(sys.argv[1]), index_process=True))\n"
        "p.start({'text': 8})\n"
        "print(p.pid(), flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        parent.kill()
        parent.wait(10)
        wait_until(lambda: not _alive(child), 15)
    finally:
        parent.kill()
    proc = IndexProcess(_settings(tmp_path))
    proc.start({"text": DIM})  # the shard's lock was released with the child
    try:
        assert remote(_settings(tmp_path)).count() == 0
    finally:
        proc.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def test_a_serving_app_answers_through_the_index_process(tmp_path: Path,
                                                       tiny_clip: dict[str, Any]) -> None:
    """The default deployment: uploaded items are indexed and searched through the child,
    and /healthz says where the index runs."""
    from tests.api.conftest import embedded_app, serving_caught_up, wait_for

    with embedded_app(tmp_path, tiny_clip, index_process=True) as client:
        assert client.get("/healthz").json()["index"]["backend"] == \
            "embedded, in its own process"
        ids = []
        for title in ("volcano eruption and lava", "volcanic lava flows at night",
                      "baking sourdough bread at home"):
            r = client.post("/v1/items", data={"metadata": json.dumps(
                {"title": title, "description": title})})
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        for item_id in ids:
            wait_for(client, item_id, timeout=120)
        # The serving table takes each item's last vector a moment after "ready" (its next
        # pass): until then an item may be served from a vector of fewer modalities.
        wait_until(lambda: serving_caught_up(client), 60)
        wait_until(lambda: not client.get(f"/v1/items/{ids[0]}/similar").json()["fallback"],
                   60)
        similar = client.get(f"/v1/items/{ids[0]}/similar").json()
        assert [i["item_id"] for i in similar["items"]][:1] == [ids[1]]
        found = client.get("/v1/search", params={"q": "lava"}).json()
        assert not found["fallback"] and {i["item_id"] for i in found["items"]} >= set(ids[:2])
