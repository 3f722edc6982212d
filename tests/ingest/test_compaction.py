"""Compaction merges the sink's small files without losing rows or time travel."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from ingest import simulate, wire
from ingest.sink.compaction import ORPHAN_AGE_S, compact, data_file_count
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
