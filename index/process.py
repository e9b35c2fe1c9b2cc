"""The embedded index in a process of its own, called by every serving process.

Qdrant Edge's Python binding keeps the GIL while it works: a 100-result search of the fused
slot takes ~4 ms at 100k items on this machine's cores, and an `optimize()` of 30,000 vectors
froze every other thread of its process for its 6.4 s (measured: one search got through).
In the serving process, each search therefore stopped every other request's Python for its
duration, and two request threads searching at once ran at 1.2x one. Here the shard lives in
a child process (`MEDLEY_INDEX_PROCESS`, on by default for the embedded index): the API
processes, owner and peers alike, send it each index call over a local socket (the owner
channel of medley/owner.py, under the name "index"), and their own Python runs meanwhile.

The child exits when its parent does (it watches its parent's pid), so a killed server never
leaves a process holding the shard's lock. If the child dies, calls fail as an index outage
would (`IndexUnavailable`: answers fall back, flagged) until the watcher has started a new one.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from index.remote import OPERATIONS, RemoteIndex
from medley import owner
from medley.config import StorageSettings

log = logging.getLogger(__name__)
CHANNEL = "index"
START_TIMEOUT_S = 600.0  # opening a large shard reads its vectors and graphs from disk
WATCH_S = 1.0  # how often the child checks its parent, and the parent its child
CALL_TIMEOUT_S = 30.0  # a write of a large batch, or a search queued behind one


def main(argv: list[str] | None = None) -> int:
    """The child: `python -m index.process DATA_DIR SHARD_PATH PARENT_PID DIMS_JSON`. Opens
    the shard with these named vectors, says "ready" on stdout, answers index calls until its
    parent is gone."""
    from index.edge import EdgeIndex

    data_dir, shard, parent, dims = argv if argv is not None else sys.argv[1:]
    # `terminate()` sends SIGTERM: leave through `finally`, so the shard is closed, not cut.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    idx = EdgeIndex(Path(shard))
    idx.ensure(json.loads(dims))
    server = owner.OwnerServer(Path(data_dir),
                               {f"index.{op}": getattr(idx, op) for op in OPERATIONS},
                               name=CHANNEL)
    server.start()
    print("ready", flush=True)
    os.dup2(2, 1)  # nobody reads the pipe after this line: anything printed goes to the log
    try:
        while os.getppid() == int(parent):  # re-parented: the server that started us is gone
            time.sleep(WATCH_S)
    finally:
        server.close()
        idx.close()
    return 0


class IndexProcess:
    """The parent's side: start the child, hand out clients, restart a child that died."""

    def __init__(self, settings: StorageSettings) -> None:
        self.settings = settings
        self._proc: subprocess.Popen[str] | None = None
        self._dims: dict[str, int] = {}  # the named vectors, for a restart
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.restarts = 0

    def start(self, dims: Mapping[str, int] | None = None) -> None:
        """Start the child with these named vectors (a restart: those of the last start) and
        wait until it answers (raises if it dies or takes too long). A plain subprocess, not
        multiprocessing: the child must not re-import whatever `__main__` the server ran."""
        s = self.settings
        with self._lock:
            if dims is not None:
                self._dims = dict(dims)
            proc = subprocess.Popen(
                [sys.executable, "-m", "index.process", str(s.data_dir),
                 str(s.index_dir / s.collection), str(os.getpid()), json.dumps(self._dims)],
                stdout=subprocess.PIPE, text=True)  # its stderr is the server's: one log
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
            if not ready or proc.stdout.readline().strip() != "ready":
                proc.kill()
                proc.wait()
                raise RuntimeError(f"the index process did not start (exit code "
                                   f"{proc.returncode}); its log above says why")
            self._proc = proc

    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def watch(self) -> None:
        """Restart the child whenever it dies (a thread's loop, until `stop`)."""
        while not self._stop.wait(WATCH_S):
            proc = self._proc
            if proc is None or proc.poll() is None:
                continue
            log.error("the index process exited (code %s); starting it again", proc.returncode)
            try:
                self.start()
                self.restarts += 1
            except Exception:
                log.exception("the index process could not be started again; retrying")

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def remote(settings: StorageSettings) -> RemoteIndex:
    """An index answered by the data folder's index process."""
    client = owner.OwnerClient(settings.data_dir, timeout_s=CALL_TIMEOUT_S, name=CHANNEL)
    return RemoteIndex(client.call)


if __name__ == "__main__":
    raise SystemExit(main())
