"""Running a query's statements one at a time, as `tickstore sql` does: a change says how many rows it
changed, and a statement that finds the lake's catalog locked by the sink's commit is retried."""

from __future__ import annotations

import re
import time
from typing import NamedTuple

import click
import duckdb

from cli.context import console

LOCK_WAIT_S = 60.0  # how long a changing statement waits for the sink's commits before giving up
# statements whose result is the number of rows they changed (DuckDB gives it only through execute)
CHANGES = {
    duckdb.StatementType.INSERT: "inserted",
    duckdb.StatementType.UPDATE: "updated",
    duckdb.StatementType.DELETE: "deleted",
    duckdb.StatementType.MERGE_INTO: "changed",
}

RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)


class Changed(NamedTuple):
    """What a DELETE, UPDATE, INSERT or MERGE did: its rows, and the verb that says so."""

    rows: int
    verb: str


def run_statements(
    con: duckdb.DuckDBPyConnection,
    query: str,
    lake_locked_wait_s: float,
    params: dict[str, str] | None = None,
) -> duckdb.DuckDBPyRelation | Changed | None:
    """Run each statement of ``query`` in turn; the last one's result: its rows, the rows it changed,
    or None. ``params`` are bound to the `$name`s each statement uses (DuckDB casts the text by
    context); a `$name` without a value is refused before any statement runs.

    A statement that finds the lake's catalog locked by another writer (the sink commits every batch)
    is retried on its own for up to ``lake_locked_wait_s``: run one at a time, a failed statement was
    rolled back whole, and the ones before it are never run twice. Inside an explicit transaction
    nothing is retried: the failed COMMIT took the whole transaction with it.
    """
    from tickstore import lake

    result: duckdb.DuckDBPyRelation | Changed | None = None
    in_transaction = False
    statements = con.extract_statements(query)
    params = params or {}
    missing = sorted({n for s in statements for n in s.named_parameters} - set(params))
    if missing:
        raise click.UsageError(
            f"the SQL uses {', '.join('$' + n for n in missing)}: give a value with "
            + " ".join(f"-p {n}=VALUE" for n in missing)
        )
    for statement in statements:
        bound = {n: params[n] for n in statement.named_parameters}
        is_transaction = statement.type == duckdb.StatementType.TRANSACTION
        may_retry = not in_transaction and not is_transaction  # a COMMIT that failed has nothing to commit
        if is_transaction:
            ends = statement.query.strip().upper().startswith(("COMMIT", "END", "ROLLBACK", "ABORT"))
            in_transaction = not ends
        deadline = time.monotonic() + lake_locked_wait_s
        told = False
        while True:
            try:
                if statement.type in CHANGES and not RETURNING.search(statement.query):
                    # `con.sql` runs it and says nothing of its rows; with RETURNING, its rows are the answer
                    (rows,) = con.execute(statement.query, bound).fetchone() or (0,)
                    result = Changed(int(rows), CHANGES[statement.type])
                else:
                    result = con.sql(statement.query, params=bound)
                break
            except duckdb.Error as exc:
                if not may_retry or not lake.is_locked(exc) or time.monotonic() > deadline:
                    raise
                if not told:
                    console.print(
                        f"the lake's catalog is locked by another writer (the sink's commit): "
                        f"retrying for up to {lake_locked_wait_s:.0f} s"
                    )
                    told = True
                time.sleep(0.2)
    return result
