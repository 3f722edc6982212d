"""Running a query's statements one at a time (cli/statements.py), on a DuckDB of its own."""

from __future__ import annotations

from pathlib import Path

import click
import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.statements import Changed, Transaction, blank, complete, statement_results


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT range AS a FROM range(5)")
    return con


def _last(con: duckdb.DuckDBPyConnection, query: str, params: dict[str, str] | None = None) -> object:
    """The last statement's result, the ones before it having run."""
    return list(statement_results(con, query, 0.0, params))[-1]


def test_a_change_says_its_rows_and_each_statement_answers(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    assert _last(con, "DELETE FROM t WHERE a > 2") == Changed(2, "deleted")
    assert _last(con, "UPDATE t SET a = a + 10 WHERE a = 0") == Changed(1, "updated")
    assert _last(con, "INSERT INTO t VALUES (7), (8)") == Changed(2, "inserted")
    rel = _last(con, "DELETE FROM t WHERE a = 1; SELECT a FROM t ORDER BY a")
    assert isinstance(rel, duckdb.DuckDBPyRelation) and rel.fetchall() == [(2,), (7,), (8,), (10,)]
    # with RETURNING its rows are the answer, not their count
    returned = _last(con, "DELETE FROM t WHERE a > 7 RETURNING a")
    assert isinstance(returned, duckdb.DuckDBPyRelation) and sorted(returned.fetchall()) == [(8,), (10,)]
    assert _last(con, "CREATE TABLE u (b INT)") is None
    # a COPY says its rows too (it was "ok"), with the files it wrote or not
    out = tmp_path / "t.csv"
    assert _last(con, f"COPY (SELECT a FROM t) TO '{out}'") == Changed(2, "copied")
    assert _last(con, f"COPY u FROM '{out}'") == Changed(2, "copied")
    assert _last(con, f"COPY u TO '{tmp_path / 'u.parquet'}' (RETURN_FILES)") == Changed(2, "copied")


def test_each_result_is_read_before_the_next_statement_runs(con: duckdb.DuckDBPyConnection) -> None:
    """A statement runs only when its result is asked for: the rows of a SELECT read before the DELETE
    after it are the rows before it (read after, a lazy SELECT would see the table emptied)."""
    results = statement_results(con, "SELECT count(*) FROM t; DELETE FROM t; SELECT count(*) FROM t", 0.0)
    first = next(results)
    assert isinstance(first, duckdb.DuckDBPyRelation) and first.fetchall() == [(5,)]
    assert con.execute("SELECT count(*) FROM t").fetchone() == (5,)  # the DELETE has not run yet
    assert next(results) == Changed(5, "deleted")
    last = next(results)
    assert isinstance(last, duckdb.DuckDBPyRelation) and last.fetchall() == [(0,)]
    assert next(results, "none") == "none"


def test_an_open_transaction_is_kept_across_calls(con: duckdb.DuckDBPyConnection) -> None:
    """A shell's BEGIN and COMMIT come in separate inputs: the session's Transaction says one is open."""
    transaction = Transaction()
    list(statement_results(con, "BEGIN", 0.0, transaction=transaction))
    assert transaction.open
    list(statement_results(con, "DELETE FROM t", 0.0, transaction=transaction))
    assert transaction.open
    list(statement_results(con, "ROLLBACK", 0.0, transaction=transaction))
    assert not transaction.open and con.execute("SELECT count(*) FROM t").fetchone() == (5,)


def test_values_are_bound_and_a_missing_one_stops_every_statement(con: duckdb.DuckDBPyConnection) -> None:
    rel = _last(con, "SELECT count(*) FROM t WHERE a >= $low", {"low": "3"})
    assert isinstance(rel, duckdb.DuckDBPyRelation) and rel.fetchall() == [(2,)]
    with pytest.raises(click.UsageError, match=r"\$high: give a value with -p high=VALUE"):
        _last(con, "DELETE FROM t; SELECT * FROM t WHERE a < $high")
    assert con.execute("SELECT count(*) FROM t").fetchone() == (5,)  # the DELETE before it did not run


@pytest.mark.parametrize(
    ("sql", "whole"),
    [
        ("SELECT 1;", True),
        ("SELECT 1", False),
        ("SELECT 'a;", False),  # a ';' in a string left open
        ("SELECT 'a;\nb';", True),
        ("SELECT 'it''s;'", False),  # a doubled quote stays in the string
        ("SELECT 'it''s;';", True),
        ("SELECT E'a\\';", False),  # a backslash escapes in an E'' string only
        ("SELECT 'a\\';", True),
        ('SELECT "a;""b" FROM t', False),
        ("SELECT $$a;b$$;", True),
        ("SELECT $t$a;$$b$t$", False),
        ("SELECT $p;", True),  # a bound value, no dollar quote
        ("SELECT a$b$c;", True),
        ("SELECT 1; -- why", True),
        ("SELECT 1 -- not yet;", False),
        ("SELECT /* /* nested; */ still; */ 1", False),
        ("SELECT /* /* nested; */ */ 1;", True),
        ("SELECT 1; /* left open", False),
        ("", False),
    ],
)
def test_a_statement_is_whole_at_a_semicolon_outside_quotes_and_comments(sql: str, whole: bool) -> None:
    assert complete(sql) is whole


def test_only_comments_and_blanks_are_blank() -> None:
    assert blank("") and blank("  \n-- the end\n/* done; */ ")
    assert not blank("SELECT 1") and not blank("-- a\n;") and not blank("/* open")


# the pieces a statement is made of where a ';' ends nothing, each with the value it selects
_PIECES = st.one_of(
    st.integers(0, 99).map(lambda n: (str(n), n)),
    st.text("ab;'\n", max_size=6).map(lambda t: ("'" + t.replace("'", "''") + "'", t)),
    st.text("ab;'\\", max_size=6).map(
        lambda t: ("E'" + t.replace("\\", "\\\\").replace("'", "\\'") + "'", t)
    ),
    st.text("ab;$'", max_size=6)
    .filter(lambda t: "$$" not in t and not t.endswith("$"))
    .map(lambda t: ("$$" + t + "$$", t)),
)
_GAPS = st.sampled_from([" ", "\n", " -- a; b\n", " /* a; /* b; */ c */ ", "/**/"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(st.tuples(_PIECES, _GAPS), min_size=1, max_size=4), tail=_GAPS)
def test_a_statement_is_whole_only_at_its_own_semicolon(
    pieces: list[tuple[tuple[str, object], str]], tail: str
) -> None:
    """Any statement of strings (quotes doubled, E'' escapes, $$), names and comments holding ';' is
    whole at its closing ';' and at no earlier character: DuckDB runs it as one statement selecting
    just those values, so the ';'s inside are not ends."""
    sql = "SELECT " + ", ".join(f'{text}{gap}AS "c;{i}"' for i, ((text, _), gap) in enumerate(pieces))
    whole = sql + tail + ";" + tail
    con = duckdb.connect()
    assert len(con.extract_statements(whole)) == 1
    assert con.sql(sql).fetchall() == [tuple(value for (_, value), _ in pieces)]
    assert complete(whole) and not blank(whole)
    assert not any(complete(whole[:end]) for end in range(len(sql) + len(tail) + 1))
