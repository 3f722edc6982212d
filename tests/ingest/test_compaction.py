"""Compaction merges the sink's small files without losing rows or time travel."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import duckdb

from ingest import simulate, wire
from ingest.sink.compaction import FANOUT, ORPHAN_AGE_S, TIERS, compact, data_file_count, inline_small_writes
from ingest.sink.writer import LakeWriter
from tickstore import lake
from tickstore.settings import Settings


def test_compaction_merges_files_and_keeps_snapshots(make_settings: Callable[..., Settings]) -> None:
    s = make_settings()
    con = lake.connect(s)
    writer = LakeWriter(con, 1 << 20)
    lines = [line for _, line in simulate.generate(simulate.SimConfig(n_ticks=2_000))]
    for i in range(0, 2_000, 100):  # twenty small batches, as a quiet sink would write
        n = 100
        writer.write(wire.raw_table(["t"] * n, [0] * n, range(i, i + n), [0] * n, lines[i : i + n], 1 << 20))
    middle = lake.current_snapshot(con) - 10
    before = data_file_count(con)
    compact(con, retention_days=7)
    assert before >= 20 and data_file_count(con) == 1
    assert con.execute("SELECT count(*), count(DISTINCT tick_id) FROM ticks").fetchone() == (2_000, 2_000)
    old = lake.connect(s, snapshot=middle)
    assert old.execute("SELECT count(*) FROM ticks").fetchone()[0] < 2_000  # type: ignore[index]


def test_compaction_deletes_what_failed_writes_left_and_nothing_a_writer_may_still_commit(
    make_settings: Callable[..., Settings],
) -> None:
    """A write that failed (a full disk, a killed sink) leaves its half-written Parquet file behind:
    on a full disk each retry's file took more of what room was left."""
    s = make_settings()
    con = lake.connect(s)
    lines = [line for _, line in simulate.generate(simulate.SimConfig(n_ticks=300))]
    LakeWriter(con, 1 << 20).write(
        wire.raw_table(["t"] * 300, [0] * 300, range(300), [0] * 300, lines, 1 << 20)
    )
    folder = s.lake_data / "main" / "ticks"
    live = set(folder.iterdir())
    assert live, "the batch was inlined into the catalog: no data file"
    left, writing = (
        folder / "ducklake-left-by-a-failed-write.parquet",
        folder / "ducklake-being-written.parquet",
    )
    for orphan in (left, writing):
        orphan.write_bytes(b"PAR1 half a file")
    two_hours_ago = time.time() - 2 * ORPHAN_AGE_S
    os.utime(left, (two_hours_ago, two_hours_ago))

    compact(con, retention_days=7)
    assert set(folder.iterdir()) == live | {writing}
    assert con.execute("SELECT count(*) FROM ticks").fetchone() == (300,)


def _write(writer: LakeWriter, lines: list[bytes], offset: int) -> None:
    n = len(lines)
    writer.write(wire.raw_table(["t"] * n, [0] * n, range(offset, offset + n), [0] * n, lines, 1 << 20))


def _files(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(
        con.execute(
            "SELECT data_file, data_file_size_bytes FROM ducklake_list_files('lake', 'ticks')"
        ).fetchall()
    )


def test_a_merged_file_is_left_alone_until_its_tier_fills(make_settings: Callable[..., Settings]) -> None:
    """A pass merges the new small files, not every file again: one merge of everything rewrote the
    whole table at each pass, and time travel kept every copy."""
    con = lake.connect(make_settings())
    writer = LakeWriter(con, 1 << 20)
    lines = [line for _, line in simulate.generate(simulate.SimConfig(n_ticks=36_000))]
    for i in range(0, 32_000, 2_000):  # sixteen files of the second tier (64 KiB to 1 MiB)
        _write(writer, lines[i : i + 2_000], i)
    assert all(TIERS[1] <= size < TIERS[2] for size in _files(con).values())
    compact(con, retention_days=7)
    (merged,) = _files(con)  # the tier held FANOUT files: one now
    for i in range(32_000, 36_000, 100):  # forty small batches, as a quiet sink writes them
        _write(writer, lines[i : i + 100], i)
    compact(con, retention_days=7)
    files = _files(con)
    assert len(files) == 2 and merged in files  # the small ones merged with each other only
    compact(con, retention_days=7)
    assert _files(con) == files  # nothing to do: no tier holds enough files
    assert con.execute("SELECT count(*), count(DISTINCT tick_id) FROM ticks").fetchone() == (36_000, 36_000)


def test_a_tier_waits_for_fanout_files(make_settings: Callable[..., Settings]) -> None:
    con = lake.connect(make_settings())
    writer = LakeWriter(con, 1 << 20)
    lines = [line for _, line in simulate.generate(simulate.SimConfig(n_ticks=30_000))]
    for i in range(0, 30_000, 2_000):
        _write(writer, lines[i : i + 2_000], i)
    assert all(TIERS[1] <= size < TIERS[2] for size in _files(con).values())
    compact(con, retention_days=7)
    assert len(_files(con)) == FANOUT - 1  # fifteen files of one tier: left for now


def _inlining(con: duckdb.DuckDBPyConnection) -> str | None:
    row = con.execute(
        "SELECT value FROM ducklake_options('lake') WHERE option_name = 'data_inlining_row_limit'"
    ).fetchone()
    return None if row is None else str(row[0])


def test_small_batches_wait_in_the_catalog_and_compaction_writes_them_as_one_file(
    make_settings: Callable[..., Settings],
) -> None:
    """A live feed's one-second batches were a ~4 KB Parquet file each, ~86,000 a day kept a week."""
    s = make_settings()
    con = lake.connect(s)
    inline_small_writes(con, 100)
    assert _inlining(lake.reopen(s)) == "100"  # a lake option: every process writing to it inlines
    writer = LakeWriter(con, 1 << 20)
    lines = [line for _, line in simulate.generate(simulate.SimConfig(n_ticks=1_101))]
    for i in range(0, 1_000, 20):  # fifty batches of twenty, as a live sink writes them
        _write(writer, lines[i : i + 20], i)
    assert data_file_count(con) == 0  # in the catalog, and read as any other row:
    assert con.execute("SELECT count(DISTINCT tick_id) FROM ticks").fetchone() == (1_000,)
    middle = lake.current_snapshot(con) - 10
    at_middle = con.execute(
        "SELECT count(*), sum(price), max(event_time) FROM lake.ticks AT (VERSION => $v)", {"v": middle}
    ).fetchone()
    _write(writer, lines[1_000:], 1_000)  # 101 rows: more than inlined, a file of its own
    assert data_file_count(con) == 1
    compact(con, retention_days=7)
    assert data_file_count(con) == 1  # what waited, written out, and merged with the other
    assert con.execute("SELECT count(*), count(DISTINCT tick_id) FROM ticks").fetchone() == (1_101, 1_101)
    old = lake.connect(s, snapshot=middle)  # time travel to a snapshot whose rows were inlined then
    assert old.execute("SELECT count(*), sum(price), max(event_time) FROM ticks").fetchone() == at_middle
    assert at_middle is not None and at_middle[0] == 800
    inline_small_writes(con, 0)
    _write(writer, [line for _, line in simulate.generate(simulate.SimConfig(n_ticks=5, seed=9))], 2_000)
    assert _inlining(con) == "0" and data_file_count(con) == 2  # 0: each batch a file
