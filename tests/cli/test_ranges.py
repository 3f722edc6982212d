"""Time ranges as the commands pick them (cli/ranges.py): the lake's busiest stretches of ticks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
import duckdb
import pytest

from cli.ranges import WHEN, busiest_stretches, span

T0 = datetime(2026, 1, 1, 23, 50, tzinfo=UTC)


def stretches_of(offsets_s: list[float], n: int = 5) -> list[tuple[datetime, datetime, int]]:
    """busiest_stretches over ticks at T0 + each offset (seconds), in a DuckDB table of their own."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE ticks (event_time TIMESTAMPTZ)")
    for s in offsets_s:
        con.execute("INSERT INTO ticks VALUES (?)", [T0 + timedelta(seconds=s)])
    return busiest_stretches(con, n)


def test_a_pause_over_ten_minutes_ends_a_stretch_and_one_of_ten_does_not() -> None:
    at = lambda s: T0 + timedelta(seconds=s)  # noqa: E731
    # 0..20 s; a pause of exactly 10 min (joined); then over it by 1 ms (a new stretch), past midnight
    ticks = [0.0, 10.0, 20.0, 620.0, 1220.001, 1230.0, 1240.0]
    assert stretches_of(ticks) == [(at(0.0), at(620.0), 4), (at(1220.001), at(1240.0), 3)]
    # busiest first, ties by time; one tick is a stretch; n of them at most
    assert stretches_of([0.0, 5000.0, 5001.0, 9000.0], n=2) == [
        (at(5000.0), at(5001.0), 2),
        (at(0.0), at(0.0), 1),
    ]
    assert stretches_of([]) == []


def test_a_stretch_is_shown_with_its_end_date_only_when_it_is_another_day() -> None:
    assert span(T0, T0 + timedelta(minutes=5)) == "2026-01-01T23:50..23:55"
    assert span(T0, T0 + timedelta(minutes=15)) == "2026-01-01T23:50..2026-01-02T00:05"


def test_a_time_whose_utc_falls_outside_python_is_a_usage_error_not_a_traceback() -> None:
    with pytest.raises(click.BadParameter, match="out of range: in UTC it falls outside the years 1-9999"):
        WHEN.convert("0001-01-01T00:00+05:00", None, None)
    assert WHEN.convert("2025-12-06T08:00+01:00", None, None).isoformat() == "2025-12-06T07:00:00+00:00"
