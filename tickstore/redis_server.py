"""A redis-server of one's own on loopback, for the Redis online store: what tests and benchmarks run."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tickstore.errors import TickstoreError


def start(
    port: int, folder: Path, *, cpus: str = "", databases: int = 16, wait_s: float = 10.0
) -> subprocess.Popen[bytes]:
    """Start Debian's redis-server on 127.0.0.1:``port``, nothing persisted, its files in ``folder``
    (on ``cpus``, a taskset list, if given), and return it once it answers; TickstoreError saying what
    to do when it is not installed or does not start."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise TickstoreError(
            "redis-server is not installed: `make redis` installs it (apt-get install redis-server)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            *(["taskset", "-c", cpus] if cpus else []),
            exe,
            *("--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no"),  # a cache for a test or a run: nothing to keep
            *("--databases", str(databases), "--dir", str(folder)),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + wait_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise TickstoreError(f"redis-server did not start on port {port}") from None
            time.sleep(0.05)
