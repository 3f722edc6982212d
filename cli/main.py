"""`tickstore`: the command line on top of the stages.

The root group lives here; each family of commands has its own module (`broker`, `feed`, `learn`,
`serve`, `adhoc`, `demo`, ...), registered at the end.
"""

from __future__ import annotations

import atexit
import codecs
import gc
import io
import logging
import os
import re
import signal
import sqlite3
import sys
import warnings
from pathlib import Path
from typing import NoReturn

import click
import duckdb
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.logging import RichHandler
from rich.text import Text

from cli import (
    adhoc,
    bash_complete,
    broker,
    configured,
    dataset,
    demo,
    featurerepo,
    feed,
    learn,
    rejected,
    root_options,
    serve,
    status,
)
from cli.context import Context, OutPath, console
from cli.interrupt import interrupted
from tickstore import catalog, lake, metrics_dir, stopping
from tickstore.errors import TickstoreError, storage_trouble
from tickstore.settings import Settings, unknown_variables
from tickstore.text import visible
from tickstore_feast.quick_import import skip_feast_type_checks

# Python's exit runs the cycle collector over every object still alive: ~1.3 s once a command has
# imported Feast and MLflow (`tickstore status` spent a quarter of its time there). Frozen, they are
# skipped; destructors by reference count, exit handlers and thread joins still run as before.
# Registered at import, so the handlers libraries register later (Feast's, MLflow's) run before it.
atexit.register(gc.freeze)
# before Feast's import makes /tmp/feast_metrics_<random>, which a killed command left behind
metrics_dir.claim()
bash_complete.install()  # before click reads _TICKSTORE_COMPLETE

# Output in an encoding other than UTF-8 (PYTHONIOENCODING=latin-1, a terminal set so) can't hold
# every character a value may have (a product id, a SQL string, an error's text): `tickstore sql`
# died of a UnicodeEncodeError for one. Such characters are written as \xNN / \uNNNN escapes instead.
for _stream in (sys.stdout, sys.stderr):
    if isinstance(_stream, io.TextIOWrapper) and codecs.lookup(_stream.encoding).name != "utf-8":
        _stream.reconfigure(errors="backslashreplace")


_CHECK_HOME = "tickstore.check_home"  # ctx.meta: the command may make a data directory
# the commands that make the data directory's folders (a lake, MLflow's store, the broker's pid file,
# the feature registry, the live feed's archive) where it is missing: refused in a stray folder
# (lake.refuse_stray_home)
_MAKE_A_HOME = {"broker", "demo", "feast", "ingest coinbase", "monitor", "serve", "sink", "stream", "train"}


class _Group(click.Group):
    """The root group: a TickstoreError from any command is printed as its message, not a traceback,
    and Ctrl-C as click's "Aborted!"."""

    context_class = Context

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = root_options.hoisted(args)
        at = root_options.command_at(args)
        named = {" ".join(args[at : at + 1]), " ".join(args[at : at + 2])}  # `sink`, `ingest coinbase`
        ctx.meta[_CHECK_HOME] = bool(named & _MAKE_A_HOME) and not root_options.asks_help(args, self.commands)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except stopping.Terminated:
            self._terminated(ctx)
        except TickstoreError as exc:
            raise click.ClickException(str(exc)) from exc
        except (OSError, duckdb.IOException) as exc:
            settings = (ctx.obj or {}).get("settings")
            if settings is not None and (gone := catalog.missing_data_file(settings, str(exc))):
                raise click.ClickException(gone) from exc  # not the machine's: a file removed by hand
            # a full disk or a home that can't be written is the machine's to fix: say what and where
            if (trouble := storage_trouble(exc)) is None:
                raise
            raise click.ClickException(_storage_message(ctx, exc, trouble)) from exc
        except RuntimeError as exc:
            # Ctrl-C during a DuckDB query arrives as RuntimeError("Query interrupted"), which click
            # would print as a traceback (it aborts quietly on a KeyboardInterrupt only)
            if isinstance(exc.__cause__, stopping.Terminated):
                self._terminated(ctx)
            if interrupted(exc):
                raise click.Abort from None
            raise
        except Exception as exc:
            # SQLite's refusals (MLflow's store through SQLAlchemy, the online store): "database or
            # disk is full" came as a page of SQLAlchemy traceback from `train` on a full disk
            db = _sqlite_error(exc)
            if db is None or (trouble := storage_trouble(db)) is None:
                raise
            raise click.ClickException(_storage_message(ctx, db, trouble)) from exc

    @staticmethod
    def _terminated(ctx: click.Context) -> NoReturn:
        """SIGTERM (`tickstore.stopping`) ended the command once it had cleaned up: said, and the exit
        code a shell gives a process SIGTERM ended."""
        click.echo("terminated (SIGTERM)", err=True)
        ctx.exit(128 + signal.SIGTERM)


def _sqlite_error(exc: BaseException) -> sqlite3.OperationalError | None:
    """The SQLite error ``exc`` is, or the one a SQLAlchemy error wraps (its ``orig``), else None."""
    for candidate in (exc, getattr(exc, "orig", None)):
        if isinstance(candidate, sqlite3.OperationalError):
            return candidate
    return None


def _storage_message(
    ctx: click.Context, exc: OSError | duckdb.IOException | sqlite3.OperationalError, trouble: str
) -> str:
    """The message for a write the machine refused, naming TICKSTORE_HOME when the path is in it (or,
    for SQLite, which names no file, whenever it is set: its databases are there by default)."""
    settings: Settings | None = (ctx.obj or {}).get("settings")
    if isinstance(exc, OSError) and exc.filename is not None:
        where = str(exc.filename)
        said = f"{exc.strerror}: {where} ({trouble})"
        if settings is None or not Path(where).resolve().is_relative_to(settings.home.resolve()):
            return said
    elif isinstance(exc, sqlite3.OperationalError) and settings is not None:
        said = f"a SQLite database refused a write: {exc} ({trouble})"
    else:
        return f"{exc} ({trouble})"
    return (
        f"{said}. tickstore keeps its data in TICKSTORE_HOME ({settings.home}): it must be a directory "
        "this user can write, on a disk with room (--home or TICKSTORE_HOME chooses another)"
    )


class _Visible(logging.Filter):
    """Log lines with their control characters written out (``tickstore.text.visible``): an error
    text can quote a message from the broker, whose ESC sequences would act on the terminal."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = visible(record.getMessage()), None
        return True


def _log_handler() -> logging.Handler:
    """Where log lines go: the console (stderr), as rich lays them out, read as plain text."""
    handler = RichHandler(console=console, show_path=False, markup=False)
    handler.addFilter(_Visible())
    return handler


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
@click.option(
    "--home",
    type=OutPath(path_type=Path),
    help="Data directory (TICKSTORE_HOME); here or after the command.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging; here or after the command.")
@click.pass_context
def main(ctx: click.Context, home: Path | None, verbose: bool) -> None:
    """tickstore: market-tick features defined once in SQL, for training and live scoring.

    \b
    Quick start:
      tickstore broker start              # a Kafka-protocol broker on loopback
      tickstore ingest replay ../shared/data/coinbase
      tickstore sink --until-idle         # Kafka -> DuckLake `ticks`
      tickstore sql "SELECT product_id, count(*) FROM ticks GROUP BY ALL"
      tickstore train --start 2025-12-06T06:15 --end 2025-12-06T08:30
                                          # 3 models; says what to serve
      tickstore stream & tickstore serve  # online features; scoring API on
                                          # :8000 (the champion, else
                                          # --model runs:/... as train said)
      tickstore ingest replay ../shared/data/coinbase/advanced_trade \\
          --retime --speed 1              # as if live
      tickstore status                    # every part at a glance

    Every setting is also a TICKSTORE_* environment variable (see README).
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[_log_handler()],
    )
    if not verbose:  # Feast logs every registry refresh at INFO; dependencies warn about their own APIs
        logging.getLogger("feast").setLevel(logging.WARNING)
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        # a new machine's first command printed matplotlib's "generated new fontManager" (Feast imports it)
        logging.getLogger("matplotlib").setLevel(logging.WARNING)
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
    except SettingsError as exc:  # a value for a JSON setting that is no JSON
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"TICKSTORE_{field.group(1).upper()}" if field else "a TICKSTORE_* variable"
        raise click.ClickException(f"{name}: not JSON ({exc.__cause__ or exc})") from None
    except ValidationError as exc:  # a mistyped TICKSTORE_* variable: name it, not a traceback
        raise click.ClickException(
            "; ".join(
                f"TICKSTORE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            )
        ) from None
    for line in unknown_variables():  # a misspelt setting is otherwise silently not set
        console.print(Text.assemble(("warning:", "yellow"), " ", line))
    ctx.obj = {"settings": settings}
    if ctx.meta.get(_CHECK_HOME):
        # `tickstore sink` run from sql/ started a second, partial lake there
        lake.refuse_stray_home(settings)
    if ctx.invoked_subcommand != "feast":  # where users apply their own definitions, Feast checks them
        skip_feast_type_checks()


for command in (
    adhoc.sql,
    broker.broker,
    feed.ingest,
    feed.sink,
    dataset.dataset,
    learn.train,
    learn.models,
    learn.monitor,
    serve.stream,
    serve.serve,
    demo.demo,
    featurerepo.feast,
    status.status,
    configured.settings_command,
):
    main.add_command(command)
feed.ingest.add_command(rejected.ingest_rejected)


def _every_command(command: click.Command) -> list[click.Command]:
    """``command`` and every command below it."""
    subs = command.commands.values() if isinstance(command, click.Group) else []
    return [command, *(c for sub in subs for c in _every_command(sub))]


for command in _every_command(main):  # a subcommand's context is made by its own class
    command.context_class = Context
