"""The feature SQL in `sql/`: where it lives, and the files ad-hoc SQL can name as views."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_NAME = re.compile(r"[a-z_][a-z0-9_]*")


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
    # the lake's own tables and views; not temporary ones, so a shell re-reads an edited file
    tables = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE NOT temporary "
            "UNION ALL SELECT view_name FROM duckdb_views() WHERE NOT temporary AND NOT internal"
        ).fetchall()
    }
    attached = []
    for name, path in (views() if found is None else found).items():
        if name in tables or not re.search(rf"\b{name}\b", query, re.IGNORECASE):
            continue
        # the name is a file stem matched against _NAME, the body our own SELECT: no user input
        body = path.read_text().strip().rstrip(";")
        con.execute(f'CREATE OR REPLACE TEMP VIEW "{name}" AS {body}\n')  # noqa: S608
        attached.append(name)
    return attached
