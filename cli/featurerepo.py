"""`tickstore feast ...`: Feast's own CLI on feature_repo/, with the data under TICKSTORE_HOME."""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from pathlib import Path
from typing import TextIO

import click

from cli.context import settings_of
from tickstore.settings import Settings


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    add_help_option=False,  # `tickstore feast --help` is Feast's help
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def feast(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Run Feast's CLI on feature_repo/ with the data paths under TICKSTORE_HOME.

    \b
      tickstore feast apply
      tickstore feast materialize-incremental 2025-12-06T12:00:00

    The plain `feast` CLI in feature_repo/ reads feature_store.yaml's paths (../.tickstore) and
    never TICKSTORE_HOME or TICKSTORE_ONLINE_STORE; this runs it on a copy of the yaml re-rooted the
    way every tickstore command reads it. Additions to Feast's output: `plan` ends with a diff of
    each changed view's SQL (and says that a plan, which Feast words as done, did nothing), and
    `describe` shows a DuckDBSource's options decoded.
    """
    from feast.cli.cli import cli

    from tickstore.errors import TickstoreError
    from tickstore_feast.config import write_cli_config
    from tickstore_feast.repo import FEATURE_REPO, repo_error

    if "--help" not in args and _subcommand(args) == "init":
        # Feast's init made a new, unrelated Feast project (its driver-stats example) in the current folder
        raise click.UsageError(
            f"tickstore's feature repo is {FEATURE_REPO} and needs no init: `tickstore feast apply` "
            'registers it (the README\'s "Adding a feature" adds a view); for a new Feast project of '
            "your own, run Feast's CLI: feast init"
        )
    settings = settings_of(ctx)
    # help reads no data: no data directory is made for it (in a stray folder, say)
    config = FEATURE_REPO / "feature_store.yaml" if "--help" in args else write_cli_config(settings)
    command = _subcommand(args) if "--help" not in args else None
    planning = command == "plan"
    # Feast prints a DuckDBSource's options (the view's SQL) base64-encoded: decoded on the way out
    describing = "describe" in args and "--help" not in args
    if command in _READ_OR_WRITE_ONLINE:
        from tickstore_feast.repo import feature_store

        store = feature_store(settings, apply=False)  # SQLite: its tables made again where removed
        if settings.online_store == "redis":
            # a Redis that is down was a traceback, after redis-py's ~10 s of retries
            from tickstore_feast.online import check_online_store

            check_online_store(store)
    # Feast's CLI exits with its own status (SystemExit), which becomes ours
    printed = io.StringIO()
    plain = not sys.stdout.isatty() or "NO_COLOR" in os.environ
    out: io.TextIOBase | TextIO = printed if describing else _Uncoloured(sys.stdout) if plain else sys.stdout
    if planning:
        out = seen = _Seen(out)
    try:
        with contextlib.redirect_stdout(out):
            cli.main(
                ["--chdir", str(FEATURE_REPO), "--feature-store-yaml", str(config), *args],
                prog_name="tickstore feast",
            )
    except SystemExit as done:
        if planning and not done.code:  # a plan changes nothing: the registry read now is the one planned on
            reviewed = _echo_plan_review(settings)
            # Feast words its plan as done ("Created sqlite table ..."), as its apply does
            if re.search(r"^(Created|Deleted|Updated) ", _ANSI.sub("", seen.text), re.MULTILINE):
                click.echo(
                    ("\n" if reviewed else "")  # Feast's own lines end with a blank one
                    + "A plan: nothing above is registered, created or deleted yet; "
                    "`tickstore feast apply` does it."
                )
        raise
    except Exception as exc:  # a mistake in feature_repo/'s own files: say where, not Feast's frames
        # Feast's own checks of what it was asked (a start after the end) raise ValueError from its
        # FeatureStore: the message is the answer, the traceback through click noise
        if isinstance(exc, ValueError) and _raised_in_feature_store(exc):
            raise click.UsageError(str(exc)) from exc
        if isinstance(exc, ValueError) and (typed := _time_not_read(exc)) is not None:
            raise click.UsageError(
                f"{typed!r} is not a time ({exc}): give times in ISO 8601, e.g. 2025-12-06T12:00:00 "
                "(UTC unless an offset is given)"
            ) from exc
        from feast.errors import FeastObjectNotFoundException

        if isinstance(exc, FeastObjectNotFoundException):  # `materialize -v`, `get-online-features`
            raise click.ClickException(
                f"{exc}: `tickstore feast feature-views list` lists the views"
            ) from exc
        where = repo_error(exc)
        if where is None:
            raise
        raise TickstoreError(where) from exc
    finally:
        if describing:
            from tickstore_feast.describe import readable

            click.echo(readable(printed.getvalue()), nl=False)


def _raised_in_feature_store(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by Feast's FeatureStore itself (its checks of its arguments), not
    below it (a source, our offline store)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return Path(tb.tb_frame.f_code.co_filename).parts[-2:] == ("feast", "feature_store.py")


def _time_not_read(exc: BaseException) -> str | None:
    """The time argument Feast's CLI failed to read (`materialize garbage ...`), when ``exc`` was
    raised in its command function itself or in a parser it called (dateutil), not in Feast below it."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for i, frame in enumerate(frames):
        parts = Path(frame.f_code.co_filename).parts
        if parts[-3:] != ("feast", "cli", "cli.py") or not frame.f_code.co_name.startswith("materialize"):
            continue
        if any("feast" in Path(f.f_code.co_filename).parts for f in frames[i + 1 :]):
            return None  # raised by the store it called: not the reading of a time
        # START_TS is read first: it is the one unless it reads
        typed = [str(frame.f_locals[k]) for k in ("start_ts", "end_ts") if frame.f_locals.get(k)]
        return next((t for t in typed if not _reads(t)), typed[-1] if typed else "")
    return None


def _reads(text: str) -> bool:
    from dateutil import parser

    try:
        parser.parse(text)
    except (ValueError, OverflowError):
        return False
    return True


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _Uncoloured(io.TextIOBase):
    """``target`` without ANSI colour codes: Feast colours what it prints wherever it goes, and in a
    pipe or a log file they were noise (`\x1b[1m\x1b[32m4\x1b[0m feature views`)."""

    def __init__(self, target: TextIO) -> None:
        self.target = target

    def write(self, text: str) -> int:
        self.target.write(_ANSI.sub("", text))
        return len(text)

    def flush(self) -> None:
        self.target.flush()


class _Seen(io.TextIOBase):
    """``target``, keeping a copy of what was written to it."""

    def __init__(self, target: io.TextIOBase | TextIO) -> None:
        self.target = target
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        self.target.write(text)
        return len(text)

    def flush(self) -> None:
        self.target.flush()


# Feast's subcommands that read or write the online store (apply only drops the tables of removed views)
_READ_OR_WRITE_ONLINE = {"materialize", "materialize-incremental", "get-online-features"}
# Feast's own options that take a value (the word after them is not the subcommand)
_VALUED = {"-c", "--chdir", "--log-level", "-f", "--feature-store-yaml"}


def _subcommand(args: tuple[str, ...]) -> str | None:
    """The Feast subcommand ``args`` name (`plan` in `--log-level INFO plan`), if any."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _VALUED:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


_COLOURS = {"+": "green", "-": "red", "@": "cyan"}


def _echo_plan_review(settings: Settings) -> bool:
    """After Feast's plan: which views it listed only for its record of their materialization, and
    what changed in each registered view's SQL, line by line; whether there was any to print."""
    from tickstore_feast.plan import review

    untouched, diffs = review(settings)
    if untouched:
        click.echo(
            f"\n{', '.join(untouched)}: listed as updated for Feast's record of their materialized "
            "intervals only; their definitions are unchanged (and apply keeps the record)"
        )
    if diffs:
        click.echo("\nChanged feature SQL (registered -> feature_repo/):")
    for diff, same in diffs:
        click.echo(
            "(comments, layout or options only: models trained on the registered SQL still score)"
            if same
            else "(a new definition: the scorer refuses a model trained on the registered SQL until one "
            "trained on this is the champion)"
        )
        for line in diff.splitlines():
            header = line[:3] in ("+++", "---")
            click.echo(click.style(line, fg=None if header else _COLOURS.get(line[:1]), bold=header))
    return bool(untouched or diffs)
