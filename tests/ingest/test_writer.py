"""LakeWriter against a real DuckLake: idempotent commits of overlapping batches."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

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
    # the same offset in another partition or topic is another message
    elsewhere = wire.raw_table(["t", "u"], [1, 0], [7, 7], [0, 0], [b"{bad", b"{bad"], 1 << 20)
    assert writer.write(elsewhere).rejects == 2
    assert writer.write(elsewhere).rejects == 0
    assert con.execute("SELECT count(*) FROM ticks_rejected").fetchone() == (4,)


def test_a_batch_rejected_whole_keeps_each_message_byte_for_byte(
    make_settings: Callable[..., Settings],
) -> None:
    con = lake.connect(make_settings())
    lines = [b'{"type":"ticker"}', b"\xff\xfe not UTF-8"]
    raw = wire.raw_table(["t", "t"], [0, 0], [3, 4], [0, 0], lines, 1 << 20)
    assert LakeWriter(con, 1 << 20).reject_whole(raw, "the lake refused the batch").rejects == 2
    stored = con.execute("SELECT reason, payload FROM ticks_rejected ORDER BY src_offset").fetchall()
    assert stored == [("the lake refused the batch", line) for line in lines]


def test_of_two_copies_of_a_tick_in_one_batch_the_first_delivered_is_kept(
    make_settings: Callable[..., Settings],
) -> None:
    def ticker(price: str) -> bytes:  # one Exchange sequence: one tick, whatever else differs
        message = {"type": "ticker", "sequence": 42, "product_id": "BTC-USD", "time": "2026-01-01T00:00:00Z"}
        return json.dumps(message | {"price": price, "best_bid": price, "best_ask": price}).encode()

    con = lake.connect(make_settings())
    raw = wire.raw_table(
        ["t"] * 3, [0] * 3, [5, 6, 7], [0] * 3, [ticker("100"), ticker("101"), ticker("102")], 1 << 20
    )
    assert LakeWriter(con, 1 << 20).write(raw).ticks == 1
    assert con.execute("SELECT src_offset, price::VARCHAR FROM ticks").fetchall() == [(5, "100.00000000")]


def test_what_is_kept_does_not_depend_on_how_messages_are_batched(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Two ticks sharing a tick id but not a time (two simulator runs' sequences) are two ticks in one batch too.

    Within a batch ticks were told apart by tick id alone, against the lake by product, time and tick id:
    one batch of both kept one, two batches kept both.
    """

    def ticker(time: str, price: str) -> bytes:
        message = {"type": "ticker", "sequence": 42, "product_id": "BTC-USD", "time": time}
        return json.dumps(message | {"price": price, "best_bid": price, "best_ask": price}).encode()

    lines = [ticker("2026-01-01T00:00:00Z", "100"), ticker("2026-01-01T00:00:05Z", "101")]
    lines.append(lines[0])  # a re-delivery of the first: one tick

    def raw(offsets: range) -> wire.pa.Table:
        n = len(offsets)
        return wire.raw_table(["t"] * n, [0] * n, offsets, [0] * n, [lines[o] for o in offsets], 1 << 20)

    kept = []
    for i, batches in enumerate(([range(0, 3)], [range(0, 1), range(1, 3)], [range(0, 2), range(2, 3)])):
        con = lake.connect(make_settings(home=tmp_path / str(i)))
        writer = LakeWriter(con, 1 << 20)
        results = [writer.write(raw(b)) for b in batches]
        assert not sum(r.rejects for r in results), con.execute(
            "SELECT reason FROM ticks_rejected"
        ).fetchall()
        assert sum(r.ticks for r in results) == 2 and sum(r.duplicates for r in results) == 1
        kept.append(con.execute("SELECT event_time, price FROM ticks ORDER BY ALL").fetchall())
        con.close()
    assert kept[0] == kept[1] == kept[2] and len(kept[0]) == 2
