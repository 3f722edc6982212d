"""LakeWriter against a real DuckLake: idempotent commits of overlapping batches."""

from __future__ import annotations

from collections.abc import Callable

from ingest import replay, wire
from ingest.sink.writer import LakeWriter
from tests.conftest import SHARED
from tests.ingest.helpers import reference_ticks
from tickstore import lake
from tickstore.settings import Settings


def test_overlapping_batches_never_duplicate(make_settings: Callable[..., Settings]) -> None:
    files = replay.discover([SHARED])
    lines = [line for f in files for line in f.read_bytes().splitlines()]
    con = lake.connect(make_settings())
    writer = LakeWriter(con, 1 << 20)

    def batch(a: int, b: int) -> wire.pa.Table:
        n = b - a
        return wire.raw_table(["t"] * n, [0] * n, range(a, b), [0] * n, lines[a:b], 1 << 20)

    assert writer.write(batch(0, 10_000)).ticks == 10_000
    again = writer.write(batch(5_000, 15_000))
    assert (again.ticks, again.duplicates) == (5_000, 5_000)
    writer.write(batch(0, len(lines)))
    counts = dict(con.execute("SELECT product_id, count(*) FROM ticks GROUP BY ALL").fetchall())
    assert counts == reference_ticks(files)
    assert con.execute("SELECT count(DISTINCT tick_id) = count(*) FROM ticks").fetchone() == (True,)


def test_rejects_are_not_duplicated_by_redelivery(make_settings: Callable[..., Settings]) -> None:
    con = lake.connect(make_settings())
    writer = LakeWriter(con, 1 << 20)
    raw = wire.raw_table(["t", "t"], [0, 0], [7, 8], [0, 0], [b"{bad", b"\xff"], 1 << 20)
    assert writer.write(raw).rejects == 2
    assert writer.write(raw).rejects == 0
    assert con.execute("SELECT count(*) FROM ticks_rejected").fetchone() == (2,)
