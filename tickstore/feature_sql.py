"""The feature SQL in `sql/`: where it lives, its headers, the views ad-hoc SQL can name, fingerprints."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb

from tickstore.paths import SQL_DIR

_NAME = re.compile(r"[a-z_][a-z0-9_]*")
# header lines, e.g. "-- lookback: 60 s (...)" and "-- time column: event_time (...)"
_LOOKBACK = re.compile(r"--\s?lookback:\s*(\d+(?:\.\d+)?)\s*s\b")
_TIME_COLUMN = re.compile(r"--\s?time column:\s*([a-z_][a-z0-9_]*)")
# a line of the outer SELECT naming a column and commenting on it: "    expr AS name,  -- what it is"
_COMMENTED = re.compile(r"(?:\bAS\s+|^\s*)([a-z_][a-z0-9_]*)\s*,?\s*--\s*(\S.*?)\s*$", re.IGNORECASE)


def header(text: str) -> list[str]:
    """The comment lines a SQL text opens with (its header), up to the first line of SQL."""
    lines = []
    for line in text.splitlines():
        if not line.strip().startswith("--"):
            break
        lines.append(line.strip())
    return lines


def lookback(text: str) -> timedelta | None:
    """How far back one row of a feature SQL reads ticks (its window), from its header's
    ``-- lookback: 60 s`` line; None without one, ValueError for one written otherwise."""
    for line in header(text):
        found = _LOOKBACK.match(line)
        if found:
            return timedelta(seconds=float(found.group(1)))
        if re.match(r"--\s?lookback:", line):  # "1 min", "60": read as none, the view would lose its reach
            raise ValueError(f"the header line {line!r} gives no seconds: write it as '-- lookback: 60 s'")
    return None


def time_column(text: str) -> str:
    """The column a feature SQL's rows are timed by, from its header's ``-- time column:`` line."""
    for line in header(text):
        found = _TIME_COLUMN.match(line)
        if found:
            return found.group(1)
    return "event_time"


def column_comments(text: str) -> dict[str, str]:
    """Each column of a feature SQL's outer SELECT with the comment on its line, by name: what the
    column is, written once beside its expression (Feast's field descriptions are these).

    The outer SELECT is the last line starting ``SELECT`` at the left margin, up to the ``FROM``
    there; a CTE's SELECTs are indented, so their columns are not the view's.
    """
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"SELECT\b", line, re.IGNORECASE)]
    if not starts:
        return {}
    comments = {}
    for line in lines[starts[-1] + 1 :]:
        if re.match(r"FROM\b", line, re.IGNORECASE):
            break
        found = _COMMENTED.search(line)
        if found:
            comments[found.group(1)] = found.group(2)
    return comments


def over_ticks(body: str, read_from: str, read_to: str | None = None) -> str:
    """A SELECT of feature SQL ``body`` computed over only the lake's ticks timed from ``read_from``
    to ``read_to`` (both SQL expressions, ends included).

    Feature SQL selects FROM ticks: a CTE of that name in front of it shadows the table, so the
    windows are computed over just those ticks and the lake skips the files outside them. The caller
    reaches back far enough for its first rows' windows (twice the lookback: a window's first return
    needs the tick before it).
    """
    upper = f" AND event_time <= {read_to}" if read_to else ""
    return (
        f"WITH ticks AS (SELECT * FROM lake.main.ticks WHERE event_time >= {read_from}{upper}) "  # noqa: S608
        f"SELECT * FROM ({body}\n)"  # the newline ends a comment on the body's last line
    )


def views(folder: Path = SQL_DIR) -> dict[str, Path]:
    """Every `<name>.sql` in ``folder`` that is one plain SELECT (no ``$`` parameters), by name."""
    return {
        p.stem: p
        for p in sorted(folder.glob("*.sql"))
        if _NAME.fullmatch(p.stem) and "$" not in p.read_text()
    }


def attach_views(
    con: duckdb.DuckDBPyConnection, query: str, found: dict[str, Path] | None = None
) -> list[str]:
    """Make the feature views ``query`` names queryable on ``con``, as temporary views of the files
    as they are now (so an edit can be tried before `feast apply`); returns the names attached.

    Only the views named are bound (each costs a plan), and a lake table of the same name wins.
    ``found``: what :func:`views` gave, when the caller has it already.
    """
    named = {
        name: path
        for name, path in (views() if found is None else found).items()
        if re.search(rf"\b{name}\b", query, re.IGNORECASE)
    }
    if not named:  # the catalog not asked: ~4 ms a statement, most of a script's small ones
        return []
    # the lake's own tables and views; not temporary ones, so a shell re-reads an edited file
    tables = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE NOT temporary "
            "UNION ALL SELECT view_name FROM duckdb_views() WHERE NOT temporary AND NOT internal"
        ).fetchall()
    }
    attached = []
    for name, path in named.items():
        if name in tables:
            continue
        # the name is a file stem matched against _NAME, the body our own SELECT: no user input
        body = path.read_text().strip().rstrip(";")
        try:
            con.execute(f'CREATE OR REPLACE TEMP VIEW "{name}" AS {body}\n')  # noqa: S608
            back = lookback(body)
            if back is not None:
                con.execute(_range_macro(name, body, back))
        except duckdb.Error as exc:  # its LINE numbers are the file's, not the query's: say which file
            raise type(exc)(f"in sql/{path.name}: {exc}") from exc
        except ValueError as exc:  # a lookback line written otherwise: said as DuckDB's errors are
            raise duckdb.InvalidInputException(f"in sql/{path.name}: {exc}") from exc
        attached.append(name)
    return attached


def _range_macro(name: str, body: str, back: timedelta) -> str:
    """``CREATE MACRO name(since, until := NULL)``: the view's rows timed in [since, until), computed
    over only the ticks they need (from twice the lookback before ``since``); a NULL end is open.

    A filter on the view's time can't be pushed below its windows (each row needs its lookback), so
    `SELECT ... FROM ticks_60s WHERE event_time >= ...` computes the product's whole history first;
    this reads the lake from ``since - 2 x lookback`` on. A view and a macro share a name: DuckDB keeps
    tables and table functions apart.
    """
    ts = '"' + time_column(body) + '"'
    # NULL for either end leaves that side open, as `until := NULL` does by default
    since = "coalesce(since::TIMESTAMPTZ, '-infinity'::TIMESTAMPTZ)"
    until = "coalesce(until::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ)"
    reach = f"INTERVAL {2 * back // timedelta(microseconds=1)} MICROSECOND"
    return (
        f'CREATE OR REPLACE TEMP MACRO "{name}"(since, until := NULL) AS TABLE '  # noqa: S608
        f"SELECT * FROM ({over_ticks(body, f'{since} - {reach}', until)}) "
        f"WHERE {ts} >= {since} AND {ts} < {until}"
    )


def fingerprints(texts: list[str]) -> list[str]:
    """A fingerprint of each SQL text: ``<tree>:<text>``, SHA-256s of the statement as DuckDB parses
    it and of the text itself (the tree part is empty for text DuckDB cannot parse).

    A model is trained on features one SQL computed and must be scored on features the same SQL
    computes; comparing the text alone would call a re-worded comment a new feature. See
    :func:`same_definition`.
    """
    con = duckdb.connect()  # an in-memory database of its own: parsing reads no table
    try:
        return [f"{_tree_hash(con, text)}:{hashlib.sha256(text.encode()).hexdigest()}" for text in texts]
    finally:
        con.close()


def same_definition(a: str, b: str) -> bool:
    """Whether two fingerprints are of the same SQL: the same parse tree (comments, layout and keyword
    case don't count), or the very same text. The text decides only where the trees differ, as they may
    between DuckDB releases that serialize them otherwise: an upgrade must not make every model's
    unchanged SQL look new."""
    tree_a, _, text_a = a.partition(":")
    tree_b, _, text_b = b.partition(":")
    return (bool(tree_a) and tree_a == tree_b) or (bool(text_a) and text_a == text_b)


def _tree_hash(con: duckdb.DuckDBPyConnection, text: str) -> str:
    row = con.execute("SELECT json_serialize_sql(?)", [text]).fetchone()
    tree = json.loads(row[0]) if row else {"error": True}
    if tree.get("error"):
        return ""
    canonical = json.dumps(_without_locations(tree["statements"]), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _without_locations(node: Any) -> Any:
    """The parse tree without character offsets (they move with every comment or space)."""
    if isinstance(node, dict):
        return {k: _without_locations(v) for k, v in node.items() if k != "query_location"}
    if isinstance(node, list):
        return [_without_locations(v) for v in node]
    return node
