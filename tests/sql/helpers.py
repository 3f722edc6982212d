"""Shared data for the SQL data tests."""

from __future__ import annotations

import duckdb

from tickstore.lake import TICKS_DDL


def simulated_ticks(seed: int, n_ticks: int = 20_000) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB whose ticks table holds simulated ticks of products A and B, with the
    sizes missing on every seventh, as in real recordings."""
    from ingest import simulate

    table = simulate.tick_table(simulate.SimConfig(n_ticks=n_ticks, products=("A", "B"), seed=seed))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(TICKS_DDL)
    con.register("sim", table)
    con.execute("INSERT INTO ticks BY NAME SELECT * FROM sim")
    con.execute("UPDATE ticks SET best_bid_size = NULL, best_ask_size = NULL WHERE sequence % 7 = 0")
    return con
