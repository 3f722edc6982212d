"""Times, lake snapshots and time ranges as the commands take them (--start, --end, --as-of)."""

from __future__ import annotations

from datetime import datetime, timedelta

import click
import duckdb

from cli.context import console, settings_of
from tickstore import lake


class UtcTime(click.ParamType):
    """An ISO 8601 time as a UTC datetime: seconds, fractions and the T optional; a time without an
    offset is UTC, one with an offset or Z is converted (`tickstore sql` prints them with +00:00, and a
    copied one was refused)."""

    name = "YYYY-MM-DD[THH:MM[:SS]]"  # --help's name for it

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        from datetime import UTC

        if isinstance(value, datetime):
            return value
        try:
            when = datetime.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(
                f"{value!r} is not an ISO 8601 time, e.g. 2025-12-06T06:15 or 2025-12-06T06:15:00Z",
                param,
                ctx,
            )
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


WHEN = UtcTime()
WHEN_SHOWN = WHEN.name


class SnapshotOrTime(click.ParamType):
    """A lake snapshot id, or an ISO 8601 time (read as --start is) standing for the newest snapshot
    taken by then: every --as-of (`sql`, `dataset build`, `train`)."""

    name = "SNAPSHOT|TIME"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | datetime:
        if isinstance(value, int | datetime):
            return value
        text = str(value).strip()
        if text.isdigit():
            return int(text)
        try:
            return WHEN.convert(text, param, ctx)
        except click.BadParameter:
            self.fail(
                f"{value!r} is neither a snapshot id (42) nor an ISO 8601 time (2025-12-06T12:00)", param, ctx
            )


AS_OF = SnapshotOrTime()


def snapshot_of(ctx: click.Context, as_of: int | datetime | None) -> int | None:
    """An --as-of as a snapshot id (a time: the newest snapshot taken by then, said on screen)."""
    if not isinstance(as_of, datetime):
        return as_of
    snapshot = lake.snapshot_at(settings_of(ctx), as_of)
    console.print(f"lake as of {as_of:%Y-%m-%dT%H:%M:%S}Z: snapshot {snapshot}")
    return snapshot


def busiest_days(con: duckdb.DuckDBPyConnection, n: int) -> list[tuple[datetime, datetime, int]]:
    """The ``n`` days with the most ticks, busiest first: (first tick, last tick, ticks)."""
    return con.execute(
        "SELECT min(event_time), max(event_time), count(*) FROM ticks "
        "GROUP BY date_trunc('day', event_time) ORDER BY count(*) DESC LIMIT $n",
        {"n": n},
    ).fetchall()


def range_needed(ctx: click.Context, what: str, example: str) -> click.UsageError:
    """The error for a missing --start/--end, naming the lake's busiest days to pick a range from
    (a new user had to find them with `tickstore sql` first)."""
    s = settings_of(ctx)
    try:
        con = lake.connect(s, create=False, read_only=True)
    except Exception:  # no lake, or it can't be read: the plain message
        return click.UsageError(f"{what} needs --start and --end (UTC)")
    try:
        days = busiest_days(con, 3)
    finally:
        con.close()
    if not days:
        return click.UsageError(f"{what} needs --start and --end (UTC); the lake has no ticks yet")
    spans = "; ".join(f"{a:%Y-%m-%dT%H:%M}..{b:%H:%M} ({n:,} tick{'s' * (n != 1)})" for a, b, n in days)
    first = days[0]
    return click.UsageError(
        f"{what} needs --start and --end (UTC). The lake's busiest days: {spans}; e.g. "
        f"{example} --start {first[0]:%Y-%m-%dT%H:%M} --end {first[1] + timedelta(minutes=1):%Y-%m-%dT%H:%M}"
    )
