"""Every `sql/*.sql` file keeps the house rules: one SELECT, a header giving grain, time column and
window, and a data test (a new feature's file fails here until it has them).

A data test module says which files it tests in its docstring: "Data tests for sql/ticks_60s.sql",
with `{10,60,300}` alternatives allowed.
"""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

import duckdb
import pytest

from tests.conftest import REPO
from tickstore import feature_sql
from tickstore.lake import TICKS_DDL

SQL_FILES = sorted((REPO / "sql").glob("*.sql"))


def _expand(pattern: str) -> list[str]:
    """sql/ticks_{10,60}s.sql -> [sql/ticks_10s.sql, sql/ticks_60s.sql]."""
    parts = re.split(r"\{([^}]*)\}", pattern)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def data_tested() -> set[str]:
    """File names that some test module's docstring says it tests ("Data test(s) for sql/...")."""
    named: set[str] = set()
    for module in (REPO / "tests").rglob("test_*.py"):
        doc = ast.get_docstring(ast.parse(module.read_text())) or ""
        if re.match(r"Data tests? for ", doc):
            for pattern in re.findall(r"sql/([\w{},]+\.sql)", doc):
                named.update(_expand(pattern))
    return named


def test_there_are_sql_files() -> None:
    assert {p.stem for p in SQL_FILES} >= {"ticks_10s", "ticks_60s", "ticks_300s", "tick_clock"}


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: p.name)
def test_one_select_with_a_header(path: Path) -> None:
    text = path.read_text()
    header = [line[3:] for line in text.splitlines() if line.startswith("-- ")]
    assert text.startswith(f"-- {path.stem}: "), "the first line names the view and says what it is"
    for part in ("grain:", "time column:", "window:"):
        assert any(line.startswith(part) for line in header), f"the header has no '{part}' line"
    if "$" not in text:  # a feature view, not a parametrized query: ranges read back by its lookback
        assert feature_sql.lookback(text) is not None, "the header has no '-- lookback: N s' line"
    statements = duckdb.extract_statements(text)
    assert len(statements) == 1 and statements[0].type == duckdb.StatementType.SELECT


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: p.name)
def test_a_data_test_names_it(path: Path) -> None:
    assert path.name in data_tested(), (
        f"no test module's docstring says 'Data tests for sql/{path.name}': add a data test (small "
        "input rows, expected output, window edges), as tests/sql/test_tick_windows.py does"
    )


def as_window_of_w(path: Path, seconds: int) -> str:
    """The text of a ``ticks_<seconds>s`` view with its window spelled W (and its comments' alignment,
    which a longer name shifts, dropped)."""
    text = path.read_text()
    for spelled, w in [
        (f"_{seconds}s", "_Ws"),
        (str(seconds * 1_000_000), "W_US"),
        (f"/ {seconds}.0", "/ W.0"),
        (f"{seconds} s", "W s"),
        (f"{seconds} SECOND", "W SECOND"),
        (f"{seconds} seconds", "W seconds"),
    ]:
        text = text.replace(spelled, w)
    return "\n".join(re.sub(r"\s+--", " --", line).rstrip() for line in text.splitlines())


@pytest.mark.parametrize("seconds", [10, 300])
def test_the_window_views_differ_only_by_their_window(seconds: int) -> None:
    # three files, one query: a fix made in one of them and not the others fails here
    assert as_window_of_w(REPO / f"sql/ticks_{seconds}s.sql", seconds) == as_window_of_w(
        REPO / "sql/ticks_60s.sql", 60
    ), (
        f"sql/ticks_{seconds}s.sql is sql/ticks_60s.sql over another window: make a change to one of "
        "them in all three (a feature for one window alone belongs in a file of its own)"
    )


@pytest.mark.parametrize("path", [p for p in SQL_FILES if "$" not in p.read_text()], ids=lambda p: p.name)
def test_every_column_of_a_view_but_its_keys_has_a_comment(path: Path) -> None:
    """A comment per column, beside it: Feast's field descriptions are these (`DuckDBSource.field`)."""
    con = duckdb.connect()
    con.execute(TICKS_DDL)
    columns = [row[0] for row in con.execute(f"DESCRIBE {path.read_text()}").fetchall()]  # noqa: S608
    commented = feature_sql.column_comments(path.read_text())
    assert set(commented) == set(columns) - {"product_id", "event_time"}, (
        "write what each column is beside it in the outer SELECT: `expr AS name,  -- what it is`"
    )
    assert all(len(said) > 10 for said in commented.values())
