"""The lake's own tables as tickstore makes them: what differs where they were changed by hand, and how to
put them back."""

from __future__ import annotations

import duckdb

from tickstore import lake

# how a table not there at all is said (`tickstore status` labels it missing, not changed)
GONE = "the lake without its"


def _made_columns() -> dict[str, list[tuple[str, str]]]:
    """Each own table's columns and types as tickstore's DDL makes them (in a throwaway database)."""
    made = duckdb.connect()
    try:
        made.execute(lake.TICKS_DDL)
        made.execute(lake.REJECTED_DDL)
        rows = made.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = 'memory' ORDER BY table_name, column_index"
        ).fetchall()
    finally:
        made.close()
    columns: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in rows:
        columns.setdefault(table, []).append((column, kind))
    return columns


def table_problems(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Each of the lake's ``ticks`` and ``ticks_rejected`` that differs from the columns tickstore makes
    it with (dropped, renamed, columns dropped, added, moved or retyped by hand), and how: {"ticks":
    "the lake's ticks table other than tickstore makes it (columns missing volume_24h)"}."""
    problems = {}
    for table, want in _made_columns().items():
        have = [
            (r[0], r[1])
            for r in con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = $lake "
                "AND schema_name = 'main' AND table_name = $table ORDER BY column_index",
                {"lake": lake.LAKE, "table": table},
            ).fetchall()
        ]
        if not have:
            problems[table] = f"{GONE} {table} table"
        elif have != want:
            names, wanted = [c for c, _ in have], [c for c, _ in want]
            missing = [c for c in wanted if c not in names]
            added = [c for c in names if c not in wanted]
            retyped = [
                f"{c} {k} (made {dict(want)[c]})" for c, k in have if c in wanted and k != dict(want)[c]
            ]
            differs = "; ".join(
                [f"missing {', '.join(missing)}"] * bool(missing)
                + [f"added {', '.join(added)}"] * bool(added)
                + [f"retyped {', '.join(retyped)}"] * bool(retyped)
                + ["in another order"] * (not missing and not added and not retyped)
            )
            problems[table] = f"the lake's {table} table other than tickstore makes it (columns {differs})"
    return problems


def table_problem(con: duckdb.DuckDBPyConnection) -> tuple[str, str] | None:
    """The first of ``table_problems``: (table, how it differs), or None where neither does."""
    return next(iter(table_problems(con).items()), None)


def put_back(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """How to put ``table`` back as it was before the last snapshot that dropped or altered it (by
    hand: tickstore changes no table's definition), as a `tickstore sql` command."""
    changed = lake.last_change(con, table)
    if changed is None:
        return "the next `tickstore sink` makes a missing table anew, empty"
    script = (  # noqa: S608 - a command printed for the user, no query built
        f"BEGIN; CREATE TABLE {table}_back AS FROM {table} AT (VERSION => {changed - 1}); "
        f"DROP TABLE IF EXISTS {table}; ALTER TABLE {table}_back RENAME TO {table}; COMMIT"
    )
    return (
        f"put it back as it was before snapshot {changed}, which changed it: "
        f'tickstore sql --write "{script}" (or remove the lake to start afresh)'
    )
