"""The stream's tail: recent ticks in memory, in tables named like the lake's, so the sink's writer and
the views' SQL run on it unchanged."""

from __future__ import annotations

from datetime import timedelta

import duckdb

from tickstore import lake
from tickstore.lake import REJECTED_DDL, TICKS_DDL


def open_tail() -> duckdb.DuckDBPyConnection:
    """An in-memory database holding empty `ticks` and `ticks_rejected` tables, in use."""
    con = duckdb.connect()
    lake.tune(con)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("ATTACH ':memory:' AS lake")
    con.execute("USE lake")
    con.execute(TICKS_DDL)
    con.execute(REJECTED_DDL)
    return con


def prune(con: duckdb.DuckDBPyConnection, keep: timedelta) -> None:
    """Drop the ticks older than ``keep`` before their product's newest: they can't reach a window."""
    con.execute(
        "DELETE FROM ticks t USING (SELECT product_id, max(event_time) AS newest FROM ticks GROUP BY 1) n "
        "WHERE t.product_id = n.product_id AND t.event_time < n.newest - $keep",
        {"keep": keep},
    )
    # DuckDB keeps deleted rows of in-memory tables until a checkpoint: the tail's pruned ticks and
    # the parser's per-batch temp rows grew the stream by ~1.3 KB a message, without end
    con.execute("CHECKPOINT lake")
    con.execute("CHECKPOINT temp")
