"""`tickstore`: the command line on top of the stages.

The root group and `tickstore sql` live here; each family of commands has its own module
(`feed`, `learn`, `serve`, `demo`), registered at the end.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import TextIO

import click
from pydantic import ValidationError
from rich.logging import RichHandler

from cli import demo, featurerepo, feed, learn, serve, status
from cli.context import console, settings_of
from cli.output import print_rows
from tickstore.errors import TickstoreError
from tickstore.settings import Settings


class _Group(click.Group):
    """The root group: a TickstoreError from any command is printed as its message, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except TickstoreError as exc:
            raise click.ClickException(str(exc)) from exc


def _hide_warning(*_args: object, **_kwargs: object) -> None:
    """Show no warning (the root command without --verbose)."""


def _version_line() -> str:
    """tickstore's version and the engines' it runs on: what a bug report needs."""
    import platform
    from importlib.metadata import version

    engines = ", ".join(
        f"{name} {version(package)}"
        for name, package in (("DuckDB", "duckdb"), ("Feast", "feast"), ("MLflow", "mlflow"))
    )
    return f"tickstore {version('tickstore')} ({engines}, Python {platform.python_version()})"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_version_line())
        ctx.exit()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version (and DuckDB's, Feast's, MLflow's) and exit.",
)
@click.option("--home", type=click.Path(path_type=Path), help="Data directory (TICKSTORE_HOME).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def main(ctx: click.Context, home: Path | None, verbose: bool) -> None:
    """tickstore: market-tick features defined once in SQL, for training and live scoring.

    \b
    Quick start:
      tickstore broker start                  # embedded Kafka-protocol broker on loopback
      tickstore ingest replay ../shared/data/coinbase
      tickstore sink --until-idle             # Kafka -> DuckLake `ticks`
      tickstore sql "SELECT product_id, count(*) FROM ticks GROUP BY ALL"
      tickstore train --start 2025-12-06T06:15 --end 2025-12-06T12:40
      tickstore stream & tickstore serve      # fresh online features, scoring API on :8000

    Every setting is also a TICKSTORE_* environment variable (see README).
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, markup=False)],
    )
    if not verbose:  # Feast logs every registry refresh at INFO; dependencies warn about their own APIs
        logging.getLogger("feast").setLevel(logging.WARNING)
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        # `import mlflow` sets its logger's level afresh, from this variable (it printed "Creating
        # initial MLflow database tables..." on a new home)
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        warnings.simplefilter("ignore")
        # and not shown even where a filter says otherwise: Feast's modules call
        # `simplefilter("once", ...)` when imported, in front of the line above, and numpy's
        # RuntimeWarnings then leaked into `monitor drift`'s output
        warnings.showwarning = _hide_warning
    try:
        settings = Settings(home=home) if home else Settings()
    except ValidationError as exc:  # a mistyped TICKSTORE_* variable: name it, not a traceback
        raise click.ClickException(
            "; ".join(
                f"TICKSTORE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            )
        ) from None
    ctx.obj = {"settings": settings}


# -- sql ----------------------------------------------------------------------------------------
@main.command()
@click.argument("query", required=False)
@click.option(
    "-f",
    "--file",
    "sql_file",
    type=click.File("r"),
    help="Read the SQL from this file ('-': standard input) instead of QUERY.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
@click.option("--as-of", help="A DuckLake snapshot id, or a timestamp: query the lake as it was then.")
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
@click.pass_context
def sql(
    ctx: click.Context,
    query: str | None,
    sql_file: TextIO | None,
    fmt: str,
    as_of: str | None,
    limit: int,
    write: bool,
) -> None:
    """Run ad-hoc SQL over the lake (safe while the sink writes). Tables: ticks, ticks_rejected.

    The feature views of sql/ (ticks_10s, ticks_60s, ticks_300s, tick_clock) can be named as tables:
    each is its file as it is now, so an edit can be tried before `feast apply`.

    \b
      tickstore sql "SELECT * FROM ticks_60s WHERE product_id = 'BTC-USD' ORDER BY event_time DESC LIMIT 5"

    \b
      tickstore sql -f my_query.sql       # or: tickstore sql < my_query.sql

    The lake is attached read-only unless --write is given: a mistyped DELETE can't empty it.
    """
    from datetime import datetime

    import duckdb

    from tickstore import feature_sql, lake

    if query is not None and sql_file is not None:
        raise click.UsageError("give the SQL as QUERY or with --file, not both")
    if sql_file is not None:
        query = sql_file.read()
    elif query is None:
        if sys.stdin.isatty():
            raise click.UsageError('give a QUERY ("SELECT ..."), --file FILE, or pipe SQL in')
        query = sys.stdin.read()
    if not query.strip():
        raise click.UsageError("the SQL is empty")
    s = settings_of(ctx)
    views = feature_sql.views()
    snapshot: int | None = None
    when: datetime | None = None
    if as_of is not None:
        if as_of.isdigit():
            snapshot = int(as_of)
        else:
            try:
                when = datetime.fromisoformat(as_of)
            except ValueError as exc:
                raise click.BadParameter("a snapshot id or an ISO timestamp", param_hint="--as-of") from exc
    try:
        con = lake.connect(s, snapshot=snapshot, as_of=when, create=False, read_only=not write)
    except (lake.LakeError, duckdb.Error) as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        feature_sql.attach_views(con, query)
        rel = con.sql(query)
    except duckdb.CatalogException as exc:
        # DuckDB suggests the nearest name from every catalog (pg_enum, ...): name the lake's own
        tables = ", ".join(r[0] for r in con.execute("SHOW TABLES").fetchall() if r[0] not in views)
        raise click.ClickException(
            f"{exc}\nThe lake's tables: {tables}; feature views: {', '.join(views)}"
        ) from exc
    except duckdb.Error as exc:
        if "read-only mode" in str(exc) and snapshot is None and when is None:
            raise click.ClickException(
                f"{exc}\nAd-hoc SQL reads the lake only: add --write to change it (DuckLake keeps the "
                "earlier snapshots, which --as-of reads)."
            ) from exc
        raise click.ClickException(str(exc)) from exc
    if rel is None:
        console.print("ok")
        return
    print_rows(rel.columns, rel.fetchall(), fmt, limit)


for command in (
    feed.broker,
    feed.ingest,
    feed.sink,
    learn.dataset,
    learn.train,
    learn.monitor,
    serve.stream,
    serve.serve,
    demo.demo,
    featurerepo.feast,
    status.status,
):
    main.add_command(command)
