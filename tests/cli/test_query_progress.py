"""`tickstore sql`'s progress bar for a statement that runs long (cli/query_progress.py), in a terminal."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable

import pytest

from tests.cli.helpers import env_for
from tests.conftest import REPO
from tests.tickstore_feast.conftest import load, tick_rows
from tickstore.settings import Settings


def in_a_terminal(settings: Settings, *args: str) -> tuple[str, str]:
    """``tickstore *args`` with its stderr on a terminal and its stdout piped: (terminal, stdout)."""
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
            check=True,
        )
    finally:
        os.close(other_end)
        reader.join(10)
        os.close(terminal)
    return seen.decode(errors="replace"), run.stdout


@pytest.mark.slow
def test_a_long_query_shows_a_bar_on_the_terminal_gone_before_its_rows_which_stdout_holds_alone(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0)]))
    n = 1_200_000_000  # ~8 s on the 2-core dev machine: past the 2 s before a bar is drawn
    shown, rows = in_a_terminal(s, "sql", f"SELECT sum(i * i) AS s FROM range({n}) t(i)", "--format", "csv")
    # it printed nothing for seconds, which read as a hang; DuckDB's own bar would have gone to stdout
    assert "running the query" in shown and " s" in shown, shown
    assert rows.split() == ["s", str((n - 1) * n * (2 * n - 1) // 6)], rows
    quick, rows = in_a_terminal(s, "sql", "SELECT count(*) AS n FROM ticks", "--format", "csv")
    assert "running the query" not in quick and rows.split() == ["n", "1"], (quick, rows)
