"""`tickstore sql` without a query, in a terminal: a SQL shell over the lake, one connection throughout."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import TextIO

import click
from rich.markup import escape

from cli.context import console, report
from cli.interrupt import interrupted, settle
from cli.session import Session
from cli.statements import blank, complete
from tickstore.settings import Settings

PROMPT, MORE = "tickstore> ", "      ...> "
FORMATS = ("table", "csv", "json")
HELP = """statements end with ';' and may span lines (Ctrl-C drops one, or cancels it running; Ctrl-D leaves);
Tab completes table, view and column names, keywords and dot commands
  .tables              the lake's tables and the feature views of sql/ (called with a time range,
                       ticks_60s(since[, until]), a view reads only the ticks that range needs)
  .schema NAME         a table's or feature view's columns: type, and what each holds
  .format table|csv|json
  .limit N             most rows shown as a table
  .param NAME VALUE    bind $NAME to VALUE in later statements (as -p NAME=VALUE); .param lists them
  .plot FILE           draw the next statement's rows to FILE (.png, .svg, .pdf), as --plot does
  .read FILE           run FILE's statements and dot commands
  .help, .quit"""


def _history(settings: Settings) -> None:
    """Arrow-key editing, and the statements of earlier sessions (in TICKSTORE_HOME/sql_history)."""
    try:
        import atexit
        import readline
    except ImportError:  # no readline (Windows): plain input() still works
        return
    path = settings.home / "sql_history"
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(1000)

    def save() -> None:
        try:
            readline.write_history_file(path)
        except OSError:  # a read-only home: the session worked, only its history is lost
            pass

    atexit.register(save)


def _read(prompt: str, tty: bool, source: TextIO) -> str:
    """One line: input() in a terminal (prompt, editing), the source's next line otherwise (EOFError
    at end)."""
    if tty:
        return input(prompt)
    line = source.readline()
    if not line:
        raise EOFError
    return line.rstrip("\n")


def shell(
    session: Session, settings: Settings, script: TextIO | None = None, script_path: Path | None = None
) -> None:
    """Read statements (typed, piped in, or the lines of ``script``, read from ``script_path`` if it is a
    file's) until .quit or the end; an error is printed and the shell goes on.

    Each statement is its own transaction, so every query sees what the sink has committed by then
    (unless --as-of pinned a snapshot). Fed from a pipe or a script, it exits 1 when a statement failed.
    """
    tty = script is None and sys.stdin.isatty()
    if tty:
        _history(settings)
        from cli.completion import install

        install(session)
        mode = "as of a past snapshot" if session.past else ("read-write" if session.write else "read-only")
        console.print(f"tickstore sql: the lake at {settings.lake_catalog.parent}, {mode}. .help for help.")
    if script_path is not None:
        _READING.append(script_path.resolve())
    try:
        failed = read_statements(session, script or sys.stdin, tty)
    finally:
        if script_path is not None:
            _READING.pop()
    if failed and not tty:
        sys.exit(1)


def read_statements(session: Session, source: TextIO, tty: bool) -> bool:
    """Run the statements and dot commands read from ``source`` (a terminal's lines when ``tty``) until
    .quit or its end, printing each error and going on; True when one failed or was left open."""
    buffer: list[str] = []
    failed = False
    read = 0  # lines read: where a script's failing statement starts, said with its error
    starts = 0
    while True:
        try:
            line = _read(MORE if buffer else PROMPT, tty, source)
            read += 1
        except EOFError:
            if tty:
                console.print()
            break
        except KeyboardInterrupt:
            console.print("^C")
            buffer = []
            continue
        stripped = line.strip()
        # a dot command at a statement's start: after nothing, or after comments only
        if stripped.startswith(".") and (not buffer or blank("\n".join(buffer))):
            if dot_line(stripped).partition(" ")[0] in (".quit", ".exit", ".q"):
                break
            failed = not dot(session, stripped) or failed
            buffer = []  # comments only, before the command: the next statement's lines start after it
            continue
        if stripped:
            if not buffer:  # the line the query's text starts on: `where` skips its comments
                starts = read
            buffer.append(line)
        # a line without a ';' ends no statement (the buffer is read again only on one that may: a long
        # statement pasted line by line was read over and over), and a ';' in a string or comment ends nothing
        if ";" not in line or not complete("\n".join(buffer)):
            continue
        query, buffer = "\n".join(buffer), []
        started = time.perf_counter()
        try:
            # each statement's rows, as every SQL shell shows them; a script's line said with its error
            # (typed, it is the statement just entered)
            session.run(query, None if tty else starts)
        except click.ClickException as exc:
            console.print(f"[red]Error:[/] {escape(exc.format_message())}", markup=True, highlight=False)
            failed = True
            continue
        except (KeyboardInterrupt, RuntimeError) as exc:
            # DuckDB raises Ctrl-C mid-query as RuntimeError("Query interrupted") as often as not
            if not interrupted(exc):
                raise
            settle()
            console.print("^C: the statement was cancelled")
            failed = True  # from a pipe, a script cut short did not do what it says
            continue
        sys.stdout.flush()  # a program reading the shell's answers through a pipe gets each at once
        if tty:
            console.print(f"[dim]({time.perf_counter() - started:.3f} s)[/]", markup=True, highlight=False)
    if buffer and not blank("\n".join(buffer)):  # a script's closing comment is no statement cut short
        console.print("[yellow]not run[/] (no closing ';'): " + escape(" ".join(buffer)), markup=True)
        failed = True
    return failed


def dot_commands_in(script: str) -> bool:
    """Whether a line of ``script`` is a dot command (`.format csv`), one at a statement's start: such a
    script runs as the shell runs one piped in (DuckDB would take the `.` for SQL)."""
    lines = script.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("."):
            before = "\n".join(lines[:i])  # read only at a line that may be one: most scripts have none
            if blank(before) or complete(before):
                return True
    return False


# what each dot command takes, said when it is given something else
USAGE = {
    ".schema": ".schema NAME: a table or feature view (.tables lists them)",
    ".format": ".format table, csv or json",
    ".limit": ".limit N: the most rows a table shows, a whole number",
    ".param": ".param NAME VALUE (NAME: a letter or _, then letters, digits or _), or .param alone to list them",
    ".plot": ".plot FILE: a .png, .svg or .pdf for the next statement's rows",
    ".read": ".read FILE: a file of statements and dot commands",
}


# the files being read, innermost last: one reading itself would never end, and a relative `.read` in
# a file is looked for beside it too
_READING: list[Path] = []


def _read_file(session: Session, path: Path) -> bool:
    """`.read FILE`: its statements and dot commands, as a script piped in; False when one failed.

    A relative FILE is found from the current folder, as sqlite3's `.read` does, or else, in a file
    being read, beside that file: a script reading its neighbours runs from any folder.
    """
    beside = _READING[-1].parent / path if _READING and not path.is_absolute() else None
    if beside is not None and not path.exists() and beside.exists():
        path = beside
    if path.resolve() in _READING:
        console.print(f".read {path}: that file is being read already (it reads itself)", markup=False)
        return False
    try:
        source = path.open(encoding="utf-8")
    except OSError as exc:
        where = (
            f" (looked for from {Path.cwd()} and from {_READING[-1].parent})" if beside is not None else ""
        )
        console.print(f".read {path}: {exc.strerror or exc}{where}", markup=False, highlight=False)
        return False
    _READING.append(path.resolve())
    try:
        with source:
            return not read_statements(session, source, tty=False)
    except UnicodeDecodeError as exc:
        console.print(f".read {path}: not UTF-8 text ({exc.reason} at byte {exc.start})", markup=False)
        return False
    finally:
        _READING.pop()


def dot_line(line: str) -> str:
    """A dot command as typed, without the ';' a statement would end with (`.tables;` was unknown)."""
    return line.strip().removesuffix(";").rstrip()


def dot(session: Session, line: str) -> bool:
    """Run the dot command ``line`` (.format and .limit change ``session``); False when unknown."""
    command, _, arg = dot_line(line).partition(" ")
    arg = arg.strip()
    if command == ".tables":  # the answer, as a query's rows are: on stdout
        report.print(
            f"tables: {', '.join(session.tables())}\nfeature views (sql/): {', '.join(session.views)}",
            highlight=False,
        )
    elif command == ".schema" and arg:  # the answer, as a query's rows are: on stdout
        from cli.results import print_rows

        try:
            print_rows(("column", "type", "what it is"), session.schema(arg), session.fmt, session.limit)
        except ValueError as exc:
            console.print(str(exc), markup=False, highlight=False)
            return False
    elif command == ".format" and arg in FORMATS:
        session.fmt = arg
    elif command == ".limit" and arg.isdigit():
        session.limit = int(arg)
    elif command == ".param" and not arg:  # the answer, as a query's rows are: on stdout
        report.print(
            "\n".join(f"${k} = {v}" for k, v in session.params.items()) or "no parameters", highlight=False
        )
    elif command == ".param" and re.fullmatch(r"\$?[A-Za-z_]\w*\s+\S.*", arg):
        name, value = arg.split(None, 1)
        session.params[name.lstrip("$")] = value
    elif command == ".plot" and arg:
        from cli.plot import check_path

        try:
            session.plot = check_path(Path(arg).expanduser())
        except ValueError as exc:
            console.print(str(exc), markup=False, highlight=False)
            return False
    elif command == ".read" and arg:
        return _read_file(session, Path(arg).expanduser())
    elif command == ".help":
        console.print(HELP, markup=False, highlight=False)
    elif command in USAGE:
        console.print(f"{command} {arg}".rstrip() + f": use {USAGE[command]}", markup=False, highlight=False)
        return False
    else:
        console.print(f"unknown command {command}; .help lists them", markup=False, highlight=False)
        return False
    return True
