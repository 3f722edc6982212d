"""A progress bar for a `tickstore sql` statement that runs long, from DuckDB's own estimate."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
from rich.progress import BarColumn, TaskProgressColumn

from cli.context import console, progress_bar

# a quick statement draws nothing: its rows come first
SHOW_AFTER_S = 2.0


def track(con: duckdb.DuckDBPyConnection) -> None:
    """Have DuckDB estimate how far each statement on ``con`` is, without drawing its own bar: that
    one goes to stdout, between the rows (tickstore.lake turns it off)."""
    if console.is_terminal:
        con.execute("SET enable_progress_bar = true")
        con.execute("SET enable_progress_bar_print = false")


@contextmanager
def shown(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """While inside, once a statement on ``con`` has run ``SHOW_AFTER_S``, a bar on stderr (in a
    terminal) of how far DuckDB reckons it is; gone at the end, before its rows are printed.

    A window over the whole lake printed nothing until its rows, which read as a hang: `ticks_60s`
    over the bench's 10 million ticks computes for 16.5-17.3 s on the 2-core dev machine.
    """
    if not console.is_terminal:
        yield
        return
    done = threading.Event()
    started = time.monotonic()

    def draw() -> None:
        if done.wait(SHOW_AFTER_S):
            return
        percent = TaskProgressColumn(text_format="{task.percentage:>3.0f}%", markup=False)
        with progress_bar(BarColumn(), percent, "{task.fields[took]}") as bar:
            # a bar that pulses until DuckDB gives an estimate: a scan of range() or a file gives none
            task = bar.add_task("running the query", total=None, took="")
            while not done.wait(0.1):
                took = f"{time.monotonic() - started:.0f} s"  # since the statement started, not the bar
                if (done_pct := con.query_progress()) > 0:  # -1: between statements; 0: no estimate
                    bar.update(task, total=100, completed=done_pct, took=took)
                else:
                    bar.update(task, took=took)

    drawer = threading.Thread(target=draw, name="sql-progress", daemon=True)
    drawer.start()
    try:
        yield
    finally:
        done.set()
        drawer.join()
