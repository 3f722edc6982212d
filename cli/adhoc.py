"""`tickstore sql`: ad-hoc SQL over the lake, read-only unless told otherwise, safe while the sink writes."""

from __future__ import annotations

import io
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import TextIO

import click
import duckdb

from cli import query_progress
from cli.context import OutPath, format_option, settings_of
from cli.interrupt import ctrl_c_cancels
from cli.ranges import AS_OF, snapshot_of
from cli.session import Session


class _SqlCommand(click.Command):
    """`tickstore sql`, taking a QUERY that opens with a comment as the query, not an unknown option."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # "-- grain: ..." (a file's header, as `"$(cat sql/ticks_60s.sql)"` passes it) reads to click
        # as an option; a newline in front changes nothing for SQL and makes it an argument
        args = ["\n" + a if re.match(r"--\s", a) else a for a in args]
        for i, arg in enumerate(args):
            if re.fullmatch(r"\.[a-z]+", arg):
                # a dot command typed with its argument unquoted, `tickstore sql .schema ticks_60s`, as
                # the shell takes it: one QUERY (click refused "ticks_60s" as an extra argument)
                end = next((j for j in range(i + 1, len(args)) if args[j].startswith("-")), len(args))
                args = [*args[:i], " ".join(args[i:end]), *args[end:]]
                break
        return super().parse_args(ctx, args)


@click.command(cls=_SqlCommand)
@click.argument("query", required=False)
@click.option(
    "-f",
    "--file",
    "sql_file",
    type=click.File("r"),
    help="Read the SQL from this file ('-': standard input) instead of QUERY.",
)
@format_option("table: for reading (--limit rows); csv: with a header; json: one object per line (all rows).")
@click.option(
    "--as-of",
    "as_of",
    type=AS_OF,
    help="A lake snapshot id, or a UTC time (the newest snapshot by then): query the lake as it was then.",
)
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    callback=lambda ctx, param, value: _params(value),
    help="A value for $NAME in the SQL, bound (never pasted into it): -p product=BTC-USD. Repeatable.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Most rows printed as a table.",
)
@click.option(
    "--write",
    is_flag=True,
    help="Allow statements that change the lake (DELETE, UPDATE, ...); without it the lake is read-only.",
)
@click.option(
    "--plot",
    type=OutPath(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Draw the rows to FILE (.png, .svg, .pdf) instead (of a script: the last statement's): the "
    "first column across (a time), a panel each number column, a line each value of the text ones (product_id).",
)
@click.option(
    "-i",
    "--interactive",
    is_flag=True,
    help="A shell (the default without QUERY in a terminal): statements end with ';', .help for more.",
)
@click.pass_context
def sql(
    ctx: click.Context,
    query: str | None,
    sql_file: TextIO | None,
    fmt: str,
    as_of: int | datetime | None,
    params: dict[str, str],
    limit: int,
    write: bool,
    plot: Path | None,
    interactive: bool,
) -> None:
    """Run ad-hoc SQL over the lake (safe while the sink writes). Tables: ticks, ticks_rejected.

    The feature views of sql/ (ticks_10s, ticks_60s, ticks_300s, tick_clock) can be named as tables:
    each is its file as it is now, so an edit can be tried before `feast apply`. Called with a time
    range, ticks_60s(since[, until]), a view reads only the ticks that range needs (named as a table,
    it computes the whole history before a WHERE on the time drops rows).

    \b
      tickstore sql "SELECT * FROM ticks_60s WHERE product_id = 'BTC-USD' \\
          ORDER BY event_time DESC LIMIT 5"
      tickstore sql "SELECT * FROM ticks_60s(now() - INTERVAL 10 MINUTE) \\
          WHERE product_id = 'BTC-USD'"
      tickstore sql "SELECT * FROM ticks_10s('2025-12-06 06:15', \\
          '2025-12-06 06:30')"   # times in UTC
      tickstore sql "SELECT event_time, product_id, ret_std_60s \\
          FROM ticks_60s('2025-12-06 06:15', '2025-12-06 07:15')" --plot vol.png

    \b
      tickstore sql -f my_query.sql    # or < my_query.sql: each statement's rows
      tickstore sql                    # a shell (in a terminal): end with ';'
      tickstore sql .schema ticks_60s  # a table's or view's columns, and what
                                       # each holds

    The lake is attached read-only unless --write is given: a mistyped DELETE can't empty it.
    """
    from tickstore import feature_sql, lake

    if query is not None and sql_file is not None:
        raise click.UsageError("give the SQL as QUERY or with --file, not both")
    if interactive and (query is not None or sql_file is not None):
        raise click.UsageError("--interactive reads statements as you type them: no QUERY or --file")
    if sql_file is not None:
        query = sql_file.read()
    elif query is None and not (interactive or sys.stdin.isatty()):
        query = sys.stdin.read()
    if query is not None and not query.strip():
        raise click.UsageError("the SQL is empty")
    if plot is not None:
        from cli.plot import check_path

        if query is None:
            raise click.UsageError("--plot draws one query's rows: give it as QUERY or with --file")
        try:
            check_path(plot)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--plot") from exc
    s = settings_of(ctx)
    views = feature_sql.views()
    try:
        snapshot = snapshot_of(ctx, as_of)  # a time read as everywhere else: UTC unless it says otherwise
        con = lake.connect(s, snapshot=snapshot, create=False, read_only=not write)
    except (lake.LakeError, duckdb.Error) as exc:
        raise click.ClickException(str(exc)) from exc
    if query is not None and params:
        _all_used(con, query, params)
    query_progress.track(con)
    session = Session(
        con, views, fmt, limit, write=write, past=snapshot is not None, params=params, plot=plot, settings=s
    )
    with ctrl_c_cancels(con):
        if query is None:
            from cli.shell import shell

            shell(session, s)
            return
        from cli.shell import dot, dot_commands_in, shell

        named = Path(sql_file.name) if sql_file is not None else None  # '-' is named <stdin>
        script_path = named if named is not None and named.is_file() else None
        if query.strip().startswith(".") and "\n" not in query.strip() and script_path is None:
            if not dot(session, query):  # the shell's .tables, .help
                sys.exit(1)
            return
        if dot_commands_in(query):  # a script of SQL and .format, .tables: as the shell reads a pipe
            shell(session, s, io.StringIO(query), script_path)
            return
        session.run(query)


def _params(given: tuple[str, ...]) -> dict[str, str]:
    """-p NAME=VALUE options as a dict (a name given twice: the last value)."""
    params: dict[str, str] = {}
    for item in given:
        name, eq, value = item.partition("=")
        name = name.strip().lstrip("$")
        if not eq or not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise click.BadParameter(f"{item!r} is not NAME=VALUE (e.g. -p product=BTC-USD)", param_hint="-p")
        params[name] = value
    return params


def _all_used(con: duckdb.DuckDBPyConnection, query: str, params: dict[str, str]) -> None:
    """Refuse a -p that no statement of ``query`` uses (a typo would otherwise be ignored)."""
    try:
        used = {n for s in con.extract_statements(query) for n in s.named_parameters}
    except duckdb.Error:
        return  # the statement itself fails when run, with DuckDB's message
    unused = sorted(set(params) - used)
    if unused:
        raise click.UsageError(
            f"the SQL uses no {', '.join('$' + n for n in unused)}"
            + (f" (it uses {', '.join('$' + n for n in sorted(used))})" if used else "")
        )
