"""Running the `tickstore` command as a user does, in a subprocess, on a test's settings (and a server for it to talk to)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import REPO
from tickstore.settings import Settings


def env_for(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TICKSTORE_HOME=str(settings.home),
        TICKSTORE_BROKER_PORT=str(settings.broker_port),
        TICKSTORE_TOPIC_RAW=settings.topic_raw,
        TICKSTORE_TOPIC_DLQ=settings.topic_dlq,
        TICKSTORE_SINK_GROUP=settings.sink_group,
        TICKSTORE_REBALANCE_TIMEOUT_MS=str(settings.rebalance_timeout_ms),
        TICKSTORE_SINK_BATCH_MS=str(settings.sink_batch_ms),
        TICKSTORE_SINK_BATCH_ROWS=str(settings.sink_batch_rows),
        TICKSTORE_SINK_IDLE_MS=str(settings.sink_idle_ms),
        TICKSTORE_STREAM_GROUP=settings.stream_group,
        TICKSTORE_SERVE_PORT=str(settings.serve_port),
    )
    if settings.data_dir is not None:
        env["TICKSTORE_DATA_DIR"] = str(settings.data_dir)
    return env


def tickstore(
    settings: Settings,
    *args: str,
    check: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
    stdin: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """``tickstore *args`` in the repo, on ``settings`` (or on ``env`` when given), output captured;
    ``stdin`` a file descriptor to read from (a terminal's), else this process's."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=env_for(settings) if env is None else env,
        cwd=cwd,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=check,
    )


def stderr_on_a_terminal(settings: Settings, *args: str) -> tuple[str, subprocess.CompletedProcess[str]]:
    """``tickstore *args`` with its stderr on a pseudo-terminal (where progress bars are drawn) and its
    stdout piped: what the terminal showed, and the run."""
    terminal, other_end = os.openpty()
    seen = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(terminal, 65536)
            except OSError:  # the other end closed
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        run = subprocess.run(
            [sys.executable, "-m", "cli", *args],
            stderr=other_end,
            stdout=subprocess.PIPE,
            text=True,
            env=env_for(settings),
            cwd=REPO,
            timeout=300,
        )
    finally:
        os.close(other_end)
        reader.join(10)
        os.close(terminal)
    return seen.decode(errors="replace"), run


def spawn_sink(settings: Settings, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "sink", *args],
        env=env_for(settings),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextmanager
def serving(server: Any) -> Iterator[None]:
    """``server`` (http.server's or werkzeug's) answering on its own thread while the block runs."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
