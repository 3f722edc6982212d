"""`tickstore sql`'s progress bar for a statement that runs long (cli/query_progress.py), in a terminal."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.cli.helpers import stderr_on_a_terminal
from tests.tickstore_feast.conftest import load, tick_rows
from tickstore.settings import Settings


@pytest.mark.slow
def test_a_long_query_shows_a_bar_on_the_terminal_gone_before_its_rows_which_stdout_holds_alone(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0)]))
    n = 1_200_000_000  # ~8 s on the 2-core dev machine: past the 2 s before a bar is drawn
    shown, run = stderr_on_a_terminal(
        s, "sql", f"SELECT sum(i * i) AS s FROM range({n}) t(i)", "--format", "csv"
    )
    assert run.returncode == 0, shown
    rows = run.stdout
    # it printed nothing for seconds, which read as a hang; DuckDB's own bar would have gone to stdout
    assert "running the query" in shown and " s" in shown, shown
    assert rows.split() == ["s", str((n - 1) * n * (2 * n - 1) // 6)], rows
    quick, run = stderr_on_a_terminal(s, "sql", "SELECT count(*) AS n FROM ticks", "--format", "csv")
    assert "running the query" not in quick and run.stdout.split() == ["n", "1"], (quick, run.stdout)
