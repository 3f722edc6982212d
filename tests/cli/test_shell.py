"""`tickstore sql` as a shell (cli/shell.py): one connection, each commit seen, errors survived, dot commands."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.cli.helpers import env_for, tickstore
from tests.conftest import REPO
from tickstore import feature_sql
from tickstore.settings import Settings

tables_views = "feature views (sql/): " + ", ".join(feature_sql.views())


def _shell(settings: Settings, stderr: int | IO[str]) -> subprocess.Popen[str]:
    """`tickstore sql --interactive --format csv` on ``settings``, fed and read through pipes."""
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "sql", "--interactive", "--format", "csv"],
        env=env_for(settings),
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


def test_the_sql_shell_sees_each_new_commit_and_survives_errors(
    make_settings: Callable[..., Settings],
) -> None:
    from tests.tickstore_feast.conftest import load, tick_rows

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0)]))
    shell = _shell(s, subprocess.PIPE)
    assert shell.stdin is not None and shell.stdout is not None

    def ask(statement: str) -> list[str]:
        shell.stdin.write(statement + "\n")  # type: ignore[union-attr]
        shell.stdin.flush()  # type: ignore[union-attr]
        return [shell.stdout.readline().strip() for _ in range(2)]  # type: ignore[union-attr]

    try:
        assert ask("SELECT count(*) AS n\nFROM ticks;") == ["n", "1"]  # a statement over two lines
        load(s, tick_rows([("ETH-USD", 1.0, 10.0)]))  # committed by another process meanwhile
        # an error, then a dot command (its answer on stdout, as rows are): it goes on
        assert ask("SELECT * FROM nope;\n.tables") == ["tables: ticks, ticks_rejected", tables_views]
        assert ask("SELECT count(*) AS n FROM ticks;") == ["n", "2"]
        # a value that fails its cast as rows are fetched, not when the query is planned: it goes on
        assert ask("SELECT product_id::INTEGER AS n FROM ticks;\nSELECT count(*) AS n FROM ticks;") == [
            "n",
            "2",
        ]
        assert ask("SELECT count(*) AS n FROM ticks_60s;") == ["n", "2"]  # the feature views too
        # values bound as -p binds them, set as the session goes
        assert ask(".param p ETH-USD\nSELECT count(*) AS n FROM ticks WHERE product_id = $p;") == ["n", "1"]
        assert ask(".param $q x' OR 'a' = 'a\n.param") == ["$p = ETH-USD", "$q = x' OR 'a' = 'a"]
        assert ask("SELECT count(*) AS n FROM ticks WHERE product_id = $q;") == ["n", "0"]
        _, err = shell.communicate("DELETE FROM ticks;\n", timeout=60)
    finally:
        shell.kill()
    assert shell.returncode == 1, err  # from a pipe, a failed statement is the exit code
    assert "Table with name nope does not exist" in err and "add --write to change it" in err
    assert "Could not convert string 'BTC-USD' to INT32" in err
    assert "Traceback" not in err


def test_the_shells_dot_commands_work_in_one_shot_too(make_settings: Callable[..., Settings]) -> None:
    from tests.tickstore_feast.conftest import load, tick_rows

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0)]))
    tables = tickstore(s, "sql", ".tables")
    assert tables.stdout.splitlines() == ["tables: ticks, ticks_rejected", tables_views], tables.stdout
    unknown = tickstore(s, "sql", ".tabels", check=False)
    assert unknown.returncode == 1 and "unknown command .tabels; .help lists them" in unknown.stderr
    # a ';' after a dot command, as after a statement, is dropped (`.tables;` was an unknown command)
    assert tickstore(s, "sql", ".tables;").stdout == tables.stdout
    # a known command given what it does not take says what it takes
    for typed, says in (
        (".format xml", "use .format table, csv or json"),
        (".schema", ".schema: use .schema NAME"),
    ):
        wrong = tickstore(s, "sql", typed, check=False)
        assert wrong.returncode == 1 and says in wrong.stderr, wrong.stderr


def test_a_statement_ends_at_its_own_semicolon_and_each_one_answers(lake_settings: Settings) -> None:
    """A ';' ending a line inside a string or a comment ends nothing, a comment after the ';' is no
    statement left open, and each statement of a line prints its own rows (only the last did)."""
    script = (
        "SELECT 'a;\nb' AS x;\n"  # was run at the first line: "unterminated quoted string"
        "SELECT 1 -- not yet;\n + 1 AS w;\n"  # was run without its second line
        "SELECT 3 AS y; -- why\n"  # was left open, then run with the next line: only z answered
        "SELECT 5 AS a; SELECT 6 AS b;\n"
        "-- the end\n"  # a closing comment: no statement cut short
        ".quit;\nSELECT 9 AS never;\n"  # `.quit;` quits, as `.quit` does
    )
    out, err = _shell(lake_settings, subprocess.PIPE).communicate(script, timeout=120)
    assert out.splitlines() == ["x", '"a;', 'b"', "w", "2", "y", "3", "a", "5", "b", "6"], err
    assert err == ""
    # a statement truly left open is still said to be, and fails a script
    shell = _shell(lake_settings, subprocess.PIPE)
    out, err = shell.communicate("SELECT 1 AS n;\nSELECT 'open; -- not a comment\n", timeout=120)
    assert out.splitlines() == ["n", "1"] and shell.returncode == 1
    assert "not run (no closing ';'): SELECT 'open; -- not a comment" in err


def test_text_that_reads_as_rich_markup_is_printed_as_it_is(lake_settings: Settings) -> None:
    """An error quoting `[/a]` stopped the shell (rich's MarkupError); the next statement still runs."""
    script = "SELECT [/a];\nSELECT '[red]x' AS \"[b]v\";\n"
    out, err = _shell(lake_settings, subprocess.PIPE).communicate(script, timeout=120)
    assert out.splitlines() == ["[b]v", "[red]x"], err
    assert "SELECT [/a]" in err and "Traceback" not in err


def test_read_runs_a_files_statements_and_dot_commands(lake_settings: Settings, tmp_path: Path) -> None:
    """`.read FILE` runs a script as if piped in (its own `.read`s too); a file that reads itself, a
    missing one or one that is no text fails that command, and the shell goes on."""
    (tmp_path / "inner.sql").write_text("SELECT 1 AS a;\n.format json\nSELECT 2 AS b;\n")
    (tmp_path / "outer.sql").write_text(f".read {tmp_path / 'inner.sql'}\nSELECT 3 AS c;\n")
    (tmp_path / "loop.sql").write_text(f".read {tmp_path / 'loop.sql'}\n")
    (tmp_path / "bin.sql").write_bytes(b"\xff\xfe\x00")
    script = "".join(
        f".read {tmp_path / name}\n" for name in ("outer.sql", "loop.sql", "nope.sql", "bin.sql")
    )
    shell = _shell(lake_settings, subprocess.PIPE)
    out, err = shell.communicate(script + "SELECT 4 AS d;\n", timeout=120)
    assert out.splitlines() == ["a", "1", '{"b": 2}', '{"c": 3}', '{"d": 4}'], err
    assert "loop.sql: that file is being read already (it reads itself)" in err
    assert "nope.sql: No such file or directory" in err and "bin.sql: not UTF-8 text" in err
    assert shell.returncode == 1


def test_a_relative_read_in_a_file_finds_the_file_beside_it(lake_settings: Settings, tmp_path: Path) -> None:
    """A script that reads its neighbours by name runs from any folder: a relative `.read` in a file is
    looked for in the current folder (as sqlite3's), then beside that file. It failed from elsewhere."""
    scripts = tmp_path / "scripts"
    (scripts / "more").mkdir(parents=True)
    (scripts / "main.sql").write_text(".read more/part.sql\nSELECT 1 AS a;\n.read gone.sql\n")
    (scripts / "more" / "part.sql").write_text(".read last.sql\nSELECT 2 AS b;\n")
    (scripts / "more" / "last.sql").write_text("SELECT 3 AS c;\n")
    for how in (["-f", str(scripts / "main.sql")], ["--interactive"]):
        run = subprocess.run(
            [sys.executable, "-m", "cli", "sql", *how, "--format", "csv"],
            env=env_for(lake_settings),
            cwd=REPO,  # not the scripts' folder
            input=f".read {scripts / 'main.sql'}\n",
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.stdout.splitlines() == ["c", "3", "b", "2", "a", "1"], run.stderr
        # one not found anywhere is named with both places looked in
        assert (
            f".read gone.sql: No such file or directory (looked for from {REPO} and from {scripts})"
            in run.stderr
        )
        assert run.returncode == 1


def test_schema_gives_each_columns_type_and_what_it_holds(make_settings: Callable[..., Settings]) -> None:
    """`.schema NAME`: the columns with their types and the comments beside them in the lake's DDL
    or the view's SQL file (a column without one has none to give)."""
    import csv

    from tests.tickstore_feast.conftest import load, tick_rows
    from tickstore import lake

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0)]))
    tickstore(s, "sql", "--write", "CREATE TABLE scores (product_id VARCHAR, p DOUBLE)")

    def schema(name: str) -> dict[str, tuple[str, str]]:
        out = tickstore(s, "sql", f".schema {name}", "--format", "csv").stdout
        rows = list(csv.reader(out.splitlines()))
        assert rows[0] == ["column", "type", "what it is"]
        return {column: (kind, said) for column, kind, said in rows[1:]}

    view = schema("ticks_60s")
    assert list(view)[:3] == ["product_id", "event_time", "ret_mean_60s"] and len(view) == 11
    assert view["ret_std_60s"] == ("DOUBLE", "sample std of mid-price log returns (NULL with < 2 returns)")
    assert view["tick_count_60s"] == ("BIGINT", "ticks in the window (the frame's rows)")
    assert view["event_time"] == ("TIMESTAMP WITH TIME ZONE", "exchange event time, UTC, microseconds")
    ticks = schema("ticks")
    assert ticks["price"] == ("DECIMAL(18,8)", "last trade price") and len(ticks) == 19
    assert all(said for _, said in ticks.values()) and ticks.keys() == lake.column_comments("ticks").keys()
    assert schema("ticks_rejected")["payload"] == ("BLOB", "the raw message, byte for byte")
    assert schema("scores") == {"product_id": ("VARCHAR", ""), "p": ("DOUBLE", "")}
    # typed unquoted, as the demo and --help show it, after options or before them
    for args in ((".schema", "tick_clock", "--format", "csv"), ("--format", "csv", ".schema", "tick_clock")):
        assert tickstore(s, "sql", *args).stdout.splitlines()[-1].startswith("event_time_us,BIGINT,")
    unknown = tickstore(s, "sql", ".schema tiks", check=False)
    assert (
        unknown.returncode == 1
        and "no table or feature view tiks: the lake's tables: scores, ticks" in unknown.stderr
    )


# a query that runs for hours, in one DuckDB task: Python sees no signal until it ends (cli/interrupt.py)
ENDLESS = "SELECT count(*) AS n FROM range(10000000000000)"


def _endless(ready: Path) -> str:
    """Statements that write ``ready``, then run ENDLESS."""
    return f"COPY (SELECT 1 AS x) TO '{ready}'; {ENDLESS}"


def _wait_until_querying(process: subprocess.Popen[str], ready: Path) -> None:
    """Return once ``process`` is in the endless query (``ready`` written by the statement before it)."""
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert process.poll() is None, "tickstore sql ended before the query"
        assert time.monotonic() < deadline, "the query never got going"
        time.sleep(0.05)
    time.sleep(0.5)  # from the COPY to the next statement: a few lines of Python


@pytest.fixture
def lake_settings(make_settings: Callable[..., Settings]) -> Settings:
    """Settings whose lake holds one tick: something for `tickstore sql` to attach."""
    from tests.tickstore_feast.conftest import load, tick_rows

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0)]))
    return s


@pytest.fixture
def ctrl_c_reaches_children() -> Iterator[None]:
    """Children started now get SIGINT as a user's Ctrl-C, even under a CI shell that ignores it.

    An ignored signal stays ignored across exec, and Python then makes no KeyboardInterrupt of it; a
    handled one is reset to the default. (Not a ``preexec_fn``: that makes subprocess fork the test
    process whole, and that fork failed with ENOMEM now and then.)
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("ctrl_c_reaches_children")
def test_ctrl_c_cancels_a_shell_statement_and_the_shell_goes_on(
    lake_settings: Settings, tmp_path: Path
) -> None:
    s = lake_settings
    with (tmp_path / "stderr").open("w+") as stderr:
        shell = _shell(s, stderr)
        assert shell.stdin is not None and shell.stdout is not None
        # read by a thread, so that a shell still stuck in the endless query fails the test, not hangs it
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(line.strip()) for line in shell.stdout], daemon=True
        ).start()  # type: ignore[union-attr]

        def answer() -> list[str]:
            try:
                return [lines.get(timeout=60) for _ in range(2)]
            except queue.Empty:
                shell.kill()
                stderr.seek(0)
                pytest.fail(f"no answer within 60 s: {stderr.read()}")

        try:
            shell.stdin.write("SELECT 1 AS n;\n")
            shell.stdin.flush()
            assert answer() == ["n", "1"]  # the shell is up
            shell.stdin.write(_endless(tmp_path / "ready.csv") + ";\n")
            shell.stdin.flush()
            _wait_until_querying(shell, tmp_path / "ready.csv")
            shell.send_signal(signal.SIGINT)
            shell.stdin.write("SELECT 42 AS n;\n")
            shell.stdin.flush()
            got = answer()
            if got == ["n", "n"]:  # csv prints a header as the rows begin: the cancelled query's came first
                got = [got[1], lines.get(timeout=60)]
            assert got == ["n", "42"]
            shell.stdin.close()
            shell.wait(timeout=60)
        finally:
            shell.kill()
        stderr.seek(0)
        err = stderr.read()
    assert "^C: the statement was cancelled" in err, err
    assert "Traceback" not in err, err
    assert shell.returncode == 1  # from a pipe, the script did not run whole


@pytest.mark.usefixtures("ctrl_c_reaches_children")
def test_ctrl_c_stops_a_one_shot_query_without_a_traceback(lake_settings: Settings, tmp_path: Path) -> None:
    s = lake_settings
    query = subprocess.Popen(
        [sys.executable, "-m", "cli", "sql", _endless(tmp_path / "ready.csv")],
        env=env_for(s),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_until_querying(query, tmp_path / "ready.csv")
        query.send_signal(signal.SIGINT)
        _, err = query.communicate(timeout=60)
    finally:
        query.kill()
    assert query.returncode == 1 and "Aborted!" in err, err
    assert "Traceback" not in err, err
