"""Times, lake snapshots and time ranges as the commands take them (--start, --end, --as-of)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
import duckdb
from click.shell_completion import CompletionItem

from cli.context import console, lake_rows, settings_of
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
        try:
            return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+05:00 is before the first time Python holds
            self.fail(f"{value!r} is out of range: in UTC it falls outside the years 1-9999", param, ctx)


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

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        """Tab in bash or zsh: the lake's newest snapshots (of those starting with what was typed),
        each with when it was taken (zsh shows it)."""
        if incomplete and not incomplete.isdigit():  # a time is typed, not completed
            return []
        rows = lake_rows(
            ctx,
            "SELECT snapshot_id, snapshot_time FROM ducklake_snapshots($lake) "
            "WHERE snapshot_id::VARCHAR LIKE $typed || '%' ORDER BY snapshot_id DESC LIMIT 20",
            {"lake": lake.LAKE, "typed": incomplete},
        )
        return [
            CompletionItem(str(i), help=f"taken {t.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC") for i, t in rows
        ]


AS_OF = SnapshotOrTime()


def snapshot_of(ctx: click.Context, as_of: int | datetime | None) -> int | None:
    """An --as-of as a snapshot id (a time: the newest snapshot taken by then, said on screen)."""
    if not isinstance(as_of, datetime):
        return as_of
    snapshot = lake.snapshot_at(settings_of(ctx), as_of)
    # a time still to come (a mistyped year) reads today's lake, which later runs would not reproduce
    ahead = " (the newest: that time is still to come)" if as_of > datetime.now(UTC) else ""
    console.print(f"lake as of {as_of:%Y-%m-%dT%H:%M:%S}Z: snapshot {snapshot}{ahead}")
    return snapshot


STRETCH_GAP = timedelta(minutes=10)  # a pause in the ticks longer than this ends a stretch


def busiest_stretches(
    con: duckdb.DuckDBPyConnection, n: int, gap: timedelta = STRETCH_GAP
) -> list[tuple[datetime, datetime, int]]:
    """The ``n`` stretches of ticks with the most ticks, busiest first: (first tick, last tick, ticks).

    A stretch is a run of ticks, of any product, with no pause over ``gap``: a recording's session, say.
    A range across a pause of hours (two recordings of one day) mixes sessions in one training set,
    and its later, calmer session left the demo's validation split without a spike.
    """
    # per minute first: a pause of a minute or more only falls between two minutes' ticks (one
    # minute's are less apart), and a lake holds far fewer minutes than ticks
    return con.execute(
        """
        WITH minutes AS (
            SELECT min(event_time) AS first, max(event_time) AS last, count(*) AS ticks
            FROM ticks GROUP BY date_trunc('minute', event_time)
        ),
        breaks AS (
            SELECT *, coalesce(first - lag(last) OVER (ORDER BY first) > $gap, false)::INTEGER AS starts
            FROM minutes
        ),
        stretches AS (
            SELECT *, sum(starts) OVER (ORDER BY first ROWS UNBOUNDED PRECEDING) AS stretch FROM breaks
        )
        SELECT min(first), max(last), sum(ticks)::BIGINT AS ticks
        FROM stretches GROUP BY stretch ORDER BY ticks DESC, min(first) LIMIT $n
        """,
        {"n": n, "gap": gap},
    ).fetchall()


def span(first: datetime, last: datetime) -> str:
    """A stretch as `2025-12-06T06:12..08:35`, the end's date given only when it is another day."""
    return (
        f"{first:%Y-%m-%dT%H:%M}..{last:%H:%M}"
        if first.date() == last.date()
        else f"{first:%Y-%m-%dT%H:%M}..{last:%Y-%m-%dT%H:%M}"
    )


def range_needed(ctx: click.Context, what: str, example: str) -> click.UsageError:
    """The error for a missing --start/--end, naming the lake's busiest stretches to pick a range from
    (a new user had to find them with `tickstore sql` first)."""
    s = settings_of(ctx)
    try:
        con = lake.connect(s, create=False, read_only=True)
    except Exception:  # no lake, or it can't be read: the plain message
        return click.UsageError(f"{what} needs --start and --end (UTC)")
    try:
        stretches = busiest_stretches(con, 3)
    finally:
        con.close()
    if not stretches:
        return click.UsageError(f"{what} needs --start and --end (UTC); the lake has no ticks yet")
    spans = "; ".join(f"{span(a, b)} ({n:,} tick{'s' * (n != 1)})" for a, b, n in stretches)
    first = stretches[0]
    return click.UsageError(
        f"{what} needs --start and --end (UTC). The lake's busiest stretches (no pause over "
        f"{STRETCH_GAP.seconds // 60} min): {spans}; e.g. "
        f"{example} --start {first[0]:%Y-%m-%dT%H:%M} --end {first[1] + timedelta(minutes=1):%Y-%m-%dT%H:%M}"
    )
