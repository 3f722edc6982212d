"""Tab completion in the `tickstore sql` shell (cli/completion.py): in a terminal, as a user types."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.cli.helpers import env_for
from tests.conftest import REPO
from tickstore.settings import Settings


def test_words_complete_from_tables_views_columns_keywords_and_dot_commands() -> None:
    from cli.completion import Completer

    completer = Completer(["ticks", "ticks_rejected", "ticks_60s", "ret_std_60s", "price"])
    assert completer.candidates("ticks_r") == ["ticks_rejected"]
    assert completer.candidates("ret_") == ["ret_std_60s"]
    assert completer.candidates(".sch") == [".schema "] and completer.candidates(".t") == [".tables"]
    # keywords in the case typed
    assert completer.candidates("sel") == ["select"] and completer.candidates("SEL") == ["SELECT"]
    assert "PARTITION BY" in completer.candidates("PA") and "price" in completer.candidates("p")
    # readline asks state by state until None
    assert [completer.complete("tick", i) for i in range(4)] == ["ticks", "ticks_60s", "ticks_rejected", None]


def test_a_dot_commands_argument_completes_from_what_it_takes(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from cli.completion import Completer

    completer = Completer(["ticks", "ticks_60s", "tick_count_60s"], relations=["ticks", "ticks_60s"])
    # .schema names tables and views, not their columns or keywords
    assert completer.candidates("tick", ".schema ") == ["ticks", "ticks_60s"]
    assert completer.candidates("c", ".format ") == ["csv"] and completer.candidates("", ".format ") == [
        "table",
        "csv",
        "json",
    ]
    # .read and .plot complete paths: folders with a / to go on into, files as they are
    (tmp_path / "queries").mkdir()
    (tmp_path / "queries" / "spread.sql").write_text("SELECT 1;\n")
    (tmp_path / "query.sql").write_text("SELECT 1;\n")
    assert completer.candidates(f"{tmp_path}/que", ".read ") == [
        f"{tmp_path}/queries/",
        f"{tmp_path}/query.sql",
    ]
    assert completer.candidates(f"{tmp_path}/queries/", ".read ") == [f"{tmp_path}/queries/spread.sql"]
    assert completer.candidates("vol", ".plot ") == []  # nothing of that name here
    monkeypatch.setenv("HOME", str(tmp_path))
    assert completer.candidates("~/queries/s", ".read ") == ["~/queries/spread.sql"]  # ~ kept as typed
    # a word after a statement, not a dot command, completes as before
    assert completer.candidates("tick_c", "SELECT ") == ["tick_count_60s"]


def _read_until(fd: int, wanted: str, timeout: float = 60) -> str:
    """What the terminal shows up to and including ``wanted``."""
    seen = ""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        assert time.monotonic() < deadline, f"never saw {wanted!r}; saw {seen!r}"
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            seen += os.read(fd, 4096).decode(errors="replace")
    return seen


def test_tab_completes_in_the_shell_in_a_terminal(make_settings: Callable[..., Settings]) -> None:
    from tests.tickstore_feast.conftest import load, tick_rows

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0), ("ETH-USD", 1.0, 10.0)]))
    scripts = s.home.parent / "scripts"
    scripts.mkdir()
    (scripts / "answer.sql").write_text("SELECT 'read through a completed path' AS answer;\n")
    main, secondary = pty.openpty()
    shell = subprocess.Popen(
        [sys.executable, "-m", "cli", "sql"],
        env={**env_for(s), "TERM": "dumb", "NO_COLOR": "1"},
        cwd=REPO,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    try:
        _read_until(main, "tickstore> ")
        # "src_par" + Tab -> src_partition (a column), "ticks_rej" + Tab -> ticks_rejected (a table):
        # run as completed, or DuckDB would name the column or table it can't find
        os.write(main, b"SELECT count(src_par\t) AS n_rejected FROM ticks_rej\t;\r")
        shown = _read_until(main, " s)")  # the statement's time, printed once its rows are
        os.write(main, b".sch\ttick_cl\t\r")  # a dot command (Tab adds the space) and a feature view
        shown += _read_until(main, "microseconds since the Unix epoch")
        os.write(main, f".read {scripts}/ans\t\r".encode())  # a file's path
        shown += _read_until(main, "read through a completed path")
        os.write(main, b".quit\r")
        shell.wait(timeout=60)
    finally:
        shell.kill()
        os.close(main)
    assert "count(src_partition) AS n_rejected FROM ticks_rejected" in shown, shown
    assert "n_rejected" in shown and "Error" not in shown, shown
    assert ".schema tick_clock" in shown, shown
