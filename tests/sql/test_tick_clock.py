"""Data test for sql/tick_clock.sql: one row per tick, its event time in microseconds."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import REPO
from tests.sql.test_tick_windows import T0, ticks_con


def test_tick_clock_keeps_every_tick_and_its_microsecond() -> None:
    rows = [
        ("A", 0, 99.5, 100.5, 1.0, 1.0, 100.0),
        ("A", 0.000001, 99.5, 100.5, 1.0, 1.0, 100.0),  # one microsecond later: its own value
        ("A", 0.000001, 99.5, 100.5, 1.0, 1.0, 100.0),  # a burst: same timestamp, both rows kept
        ("B", 61.5, 9.5, 10.5, None, None, 10.0),
    ]
    con = ticks_con(rows)
    got = con.sql(
        (REPO / "sql" / "tick_clock.sql").read_text() + " ORDER BY product_id, event_time"
    ).fetchall()
    base = int(T0.timestamp()) * 1_000_000
    assert got == [
        ("A", T0, base),
        ("A", T0 + timedelta(microseconds=1), base + 1),
        ("A", T0 + timedelta(microseconds=1), base + 1),
        ("B", T0 + timedelta(seconds=61.5), base + 61_500_000),
    ]
