"""`tickstore monitor drift`'s ranges (cli/learn.py): how they are read and what two that overlap are told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
import pytest

from cli.learn import _overlap, _time_range


def test_time_ranges_are_read_with_two_dots_or_iso_8601_s_slash() -> None:
    expected = (datetime(2026, 1, 1, 6, tzinfo=UTC), datetime(2026, 1, 1, 7, 30, tzinfo=UTC))
    for text in ("2026-01-01T06:00..2026-01-01T07:30", "2026-01-01T06:00Z/2026-01-01T07:30Z"):
        assert (
            _time_range(click.Context(click.Command("drift")), click.Option(["--current"]), text) == expected
        )
    with pytest.raises(click.BadParameter, match="use START..END"):
        _time_range(click.Context(click.Command("drift")), click.Option(["--current"]), "2026-01-01T06:00")


def test_drift_ranges_that_share_time_are_named() -> None:
    def at(hour: float) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=hour)

    assert _overlap((at(6), at(7)), (at(7), at(8))) is None  # adjacent: END is exclusive
    assert _overlap((at(9), at(10)), (at(7), at(8))) is None
    note = _overlap((at(6), at(7.5)), (at(7), at(8)))
    assert note is not None and "share 2026-01-01T07:00:00..2026-01-01T07:30:00 (50% of --current)" in note
    # a day against one of its hours; year 1 written as ISO 8601 does (strftime wrote "1-01-01")
    assert "(100% of --current)" in str(_overlap((at(0), at(24)), (at(7), at(8))))
    year1 = datetime(1, 1, 1, tzinfo=UTC)
    hour = timedelta(hours=1)
    assert "share 0001-01-01T00:00:00..0001-01-01T01:00:00" in str(
        _overlap((year1, year1 + hour), (year1, year1 + hour))
    )
