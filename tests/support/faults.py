"""Real faults for tests/integration/test_faults.py: a private Redis server that can be killed
and restarted, and a small real filesystem that can be filled."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private redis-server (the system one on 6379 is shared), keeping nothing on disk."""

    def __init__(self, folder: Path) -> None:
        self.port = _free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=(self.folder / "redis.log").open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.ping():
                return
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)  # the worst case: no shutdown, nothing saved
            self.proc.wait(10)



class SmallDisk:
    """A real filesystem of a few MiB (tmpfs) mounted over a folder of the app's, and a filler
    file that uses it up: writes there fail with ENOSPC exactly as on a full disk."""

    def __init__(self, path: Path, size_mib: int) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs",
                               str(path)], capture_output=True, text=True)
        if done.returncode:
            # CI runs as root on a machine that allows it; a skip would hide the fault there.
            pytest.fail(f"a real full disk needs a tmpfs mount (root, CAP_SYS_ADMIN): "
                        f"{done.stderr.strip()}")
        self.filler = path / "filler"

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int = 0) -> None:
        """Use the space up, then give back `leave` bytes."""
        chunk = b"\0" * 65536
        with self.filler.open("ab", buffering=0) as out:  # unbuffered: nothing left to flush
            try:
                while True:
                    out.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        if leave:
            os.truncate(self.filler, max(0, self.filler.stat().st_size - leave))
        assert self.free() <= leave + 65536

    def make_room(self) -> None:
        self.filler.unlink(missing_ok=True)

    def files(self) -> set[str]:
        return {str(p.relative_to(self.path)) for p in self.path.rglob("*")
                if p.is_file() and p != self.filler}

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False, capture_output=True)



def noise_png(path: Path, side: int) -> Path:
    """An incompressible PNG: about 3·side² bytes whatever the encoder does."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(7)
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)
    return path


