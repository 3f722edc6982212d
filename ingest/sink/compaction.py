"""Keep the lake from turning into a hundred thousand tiny files, without breaking time travel."""

from __future__ import annotations

import duckdb

from tickstore.lake import LAKE


def compact(con: duckdb.DuckDBPyConnection, retention_days: float) -> None:
    """Merge small adjacent data files, then drop snapshots and files older than the retention.

    Merged-away files stay on disk until their snapshots expire, so `--as-of` keeps working for
    ``retention_days``.
    """
    con.execute(f"CALL ducklake_flush_inlined_data('{LAKE}')")
    con.execute(f"CALL ducklake_merge_adjacent_files('{LAKE}')")
    seconds = int(retention_days * 86400)
    con.execute(
        f"CALL ducklake_expire_snapshots('{LAKE}', older_than => now() - to_seconds($s))", {"s": seconds}
    )
    con.execute(
        f"CALL ducklake_cleanup_old_files('{LAKE}', older_than => now() - to_seconds($s))", {"s": seconds}
    )


def data_file_count(con: duckdb.DuckDBPyConnection, table: str = "ticks") -> int:
    """Number of live Parquet data files behind ``table``."""
    row = con.execute(
        "SELECT count(*) FROM ducklake_list_files($lake, $t)", {"lake": LAKE, "t": table}
    ).fetchone()
    return int(row[0]) if row else 0
