"""The "Did you mean" of a wrong table name (cli/suggest.py), on DuckDB's own messages."""

from __future__ import annotations

import duckdb
import pytest

from cli.suggest import nearest_lake_name

NAMES = ["ticks", "ticks_rejected", "tick_clock", "ticks_10s", "ticks_300s", "ticks_60s"]


def _error(sql: str) -> str:
    """DuckDB's message for ``sql`` on an in-memory database with a `ticks` table."""
    con = duckdb.connect()
    con.execute("CREATE TABLE ticks (x INTEGER)")
    with pytest.raises(duckdb.CatalogException) as caught:
        con.execute(sql)
    return str(caught.value)


@pytest.mark.parametrize(
    ("sql", "said"),
    [
        ("SELECT * FROM tick_60s", 'Did you mean "ticks_60s"?'),  # DuckDB: "ticks"
        ("SELECT * FROM tick_60s(now())", 'Did you mean "ticks_60s"?'),  # DuckDB: a duckdb_* function
        ("SELECT * FROM ticks_rejecte", 'Did you mean "ticks_rejected"?'),
        ("SELECT * FROM TICKZ", 'Did you mean "ticks"?'),
    ],
)
def test_the_nearest_lake_name_replaces_duckdbs(sql: str, said: str) -> None:
    message = nearest_lake_name(_error(sql), NAMES)
    assert message.count("Did you mean") == 1 and said in message, message
    assert message.startswith("Catalog Error: Table")


def test_a_pg_catalog_hint_goes_and_other_hints_stay() -> None:
    far = _error("SELECT * FROM nope")
    assert 'Did you mean "pg_' in far  # what DuckDB 1.5 offers for a name near nothing
    hint = far[far.index("\nDid you mean") :].split("?")[0] + "?"
    assert nearest_lake_name(far, NAMES) == far.replace(hint, "")
    # a name near a function of DuckDB's own, not the lake's: its hint is the useful one
    function = _error("SELECT * FROM read_parqet('x.parquet')")
    assert nearest_lake_name(function, NAMES) == function and 'Did you mean "read_parquet"?' in function


def test_other_errors_pass_through() -> None:
    message = 'Catalog Error: Scalar Function with name tick_60s does not exist!\nDid you mean "pg_enum"?'
    assert nearest_lake_name(message, NAMES) == message
