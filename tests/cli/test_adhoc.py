"""`tickstore sql` in one shot (cli/adhoc.py): read-only by default, locks, wrong names, feature views, files."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta, timezone
from pathlib import Path

import pytest

from ingest import replay
from tests.cli.helpers import env_for, spawn_sink, tickstore
from tests.conftest import REPO, SHARED
from tests.ingest.helpers import query
from tickstore.settings import Settings


def test_sql_without_a_lake_says_what_to_do(make_settings: Callable[..., Settings]) -> None:
    result = tickstore(make_settings(), "sql", "SELECT 1", check=False)
    assert result.returncode != 0
    assert "run `tickstore sink`" in result.stderr


def test_sql_reads_the_lake_only_unless_told_to_write(make_settings: Callable[..., Settings]) -> None:
    from tests.tickstore_feast.conftest import load, tick_rows

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0), ("BTC-USD", 1.0, 101.0)]))

    def count(*args: str) -> int:
        return int(
            tickstore(s, "sql", "SELECT count(*) AS n FROM ticks", "--format", "csv", *args).stdout.split()[1]
        )

    refused = tickstore(s, "sql", "DELETE FROM ticks", check=False)
    assert refused.returncode == 1 and "add --write to change it" in refused.stderr, refused.stderr
    assert count() == 2
    before = query(s, "SELECT max(snapshot_id) FROM lake.snapshots()")[0][0]
    deleted = tickstore(s, "sql", "--write", "DELETE FROM ticks WHERE price > 100.5")
    assert count() == 1 and count("--as-of", str(before)) == 2  # the earlier snapshot still has it
    # or named by when it was taken, in any offset (as `dataset build --as-of` reads it), said as its id
    taken = dict(query(s, "SELECT snapshot_id, snapshot_time FROM lake.snapshots()"))[before]
    tokyo = taken.astimezone(timezone(timedelta(hours=9))).isoformat()
    by_time = tickstore(s, "sql", "SELECT count(*) AS n FROM ticks", "--format", "csv", "--as-of", tokyo)
    assert by_time.stdout.split() == ["n", "2"] and f"snapshot {before}" in by_time.stderr, by_time.stderr
    assert "still to come" not in by_time.stderr
    # a time still to come (a mistyped year) reads today's lake: said, since a later run reads another
    ahead = tickstore(s, "sql", "SELECT count(*) AS n FROM ticks", "--format", "csv", "--as-of", "2999-01-01")
    assert ahead.stdout.split() == ["n", "1"] and "(the newest: that time is still to come)" in ahead.stderr
    # it said "ok", whether it deleted a row or none; now the rows, and where they still are
    said = " ".join(deleted.stderr.split())
    assert f"1 row deleted; the lake as it was before: `tickstore sql --as-of {before} ...`" in said, said
    nothing = tickstore(s, "sql", "--write", "UPDATE ticks SET side = 'sell' WHERE price > 1000")
    assert nothing.stderr.split() == ["0", "rows", "updated"]
    # DuckLake tables take no RETURNING yet; a temporary table does, and its rows are the answer
    returning = "CREATE TEMP TABLE x (a INT); INSERT INTO x VALUES (1), (2) RETURNING a"
    returned = tickstore(s, "sql", "--write", "--format", "csv", returning)
    assert returned.stdout.split() == ["a", "1", "2"]


def test_sql_write_refuses_to_drop_or_redefine_the_lakes_own_tables(
    make_settings: Callable[..., Settings],
) -> None:
    from tests.tickstore_feast.conftest import load, tick_rows

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0), ("BTC-USD", 1.0, 101.0)]))
    snapshot = query(s, "SELECT max(snapshot_id) FROM lake.snapshots()")[0][0]
    # each went through, and every later command failed on the table (status: a traceback; the sink:
    # every batch); the ticks were left in earlier snapshots only, which compaction expires
    for sql, leaves in (
        ("DROP TABLE ticks", "the lake without its ticks table"),
        (
            "ALTER TABLE ticks DROP COLUMN volume_24h",
            "ticks table other than tickstore makes it (columns missing",
        ),
        ("ALTER TABLE ticks RENAME TO old_ticks", "the lake without its ticks table"),
        ("CREATE OR REPLACE TABLE ticks AS SELECT 1 AS x", "(columns missing product_id, event_time"),
        ("ALTER TABLE ticks ADD COLUMN x INT", "ticks table other than tickstore makes it (columns added x)"),
        ("ALTER TABLE ticks ALTER price TYPE DOUBLE", "(columns retyped price DOUBLE (made DECIMAL(18,8)))"),
        ("DROP TABLE ticks_rejected", "the lake without its ticks_rejected table"),
        ("BEGIN; DELETE FROM ticks; DROP TABLE ticks; COMMIT", "the lake without its ticks table"),
    ):
        run = tickstore(s, "sql", "--write", sql, check=False)
        said = " ".join(run.stderr.split())
        assert run.returncode == 1 and f"{leaves}" in said and "which the sink writes" in said, said
    assert "the transaction was rolled back" in said
    assert query(s, "SELECT count(*) FROM ticks")[0][0] == 2
    assert query(s, "SELECT max(snapshot_id) FROM lake.snapshots()")[0][0] == snapshot  # nothing committed
    # tables of the user's own come and go as before
    tickstore(s, "sql", "--write", "CREATE TABLE mine AS SELECT 1 AS x; ALTER TABLE mine ADD COLUMN y INT")
    tickstore(s, "sql", "--write", "DROP TABLE mine")


def test_sql_write_waits_for_a_locked_catalog_and_runs_each_statement_once(
    make_settings: Callable[..., Settings],
) -> None:
    from tests.conftest import hold_catalog_lock
    from tests.tickstore_feast.conftest import load, tick_rows

    s = make_settings()
    load(s, tick_rows([("BTC-USD", t, 100.0 + t) for t in range(4)]))
    change = (  # a CREATE is run in a transaction of its own, to check the lake's tables before COMMIT
        "CREATE TABLE mine AS SELECT 1 AS x; "
        "DELETE FROM ticks WHERE price > 102.5; INSERT INTO ticks SELECT * FROM ticks WHERE price < 100.5"
    )
    holder = hold_catalog_lock(s, 4)  # as the sink holds it while it commits a batch
    try:
        run = tickstore(s, "sql", "--write", change, check=False)
    finally:
        holder.kill()
        holder.wait()
    # it failed with "database is locked", leaving the user to work out what had run
    assert run.returncode == 0 and "locked by another writer" in run.stderr, run.stderr
    prices = [float(p) for (p,) in query(s, "SELECT price FROM ticks ORDER BY 1")]
    assert prices == [100.0, 100.0, 101.0, 102.0]  # 103 deleted once, 100 copied once
    assert query(s, "SELECT x FROM mine") == [(1,)]
    # an explicit transaction is the user's to retry: its failed COMMIT rolled back the whole of it
    holder = hold_catalog_lock(s, 2)
    try:
        run = tickstore(s, "sql", "--write", "BEGIN; DELETE FROM ticks; COMMIT", check=False)
    finally:
        holder.kill()
        holder.wait()
    assert run.returncode == 1 and "locked" in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert query(s, "SELECT count(*) FROM ticks") == [(4,)]


def test_sql_with_a_wrong_table_names_the_lake_tables(make_settings: Callable[..., Settings]) -> None:
    from tests.tickstore_feast.conftest import load, tick_rows

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0)]))
    result = tickstore(s, "sql", "SELECT * FROM tick", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert 'Did you mean "ticks"?' in result.stderr
    assert (
        "The lake's tables: ticks, ticks_rejected; feature views: tick_clock, ticks_10s, ticks_300s, ticks_60s"
        in " ".join(result.stderr.split())
    )
    # DuckDB's own hints came from every catalog but the feature views: "duckdb_logs", "ticks", "pg_enum"
    called = tickstore(s, "sql", "SELECT * FROM tick_60s(now())", check=False)
    assert 'Did you mean "ticks_60s"?' in called.stderr and "duckdb_logs" not in called.stderr
    named = tickstore(s, "sql", "SELECT * FROM tick_60s", check=False)
    assert 'Did you mean "ticks_60s"?' in named.stderr, named.stderr
    far = tickstore(s, "sql", "SELECT * FROM nope", check=False)
    assert far.returncode == 1 and "Did you mean" not in far.stderr and "The lake's tables" in far.stderr


def test_sql_names_the_feature_views_as_tables(make_settings: Callable[..., Settings]) -> None:
    from tests.tickstore_feast.conftest import T0, load, tick_rows

    s = make_settings()
    load(s, tick_rows([("BTC-USD", t, 100.0 + t) for t in (0.0, 1.0, 1.0, 30.0, 61.0)]))
    columns = "tick_count_60s, price_range_60s"
    got = tickstore(s, "sql", f"SELECT {columns} FROM ticks_60s ORDER BY event_time", "--format", "csv")
    # the file's SELECT, run on the lake by hand
    body = (REPO / "sql" / "ticks_60s.sql").read_text()
    expected = query(s, f"SELECT {columns} FROM ({body}\n) ORDER BY event_time")
    # at 61 s the tick at 0 s has left the window; those at 1 s are still in (both ends count)
    assert expected == [(1, 0.0), (3, 1.0), (3, 1.0), (4, 30.0), (4, 60.0)]
    assert [tuple(line.split(",")) for line in got.stdout.split()[1:]] == [
        (str(n), str(r)) for n, r in expected
    ]
    # called with a time range: its rows, computed from the ticks before it (30 s: the window from 0 s)
    since, until = (T0 + timedelta(seconds=x) for x in (30, 61))
    for call, rows in ((f"'{since}'", expected[3:]), (f"'{since}', '{until}'", expected[3:4])):
        got = tickstore(s, "sql", f"SELECT {columns} FROM ticks_60s({call}) ORDER BY ALL", "--format", "csv")
        assert [tuple(line.split(",")) for line in got.stdout.split()[1:]] == [
            (str(n), str(r)) for n, r in rows
        ]
    # the labels' SQL takes parameters: it is no view
    assert "labels_fwd_vol_60s" not in tickstore(s, "sql", "SELECT * FROM nope", check=False).stderr


def test_sql_binds_values_given_with_p(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    """-p NAME=VALUE binds $NAME in each statement that uses it; never pasted into the SQL."""
    from click.testing import CliRunner

    from cli.main import main
    from tests.cli.helpers import env_for
    from tests.tickstore_feast.conftest import load, tick_rows

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0), ("BTC-USD", 1.0, 101.0), ("ETH-USD", 2.0, 10.0)]))

    def sql(*args: str) -> tuple[int, str]:
        run = CliRunner().invoke(main, ["sql", "--format", "csv", *args], env=env_for(s))
        return run.exit_code, " ".join(run.output.split())

    query = "SELECT count(*) AS n FROM ticks WHERE product_id = $product AND price >= $least"
    assert sql(query, "-p", "product=BTC-USD", "-p", "least=100.5") == (0, "n 1")
    assert sql(query, "-p", "product=x' OR 'a' = 'a", "-p", "least=0") == (0, "n 0")  # bound, not pasted
    # each statement gets the names it uses; one using none runs as it is
    two = "CREATE TEMP TABLE p AS SELECT $product AS product_id; SELECT count(*) AS n FROM ticks JOIN p USING (product_id)"
    assert sql(two, "-p", "product=ETH-USD") == (0, "ok n 1")  # the CREATE's "ok" (on stderr), then the rows
    code, said = sql(query, "-p", "product=BTC-USD")
    assert code == 2 and "the SQL uses $least: give a value with -p least=VALUE" in said, said
    code, said = sql(query, "-p", "product=BTC-USD", "-p", "least=1", "-p", "lest=2")
    assert code == 2 and "the SQL uses no $lest (it uses $least, $product)" in said, said
    code, said = sql("SELECT 1", "-p", "product")
    assert code == 2 and "'product' is not NAME=VALUE" in said, said
    code, said = sql("SELECT $n + 1 AS x", "-p", "n=41")
    assert code == 1 and "cast one where that is not clear, e.g. $n::INTEGER" in said, said
    assert sql("SELECT $n::INTEGER + 1 AS x", "-p", "n=41") == (0, "x 42")


def test_csv_lines_end_in_a_newline_alone(make_settings: Callable[..., Settings]) -> None:
    # Python's csv writer ends lines in "\r\n": `n=$(tickstore sql ... --format csv | tail -1)` held
    # "1000000\r", which no shell comparison with 1000000 matched (found by a probe script that waited
    # for it for minutes). DuckDB's COPY ... (FORMAT csv) and psql --csv end them in "\n".
    from tests.tickstore_feast.conftest import load, tick_rows

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0)]))
    query = "SELECT count(*) AS n, 'a,b' AS s, 'two\nlines' AS t FROM ticks"
    run = subprocess.run(
        [sys.executable, "-m", "cli", "sql", query, "--format", "csv"],
        env=env_for(s),
        cwd=REPO,
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert run.stdout == b'n,s,t\n1,"a,b","two\nlines"\n'


def test_sql_from_a_file_or_standard_input(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    from tests.tickstore_feast.conftest import load, tick_rows

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0), ("ETH-USD", 1.0, 10.0)]))
    text = "-- a query kept in a file\nSELECT count(*) AS n\nFROM ticks;\n"
    (tmp_path / "q.sql").write_text(text)
    assert tickstore(s, "sql", "-f", str(tmp_path / "q.sql"), "--format", "csv").stdout.split() == ["n", "2"]
    # its text as QUERY ("$(cat q.sql)"): opening with "-- ", it was "No such option"
    assert tickstore(s, "sql", text, "--format", "csv").stdout.split() == ["n", "2"]

    def piped(stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli", "sql", *args],
            env=env_for(s),
            cwd=REPO,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert piped(text, "--format", "csv").stdout.split() == ["n", "2"]
    assert piped(text, "--file", "-", "--format", "csv").stdout.split() == ["n", "2"]
    # a script prints each statement's rows, as the shell does (only the last one's were printed)
    script = piped("SELECT 1 AS a;\nCREATE TEMP TABLE x AS SELECT 2 AS b;\nFROM x;\n", "--format", "csv")
    assert (script.stdout.split(), script.stderr.split()) == (["a", "1", "b", "2"], ["ok"]), script.stderr
    # a script holding dot commands runs as the shell reads one (DuckDB took `.format` for SQL); a line
    # opening with '.' inside a string is no command
    dots = "SELECT 1 AS a;\n.format csv\nSELECT '\n.no dot' AS b;\n"
    (tmp_path / "dots.sql").write_text(dots)
    for run in (piped(dots), piped("", "-f", str(tmp_path / "dots.sql"))):
        assert run.returncode == 0 and "│ 1 │" in run.stdout, run.stderr
        assert run.stdout.endswith('b\n"\n.no dot"\n'), run.stdout
    # a statement of a script that fails is named, those before it having run and printed
    failing = (
        "-- checks\nSELECT 1 AS a;\n\n  -- the typo\n  SELECT * FROM tiks WHERE x = 1;\nSELECT 2 AS b;\n"
    )
    run = piped(failing, "--format", "csv")
    said = " ".join(run.stderr.split())
    assert run.returncode == 1 and run.stdout.split() == ["a", "1"], run.stdout
    assert "Error: statement 2 of 3, line 5 (SELECT * FROM tiks WHERE x = 1): Catalog Error" in said, said
    one = piped("SELECT * FROM tiks;\n", "--format", "csv")  # a single statement needs no such words
    assert "Error: Catalog Error" in one.stderr and "statement" not in one.stderr, one.stderr
    # a script with dot commands runs statement by statement, as the shell reads it: each error names
    # its line, and the script goes on
    dotted = piped(
        "-- checks\n.format csv\nSELECT * FROM tiks;\n\n-- more\nSELECT 1 AS a; SELECT 'x'::INT;\n"
    )
    said = " ".join(dotted.stdout.split() + dotted.stderr.split())
    assert dotted.returncode == 1 and "Error: line 3 (SELECT * FROM tiks): Catalog Error" in said, said
    assert "Error: statement 2 of 2, line 6 (SELECT 'x'::INT): Conversion Error" in said, said
    empty = piped("")
    assert empty.returncode == 2 and "the SQL is empty" in empty.stderr
    both = piped("", "SELECT 1", "-f", str(tmp_path / "q.sql"))
    assert both.returncode == 2 and "not both" in both.stderr


@pytest.mark.kafka
@pytest.mark.slow
def test_sql_succeeds_while_the_sink_writes_and_time_travel_reads_old_snapshots(
    kafka_settings: Settings,
) -> None:
    s = kafka_settings.model_copy(update={"sink_batch_rows": 1000, "sink_batch_ms": 50})
    replay.replay(s, replay.discover([SHARED]))
    sink = spawn_sink(s)
    seen: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(set(seen)) < 4:
            result = tickstore(s, "sql", "SELECT count(*) AS n FROM ticks", "--format", "json", check=False)
            if result.returncode == 0:
                seen.append(json.loads(result.stdout)["n"])
            else:
                assert "no lake" in result.stderr or "does not exist" in result.stderr, result.stderr
            time.sleep(0.1)
    finally:
        sink.send_signal(signal.SIGTERM)  # graceful: flush, commit, exit 0
        assert sink.wait(60) == 0, sink.stderr.read() if sink.stderr else ""
    assert len(set(seen)) >= 4 and seen == sorted(seen)  # queries saw the table grow, never an error
    # time travel: snapshot 1 is the empty tables, and the newest one has every row
    first = tickstore(s, "sql", "SELECT count(*) AS n FROM ticks", "--as-of", "1", "--format", "csv")
    assert first.stdout.splitlines() == ["n", "0"]
    out = tickstore(
        s, "sql", "SELECT product_id, count(*) AS n FROM ticks GROUP BY ALL ORDER BY 1", "--format", "csv"
    )
    assert out.stdout.splitlines()[0] == "product_id,n"


def test_sql_says_how_to_call_a_view_without_a_lookback_with_a_time_range(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    import click

    from cli.adhoc import Session
    from tests.tickstore_feast.conftest import load, tick_rows
    from tickstore import lake

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0)]))
    bare = tmp_path / "bare.sql"
    bare.write_text(
        "-- bare: a view whose header gives no lookback\nSELECT product_id, event_time FROM ticks\n"
    )
    session = Session(lake.connect(s, create=False, read_only=True), {"bare": bare}, "csv", 10, False, False)
    session.run("SELECT count(*) FROM bare")  # named as a table it works
    with pytest.raises(click.ClickException, match=r"sql/bare.sql has no '-- lookback: N s' header line"):
        session.run("SELECT * FROM bare('2026-01-01')")


def test_sql_tips_the_range_call_once_after_a_slow_query_naming_a_view_as_a_table(
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cli import session as sql_session
    from tests.tickstore_feast.conftest import load, tick_rows
    from tickstore import feature_sql, lake

    s = make_settings()
    load(s, tick_rows([("BTC-USD", t, 100.0) for t in (0.0, 1.0, 2.0)]))
    monkeypatch.setattr(sql_session, "SLOW_VIEW_S", 0.0)  # every query is slow: what is left is when to tip

    def session() -> sql_session.Session:
        return sql_session.Session(
            lake.connect(s, create=False, read_only=True), feature_sql.views(), "csv", 10, False, False
        )

    called = session()
    called.run("SELECT count(*) FROM ticks_60s('2026-01-01') WHERE product_id = 'BTC-USD'")
    called.run("SELECT count(*) FROM ticks")
    called.run("SELECT count(*) FROM ticks_60s WHERE product_id = 'BTC-USD'")  # the whole history: no range
    assert "tip:" not in capsys.readouterr().err  # the range call, no view, no time: nothing to tell
    named = session()
    named.run("SELECT count(*) FROM ticks_60s WHERE event_time >= '2026-01-01 00:00:01'")
    assert "tip: named as a table, ticks_60s computes" in " ".join(capsys.readouterr().err.split())
    named.run("SELECT count(*) FROM ticks_10s WHERE event_time >= '2026-01-01 00:00:01'")
    assert "tip:" not in capsys.readouterr().err  # once a session


def test_sql_says_a_value_failing_as_rows_are_fetched_as_an_error_and_prints_nothing(
    make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    import click

    from cli.adhoc import Session
    from tests.tickstore_feast.conftest import load, tick_rows
    from tickstore import feature_sql, lake

    s = make_settings()
    load(s, tick_rows([("BTC-USD", 0.0, 100.0)]))
    for fmt in ("csv", "json", "table"):
        session = Session(
            lake.connect(s, create=False, read_only=True), feature_sql.views(), fmt, 10, False, False
        )
        # DuckDB computes these as the rows are fetched: the error came as a traceback, the CSV header first
        with pytest.raises(click.ClickException, match="Could not convert string 'BTC-USD' to INT32"):
            session.run("SELECT product_id::INTEGER AS n FROM ticks")
        with pytest.raises(click.ClickException, match='invalid timestamp field format: "yesterday"'):
            session.run("SELECT * FROM ticks_60s('yesterday')")
        assert capsys.readouterr().out == ""
    one_shot = tickstore(
        s, "sql", "SELECT product_id::INTEGER AS n FROM ticks", "--format", "csv", check=False
    )
    assert one_shot.returncode == 1 and one_shot.stdout == "", one_shot.stdout
    assert "Error: Conversion Error" in one_shot.stderr and "Traceback" not in one_shot.stderr
