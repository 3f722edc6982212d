"""Running a query's statements one at a time (cli/statements.py), on a DuckDB of its own."""

from __future__ import annotations

import click
import duckdb
import pytest

from cli.statements import Changed, run_statements


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT range AS a FROM range(5)")
    return con


def test_a_change_says_its_rows_and_the_last_statement_answers(con: duckdb.DuckDBPyConnection) -> None:
    assert run_statements(con, "DELETE FROM t WHERE a > 2", 0.0) == Changed(2, "deleted")
    assert run_statements(con, "UPDATE t SET a = a + 10 WHERE a = 0", 0.0) == Changed(1, "updated")
    assert run_statements(con, "INSERT INTO t VALUES (7), (8)", 0.0) == Changed(2, "inserted")
    rel = run_statements(con, "DELETE FROM t WHERE a = 1; SELECT a FROM t ORDER BY a", 0.0)
    assert isinstance(rel, duckdb.DuckDBPyRelation) and rel.fetchall() == [(2,), (7,), (8,), (10,)]
    # with RETURNING its rows are the answer, not their count
    returned = run_statements(con, "DELETE FROM t WHERE a > 7 RETURNING a", 0.0)
    assert isinstance(returned, duckdb.DuckDBPyRelation) and sorted(returned.fetchall()) == [(8,), (10,)]
    assert run_statements(con, "CREATE TABLE u (b INT)", 0.0) is None


def test_values_are_bound_and_a_missing_one_stops_every_statement(con: duckdb.DuckDBPyConnection) -> None:
    rel = run_statements(con, "SELECT count(*) FROM t WHERE a >= $low", 0.0, {"low": "3"})
    assert isinstance(rel, duckdb.DuckDBPyRelation) and rel.fetchall() == [(2,)]
    with pytest.raises(click.UsageError, match=r"\$high: give a value with -p high=VALUE"):
        run_statements(con, "DELETE FROM t; SELECT * FROM t WHERE a < $high", 0.0)
    assert con.execute("SELECT count(*) FROM t").fetchone() == (5,)  # the DELETE before it did not run
