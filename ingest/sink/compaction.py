"""Keep the lake from turning into a hundred thousand tiny files, without breaking time travel."""

from __future__ import annotations

import duckdb

from tickstore.lake import LAKE

# A data file the catalog does not list and older than this is left over from a write that failed
# (a full disk, a killed process): no writer takes an hour between writing a file and committing it.
ORPHAN_AGE_S = 3600


def compact(con: duckdb.DuckDBPyConnection, retention_days: float) -> None:
    """Merge small adjacent data files, then drop snapshots and files older than the retention, and
    files no snapshot ever listed (left by failed writes).

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
    con.execute(
        f"CALL ducklake_delete_orphaned_files('{LAKE}', older_than => now() - to_seconds($s))",
        {"s": ORPHAN_AGE_S},
    )


def data_file_count(con: duckdb.DuckDBPyConnection, table: str = "ticks") -> int:
    """Number of live Parquet data files behind ``table``."""
    row = con.execute(
        "SELECT count(*) FROM ducklake_list_files($lake, $t)", {"lake": LAKE, "t": table}
    ).fetchone()
    return int(row[0]) if row else 0
