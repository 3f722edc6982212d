"""A `tickstore sql` session: its connection, how its results print, and its errors explained."""

from __future__ import annotations

import itertools
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click
import duckdb

from cli.context import console
from cli.interrupt import settle
from cli.query_progress import shown
from cli.results import print_rows
from cli.statements import LOCK_WAIT_S, Changed, Transaction, statement_results
from cli.suggest import nearest_lake_name
from tickstore import catalog

if TYPE_CHECKING:
    from tickstore.settings import Settings

# a query naming a feature view as a table that takes longer gets a tip on the range call, once
SLOW_VIEW_S = 2.0


def where(query: str, statements: list[str], i: int, first_line: int = 1) -> str:
    """Where statement ``i`` of ``statements`` (as DuckDB cut ``query``, which starts on ``first_line``
    of its script) starts: its line and first words."""
    at = 0
    for text in statements[:i]:
        at = query.find(text, at) + len(text)
    start = query.find(statements[i], at)
    text = statements[i]
    # its first line that is neither blank nor a comment
    lead = re.match(r"(?:\s|--[^\n]*(?:\n|$))*", text)
    offset = lead.end() if lead else 0
    line = query.count("\n", 0, max(start, 0) + offset) + first_line
    first = text[offset:].split("\n", 1)[0].strip().rstrip(";").rstrip()
    return f"line {line} ({first[:60] + ('...' if len(first) > 60 else '')})"


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

    def run(self, query: str, line: int | None = None) -> None:
        """Run ``query``'s statements, printing each one's rows (or what it changed) before the next
        runs; a failure is a ClickException saying what to do (the lake's tables for a wrong name,
        --write for a change to a read-only lake), the statements before it having run and printed;
        Ctrl-C is a KeyboardInterrupt. The failing statement of several is named, with the script's
        line it starts on (``query`` starting on ``line`` of a script: then even a single one)."""
        try:
            self._run(query, line)
        except duckdb.InterruptException:  # Ctrl-C (cli/interrupt.py), as Python itself would say it
            settle()
            raise KeyboardInterrupt from None

    def _run(self, query: str, line: int | None) -> None:
        from tickstore import feature_sql

        started = time.perf_counter()
        statements: list[str] = []
        i = 0
        try:
            attached = feature_sql.attach_views(self.con, query, self.views)
            wait = LOCK_WAIT_S if self.write else 0.0
            statements = [s.query for s in self.con.extract_statements(query)]
            results = statement_results(self.con, query, wait, self.params, self.transaction)
            for i in itertools.count():
                before = self._snapshot()  # before the statement runs: next() runs it
                try:
                    with shown(self.con):  # a SELECT's rows are computed as fetched: a bar there too
                        result = next(results)
                except StopIteration:
                    break
                # a plot draws the last one's rows
                self._show(result, before, query, drawn=i == len(statements) - 1)
        except duckdb.InterruptException:
            raise
        except duckdb.Error as exc:
            # most rows are computed as they are fetched, so a bad cast of one value fails in _show
            failed = self._explain(exc)
            if len(statements) > 1 or (line is not None and statements):  # a script: which statement
                at = where(query, statements, i, line or 1)
                which = f"statement {i + 1} of {len(statements)}, " if len(statements) > 1 else ""
                failed = click.ClickException(f"{which}{at}: {failed.message}")
            raise failed from exc
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
            # fetched as printed
            print_rows(result.columns, result, self.fmt, self.limit, running=lambda: shown(self.con))
            # before the next statement's "ok" or count on stderr, where both go to one pipe
            sys.stdout.flush()
        else:
            from cli.plot import plot

            to, self.plot = self.plot, None  # .plot draws one input's rows
            try:
                with shown(self.con):
                    drawn_as = plot(result, to, query)
                console.print(drawn_as)
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
