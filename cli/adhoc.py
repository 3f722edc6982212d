"""`tickstore sql`: ad-hoc SQL over the lake, read-only unless told otherwise, safe while the sink writes."""

from __future__ import annotations

import io
import itertools
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click
import duckdb

from cli.context import OutPath, console, format_option, settings_of
from cli.interrupt import ctrl_c_cancels, settle
from cli.ranges import AS_OF, snapshot_of
from cli.results import print_rows
from cli.statements import LOCK_WAIT_S, Changed, Transaction, statement_results
from cli.suggest import nearest_lake_name
from tickstore import catalog

if TYPE_CHECKING:
    from tickstore.settings import Settings

# a query naming a feature view as a table that takes longer gets a tip on the range call, once
SLOW_VIEW_S = 2.0


def _time_column(path: Path) -> str:
    """The column a feature view's rows are timed by (its SQL header says)."""
    from tickstore import feature_sql

    return feature_sql.time_column(path.read_text())


def _no_views() -> str:
    """What "feature views:" lists when there are none, and why when sql/ itself is missing."""
    from tickstore import paths
    from tickstore.errors import TickstoreError

    try:
        paths.require()
    except TickstoreError as exc:
        return f"none ({exc})"
    return "none"


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


@dataclass
class Session:
    """A `tickstore sql` connection and how its results print (the shell's .format and .limit change it)."""

    con: duckdb.DuckDBPyConnection
    views: dict[str, Path]
    fmt: str
    limit: int
    write: bool
    past: bool  # attached at a past snapshot (--as-of): read-only whatever --write says
    params: dict[str, str] = field(default_factory=dict)  # -p NAME=VALUE: bound to $NAME
    tipped: bool = False  # the range-call tip was given (once a session)
    plot: Path | None = None  # --plot FILE (the shell's .plot FILE): the next rows drawn there, not printed
    transaction: Transaction = field(default_factory=Transaction)  # a BEGIN not yet ended
    settings: Settings | None = None  # to name the lake's own files in errors

    def tables(self) -> list[str]:
        """The lake's own tables (the feature views attached so far left out)."""
        return [r[0] for r in self.con.execute("SHOW TABLES").fetchall() if r[0] not in self.views]

    def schema(self, name: str) -> list[tuple[str, str, str]]:
        """Each column of the table or feature view ``name``: its name, its type and what it holds (the
        comment beside it in the lake's DDL, or in the view's SQL file); ValueError for another name."""
        from tickstore import feature_sql, lake

        if name in self.views:  # a file stem matched against feature_sql's name pattern: no user text
            feature_sql.attach_views(self.con, name, {name: self.views[name]})
            # its keys are the ticks' own columns, said as the lake's DDL says them
            said = {
                **lake.column_comments("ticks"),
                **feature_sql.column_comments(self.views[name].read_text()),
            }
        elif name in self.tables():
            said = lake.column_comments(name)
        else:
            views = ", ".join(self.views) or _no_views()
            raise ValueError(
                f"no table or feature view {name}: the lake's tables: {', '.join(self.tables())}; feature views: {views}"
            )
        quoted = name.replace('"', '""')  # a name SHOW TABLES gave, quoted as an identifier
        rows = self.con.execute(f'DESCRIBE SELECT * FROM "{quoted}"').fetchall()  # noqa: S608
        return [(column, kind, said.get(column, "")) for column, kind, *_ in rows]

    def run(self, query: str) -> None:
        """Run ``query``'s statements, printing each one's rows (or what it changed) before the next
        runs; a failure is a ClickException saying what to do (the lake's tables for a wrong name,
        --write for a change to a read-only lake), the statements before it having run and printed;
        Ctrl-C is a KeyboardInterrupt."""
        try:
            self._run(query)
        except duckdb.InterruptException:  # Ctrl-C (cli/interrupt.py), as Python itself would say it
            settle()
            raise KeyboardInterrupt from None

    def _run(self, query: str) -> None:
        from tickstore import feature_sql

        started = time.perf_counter()
        try:
            attached = feature_sql.attach_views(self.con, query, self.views)
            wait = LOCK_WAIT_S if self.write else 0.0
            last = len(self.con.extract_statements(query)) - 1  # a plot draws the last one's rows
            results = statement_results(self.con, query, wait, self.params, self.transaction)
            for i in itertools.count():
                before = self._snapshot()  # before the statement runs: next() runs it
                try:
                    result = next(results)
                except StopIteration:
                    break
                self._show(result, before, query, drawn=i == last)
        except duckdb.InterruptException:
            raise
        except duckdb.Error as exc:
            # most rows are computed as they are fetched, so a bad cast of one value fails in _show
            raise self._explain(exc) from exc
        self._tip(query, attached, time.perf_counter() - started)

    def _snapshot(self) -> int | None:
        """The lake's snapshot now, where a statement may make a new one (--write), else None."""
        from tickstore import lake

        return lake.current_snapshot(self.con) if self.write else None

    def _show(
        self, result: duckdb.DuckDBPyRelation | Changed | None, before: int | None, query: str, drawn: bool
    ) -> None:
        """Print one statement's result: its rows (or draw them, ``drawn`` the query's last statement
        after .plot / --plot), the rows it changed, or "ok"."""
        from tickstore import lake

        if result is None:
            console.print("ok")
        elif isinstance(result, Changed):
            said = f"{result.rows:,} row{'s' * (result.rows != 1)} {result.verb}"
            if before is not None and result.rows and lake.current_snapshot(self.con) > before:
                # a new snapshot: the one before it holds every row as it was (plus, at most, fewer
                # of the sink's)
                said += f"; the lake as it was before: `tickstore sql --as-of {before} ...`"
            console.print(said)
        elif self.plot is None or not drawn:
            print_rows(result.columns, result, self.fmt, self.limit)  # fetched as printed
            # before the next statement's "ok" or count on stderr, where both go to one pipe
            sys.stdout.flush()
        else:
            from cli.plot import plot

            to, self.plot = self.plot, None  # .plot draws one input's rows
            try:
                console.print(plot(result, to, query))
            except ValueError as exc:  # rows that can't be drawn so: what would be
                raise click.ClickException(str(exc)) from exc

    def _explain(self, exc: duckdb.Error) -> click.ClickException:
        """``exc`` as an error for the user, with what to do where the fix is ours to know: the lake's
        tables for a wrong name, --write for a change to a read-only lake, a cast for a -p value."""
        if isinstance(exc, duckdb.CatalogException):
            called = re.search(r"Table Function with name (\w+) does not exist", str(exc))
            if called and called.group(1) in self.views:  # a view of sql/ whose header gives no lookback
                return click.ClickException(
                    f"{exc}\nsql/{called.group(1)}.sql has no '-- lookback: N s' header line (how far back "
                    "one row's window reads ticks): add one to call it with a time range"
                )
            from tickstore import tables

            # DuckDB suggests the nearest name from every catalog (pg_enum, ...): the lake's own come first
            views = ", ".join(self.views) or _no_views()
            names = self.tables()
            gone = ""
            if "ticks" not in names and not self.past:  # dropped by hand: where its ticks still are
                gone = f"\nThe lake has no ticks table: {tables.put_back(self.con, 'ticks')}"
            said = nearest_lake_name(str(exc), [*names, *self.views])
            return click.ClickException(
                f"{said}\nThe lake's tables: {', '.join(names)}; feature views: {views}{gone}"
            )
        if "read-only mode" in str(exc) and not self.past:
            return click.ClickException(
                f"{exc}\nAd-hoc SQL reads the lake only: add --write to change it (DuckLake keeps the "
                "earlier snapshots, which --as-of reads)."
            )
        if self.settings is not None and (lost := catalog.missing_data_file(self.settings, str(exc))):
            return click.ClickException(lost)
        if self.params and "STRING_LITERAL" in str(exc):
            return click.ClickException(
                f"{exc}\nValues given with -p are text, typed by where they stand: cast one where "
                "that is not clear, e.g. $n::INTEGER."
            )
        return click.ClickException(str(exc))

    def _tip(self, query: str, attached: list[str], seconds: float) -> None:
        """Once a session, after a slow query that names a feature view as a table and filters on its
        time column: the range call."""
        if self.tipped or seconds < SLOW_VIEW_S:  # before the views' files are read: most queries stop here
            return
        named = [
            v
            for v in attached
            if re.search(rf"\b{v}\b(?!\s*\()", query, re.IGNORECASE)
            # a query over the whole history (no time in its WHERE) has nothing to gain from a range
            and re.search(rf"\bwhere\b[\s\S]*\b{_time_column(self.views[v])}\b", query, re.IGNORECASE)
        ]
        if not named:
            return
        self.tipped = True
        console.print(
            f"[dim]tip: named as a table, {named[0]} computes every window of the products asked for, over "
            f"their whole history, before a WHERE on the time drops rows; {named[0]}(since[, until]) reads "
            "only the ticks that time range needs[/]",
            markup=True,
        )
