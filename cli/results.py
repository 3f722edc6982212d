"""Print query results as a table (one a terminal can read), CSV or JSON."""

from __future__ import annotations

import csv
import itertools
import json
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tickstore.text import visible


def _plain(value: Any, json_safe: bool = False) -> Any:
    """A value as text-friendly Python: exact decimals and ISO times as strings, bytes as UTF-8 text
    (any other byte as \\xNN), containers recursed;
    with ``json_safe`` NaN and infinities become None (JSON has no such numbers: `NaN` was written)."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta | UUID):
        return str(value)
    if isinstance(value, bytes):
        # a rejected message is text as often as not; its bytes that are not UTF-8 are shown as \xff
        # (DuckDB's own way), where U+FFFD said nothing of which byte was there
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, list | tuple):
        return [_plain(v, json_safe) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, json_safe) for k, v in value.items()}
    if json_safe and isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _cell(value: Any) -> str:
    """A value as a table shows it: a double to 10 significant digits (its exponent kept in view;
    CSV and JSON give every digit), NULL by name, control characters as \\xNN, the rest as
    `_plain` gives it."""
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return format(value, ".10g")
    return visible(str(_plain(value)))


def _batches(cursor: Any, size: int = 10_000) -> Iterator[list[tuple[Any, ...]]]:
    """A DuckDB result's rows, ``size`` at a time."""
    while chunk := cursor.fetchmany(size):
        yield chunk


PIPE_WIDTH = 1000  # the widest a table goes into a pipe or a file, in characters


def print_rows(
    columns: Sequence[str],
    rows: Any,
    fmt: str = "table",
    limit: int = 1000,
    title: str | None = None,
    running: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> None:
    """Write ``rows`` to stdout in ``fmt`` (table | csv | json); tables stop after ``limit`` rows.

    ``rows`` is a sequence of rows or a DuckDB result to fetch from: CSV and JSON stream it in
    chunks, and a table fetches only the rows it shows (every row of `SELECT * FROM ticks` was
    fetched into Python to print a thousand). The first fetch, which runs the query, is made inside
    ``running()`` (a progress bar).
    """
    batches: Iterator[list[tuple[Any, ...]]] = (
        iter([list(rows)]) if isinstance(rows, list | tuple) else _batches(rows)
    )
    # the first rows before the header: a query failing on them (a bad cast) prints nothing
    with running():
        first = next(batches, [])
    batches = itertools.chain([first], batches)
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")  # csv's own "\r\n" stays in `$(... | tail -1)`
        writer.writerow(columns)
        for batch in batches:
            writer.writerows([[_plain(v) for v in row] for row in batch])
    elif fmt == "json":
        keys = distinct_keys(columns)
        for batch in batches:
            for row in batch:
                record = {c: _plain(v, json_safe=True) for c, v in zip(keys, row, strict=True)}
                sys.stdout.write(json.dumps(record, default=str) + "\n")
    else:
        shown: list[tuple[Any, ...]] = []
        more = False
        for batch in batches:
            room = limit - len(shown)
            shown += batch[:room]
            if len(batch) > room:
                more = True
                break
        console = show_table(
            columns, shown, title, Console(markup=False) if sys.stdout.isatty() else None, _numbers(rows)
        )
        if more:
            console.print(f"(more rows than --limit {limit:,}: raise it, or use --format csv for all)")
        elif not shown:  # a bare header box reads as a display fault as often as an empty answer
            console.print("(no rows)")


def distinct_keys(columns: Sequence[str]) -> list[str]:
    """``columns`` as JSON keys: a repeated name gets DuckDB's suffix (`a`, `a_1`), said on stderr.

    A join's `SELECT *` repeats names (`product_id` of each side), and one object can hold a key
    once: the first side's values were dropped without a word."""
    keys: list[str] = []
    for name in columns:
        key, n = name, 0
        while key in keys or (key != name and key in columns):
            n += 1
            key = f"{name}_{n}"
        if key != name:
            print(
                f"json: column {name!r} again, written as {key!r} (an object holds a key once)",
                file=sys.stderr,
            )
        keys.append(key)
    return keys


def _numbers(result: Any) -> list[bool] | None:
    """Which columns of a DuckDB result hold numbers, by their types (None for plain rows)."""
    description = getattr(result, "description", None)
    if not description:
        return None
    return [str(column[1]).split("(")[0] in NUMBER_TYPES for column in description]


NUMBER_TYPES = {
    *(f"{u}{t}" for u in ("", "U") for t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT")),
    *("FLOAT", "DOUBLE", "DECIMAL"),
}


def show_table(
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
    title: str | None,
    console: Console | None,
    numbers: Sequence[bool] | None = None,
) -> Console:
    """Print ``rows`` as a table on ``console`` (a terminal), or a block each where their values
    don't fit its width; with no console (a pipe, a log), the table at its natural width up to
    PIPE_WIDTH characters. Returns the console used. Columns of ``numbers`` (by the result's types;
    else those whose first value is one) are right-aligned.

    Left to rich, a table was folded to the terminal's width column by column: 29 feature columns
    a letter wide each, and a number split within its cell read as two ("0.066666444" over "45")."""
    names = [visible(name) for name in columns]
    cells = [[_cell(v) for v in row] for row in rows]
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(names):
        first = next((row[i] for row in rows if row[i] is not None), None)
        # by the type where known: a column NULL in every row shown was left-aligned
        number = (
            numbers[i]
            if numbers
            else isinstance(first, int | float | Decimal) and not isinstance(first, bool)
        )
        # folded, not cut: a cell cut to fit was "1.3058772852629…" for 1.3e-07
        table.add_column(Text(name), justify="right" if number else "left", overflow="fold")
    for row in cells:
        # as Text, never read as markup: a value "[/x]" stopped the command (rich's MarkupError),
        # and "[red]hello" lost its brackets
        table.add_row(*map(Text, row))
    if console is None:
        # a pipe or CI log: unfolded up to PIPE_WIDTH (`less -S` or an editor scrolls sideways); not
        # without bound, as every cell of a column is padded to its widest: a rejected message of
        # 1 MB made each row of `SELECT * FROM ticks_rejected` a megabyte
        console = Console(width=max(80, min(_natural(names, cells), PIPE_WIDTH)), markup=False)
    widths = _fit(names, cells, console.width)
    if widths is None:
        _print_records(console, names, cells, title)
        return console
    for column, width in zip(table.columns, widths, strict=False):
        column.width = width
    console.print(table)
    return console


def _wants(names: Sequence[str], cells: list[list[str]]) -> list[int]:
    """Each column's width with nothing folded: its header's, or its longest line's."""
    return [
        max([cell_len(name), *(cell_len(line) for row in cells for line in row[i].splitlines())])
        for i, name in enumerate(names)
    ]


def _frame(names: Sequence[str]) -> int:
    """The characters a table's borders take: a border and a space each side of each column."""
    return 3 * len(names) + 1


def _natural(names: Sequence[str], cells: list[list[str]]) -> int:
    """The width a table takes with nothing folded."""
    return sum(_wants(names, cells)) + _frame(names)


def _fit(columns: Sequence[str], cells: list[list[str]], room: int) -> list[int] | None:
    """Widths for each column's text in ``room`` characters: none fixed ([]) where the table fits as
    it is, None where its values can't all stand unbroken, else each value's widest word, the headers
    folded onto as few lines as the rest allows, and what is left to the columns that want more."""
    frame, want = _frame(columns), _wants(columns, cells)
    if not cells or sum(want) + frame <= room or len(columns) == 1:
        return []
    words = [
        max([1, *(cell_len(word) for row in cells for word in row[i].split())]) for i in range(len(columns))
    ]
    if sum(words) + frame > room:
        return None
    # headers on 1 line each if there is room, else 2, ...: the fewest lines that fit
    for lines in range(1, max(cell_len(name) for name in columns) + 1):
        widths = [max(w, -(-cell_len(name) // lines)) for w, name in zip(words, columns, strict=True)]
        if sum(widths) + frame <= room:
            break
    else:
        widths = words
    spare = room - frame - sum(widths)
    while spare > 0 and any(w < x for w, x in zip(widths, want, strict=True)):
        for i in range(len(columns)):
            if spare and widths[i] < want[i]:
                widths[i] += 1
                spare -= 1
    return widths


def _print_records(
    console: Console, columns: Sequence[str], cells: list[list[str]], title: str | None
) -> None:
    """Rows too wide for the terminal, a block each: a column's name, then its value (psql's \\x)."""
    if title:
        console.print(title)
    for k, row in enumerate(cells, 1):
        head = f"── row {k:,} "
        console.print(head + "─" * max(0, min(20, console.width - len(head))))
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        for name, value in zip(columns, row, strict=True):
            grid.add_row(Text(name), Text(value))
        console.print(grid)
    console.print(
        f"({len(columns)} columns don't fit in {console.width} characters: a block per row; "
        "--format csv gives a line per row)"
    )
