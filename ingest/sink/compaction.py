"""Keep the lake from turning into a hundred thousand tiny files, without breaking time travel."""

from __future__ import annotations

import logging

import duckdb

from tickstore.lake import LAKE

log = logging.getLogger(__name__)

# A data file the catalog does not list and older than this is left over from a write that failed
# (a full disk, a killed process): no writer takes an hour between writing a file and committing it.
ORPHAN_AGE_S = 3600

# Files are merged within size tiers, each 16 times the one below: a tier's files are merged once it
# holds FANOUT of them (the smallest tier: any two), so a tick is rewritten about once a tier. One
# merge of everything instead rewrote the whole table at every pass (DuckLake merges up to its 512 MB
# target): a live sink wrote its ticks again every 5 minutes, and kept each copy for time travel.
TIERS = (0, 64 << 10, 1 << 20, 16 << 20, 256 << 20)
FANOUT = 16

TABLES = ("ticks", "ticks_rejected")


def compact(con: duckdb.DuckDBPyConnection, retention_days: float) -> None:
    """Merge small data files tier by tier, then drop snapshots and files older than the retention,
    and files no snapshot ever listed (left by failed writes).

    Merged-away files stay on disk until their snapshots expire, so `--as-of` keeps working for
    ``retention_days``.
    """
    con.execute(f"CALL ducklake_flush_inlined_data('{LAKE}')")
    for table in TABLES:
        merge_tiers(con, table)
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


def inline_small_writes(con: duckdb.DuckDBPyConnection, rows: int) -> None:
    """Have DuckLake keep a write of at most ``rows`` rows in its catalog until the next compaction
    flushes what waits there to one Parquet file, rather than a file for each write.

    A live feed's one-second batches (~10-20 ticks) were a ~4 KB file each: ~86,000 a day, kept a week
    for time travel once merged. Up to ~100 rows a write costs the same as a file; a 900-row one cost
    10x (docs/decisions.md). A lake option, written to the catalog only when it differs; when the
    catalog can't be written now (another process holds it, a read-only disk) batches are files, as
    before, and the sink tries again at its next compaction.
    """
    try:
        row = con.execute(
            "SELECT value FROM ducklake_options($lake) WHERE option_name = 'data_inlining_row_limit'",
            {"lake": LAKE},
        ).fetchone()
        if row is None or row[0] != str(rows):
            con.execute(f"CALL {LAKE}.set_option('data_inlining_row_limit', $n)", {"n": rows})
    except duckdb.Error as exc:
        log.warning("sink: could not set the lake's inlining limit (batches are files until it is): %s", exc)


def merge_tiers(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Merge ``table``'s data files of each size tier that holds enough of them, smallest first."""
    for tier, (low, high) in enumerate(zip(TIERS, TIERS[1:], strict=False)):
        # sizes read again for each tier: the one below may just have merged into this one
        row = con.execute(
            "SELECT count(*) FROM ducklake_list_files($lake, $t) "
            "WHERE data_file_size_bytes >= $low AND data_file_size_bytes < $high",
            {"lake": LAKE, "t": table, "low": low, "high": high},
        ).fetchone()
        if row is not None and row[0] >= (2 if tier == 0 else FANOUT):
            con.execute(
                f"CALL ducklake_merge_adjacent_files('{LAKE}', $t, min_file_size => $low, "
                "max_file_size => $high)",
                {"t": table, "low": low, "high": high},
            )


def data_file_count(con: duckdb.DuckDBPyConnection, table: str = "ticks") -> int:
    """Number of live Parquet data files behind ``table``."""
    row = con.execute(
        "SELECT count(*) FROM ducklake_list_files($lake, $t)", {"lake": LAKE, "t": table}
    ).fetchone()
    return int(row[0]) if row else 0
