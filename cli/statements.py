"""Running a query's statements one at a time, as `tickstore sql` does: a change says how many rows it
changed, and a statement that finds the lake's catalog locked by the sink's commit is retried."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
    duckdb.StatementType.COPY: "copied",  # to a file, or from one into a table
}

# statements that can change a table's definition; the lake's own tables are checked around them
DEFINING = {duckdb.StatementType.DROP, duckdb.StatementType.ALTER, duckdb.StatementType.CREATE}
OWN_TABLES = ("ticks", "ticks_rejected")
REMOVING = (
    "To remove ticks: DELETE FROM ticks WHERE ...; "  # noqa: S608 - advice printed, no query built
    "to start afresh: stop the sink and remove TICKSTORE_HOME/lake"
)

RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
# a dollar-quoted string's opening tag ($$ or $name$); a bound value is $name with no second $
DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
SPECIAL = re.compile(r"['\"$]|--|/\*")  # what ends a stretch of plain SQL
BLOCK_MARK = re.compile(r"/\*|\*/")  # block comments nest
E_STRING_MARK = re.compile(r"['\\]")


def _word_before(sql: str, i: int) -> bool:
    """Whether a letter, digit, _ or $ is just before ``sql[i]`` (``i`` is inside a word)."""
    return i > 0 and (sql[i - 1].isalnum() or sql[i - 1] in "_$")


def complete(sql: str) -> bool:
    """Whether ``sql`` ends with a whole statement: its last ';' outside quotes and comments is the last
    thing in it but comments and blanks, as DuckDB reads them (sqlite3_complete's rule).

    A ';' in a string (`'a;'`, `E'\\';'`, `$$a;$$`), a quoted name or a comment (`-- not yet;`, `/* */`,
    nested as DuckDB nests them) ends nothing; a comment after the ';' (`SELECT 1; -- why`) is no
    more SQL. Text left open (a quote, a block comment) is incomplete.
    """
    return _last_outside(sql) == ";"


def blank(sql: str) -> bool:
    """Whether ``sql`` holds nothing but comments and blanks (closed ones): no statement to run."""
    return _last_outside(sql) == ""


def _last_outside(sql: str) -> str | None:
    """The last character of ``sql`` outside comments and blanks (a quote for a quoted string or name;
    "" when there is none), or None while a quote or block comment is left open."""
    i, n, last = 0, len(sql), ""
    while i < n:
        # plain SQL up to the next quote, dollar or comment, skipped over by the regex engine
        found = SPECIAL.search(sql, i)
        start = n if found is None else found.start()
        if plain := sql[i:start].rstrip():
            last = plain[-1]
        if found is None:
            break
        token = found.group()
        if token == "--":
            end = sql.find("\n", start)
            i = n if end < 0 else end + 1
        elif token == "/*":
            depth, i = 1, start + 2
            while depth:
                if (mark := BLOCK_MARK.search(sql, i)) is None:
                    return None
                depth += 1 if mark.group() == "/*" else -1
                i = mark.end()
        elif token in "'\"":
            # E'...' takes backslash escapes (E'it\\'s'); elsewhere a quote is escaped by doubling it
            escapes = (
                token == "'" and start > 0 and sql[start - 1] in "eE" and not _word_before(sql, start - 1)
            )
            i = start + 1
            while True:
                if escapes:
                    mark = E_STRING_MARK.search(sql, i)
                    j = -1 if mark is None else mark.start()
                else:
                    j = sql.find(token, i)
                if j < 0:
                    return None
                if sql[j] == "\\" or sql.startswith(token, j + 1):
                    i = j + 2  # an escaped character, or a doubled quote
                else:
                    break
            i, last = j + 1, token
        elif not _word_before(sql, start) and (tag := DOLLAR_TAG.match(sql, start)):
            end = sql.find(tag.group(), tag.end())
            if end < 0:
                return None
            i, last = end + len(tag.group()), "$"
        else:  # a $ of a bound value ($p) or of a name
            i, last = start + 1, "$"
    return last


class Changed(NamedTuple):
    """What a DELETE, UPDATE, INSERT or MERGE did: its rows, and the verb that says so."""

    rows: int
    verb: str


@dataclass
class Transaction:
    """Whether a connection's user opened a transaction (BEGIN) and has not ended it: kept across the
    calls of one session, since a shell's BEGIN and COMMIT come in separate inputs."""

    open: bool = False
    # the lake's own tables when it opened (see _own_tables), for its COMMIT to compare
    own_tables: list[tuple[object, ...]] | None = None


def statement_results(
    con: duckdb.DuckDBPyConnection,
    query: str,
    lake_locked_wait_s: float,
    params: dict[str, str] | None = None,
    transaction: Transaction | None = None,
) -> Iterator[duckdb.DuckDBPyRelation | Changed | None]:
    """Run each statement of ``query`` in turn, yielding its result: its rows, the rows it changed, or
    None. The next statement runs only when the next result is asked for, so a result's rows are read
    before it (they are computed as they are fetched: a later statement would change them). ``params``
    are bound to the `$name`s each statement uses (DuckDB casts the text by context); a `$name` without
    a value is refused before any statement runs.

    A statement that finds the lake's catalog locked by another writer (the sink commits every batch)
    is retried on its own for up to ``lake_locked_wait_s``: run one at a time, a failed statement was
    rolled back whole, and the ones before it are never run twice. Inside an explicit transaction
    nothing is retried: the failed COMMIT took the whole transaction with it.
    """
    from tickstore import lake

    transaction = transaction if transaction is not None else Transaction()
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
        # a COMMIT that failed has nothing to commit
        may_retry = not transaction.open and not is_transaction
        if is_transaction:
            word = statement.query.strip().upper()
            if word.startswith(("COMMIT", "END")) and transaction.open:
                _check_own_tables(con, transaction.own_tables, transaction, opened=False)
            elif word.startswith(("BEGIN", "START")) and not transaction.open:
                transaction.own_tables = _own_tables(con)
            transaction.open = not word.startswith(("COMMIT", "END", "ROLLBACK", "ABORT"))
        deadline = time.monotonic() + lake_locked_wait_s
        told = False
        while True:
            try:
                result: duckdb.DuckDBPyRelation | Changed | None
                if statement.type in DEFINING:
                    _keeping_own_tables(con, statement, bound, transaction)
                    result = None
                elif statement.type in CHANGES and not RETURNING.search(statement.query):
                    # `con.sql` runs it and says nothing of its rows; with RETURNING, its rows are the answer
                    # COPY ... (RETURN_FILES) adds the files written after the count
                    rows, *_ = con.execute(statement.query, bound).fetchone() or (0,)
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
        yield result


def _own_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    """The columns of the lake's own tables (name, position, type), as the sink and every command
    read them."""
    from tickstore import lake

    return con.execute(
        "SELECT table_name, column_index, column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = $lake AND schema_name = 'main' AND list_contains($own, table_name) "
        "ORDER BY ALL",
        {"lake": lake.LAKE, "own": list(OWN_TABLES)},
    ).fetchall()


def _keeping_own_tables(
    con: duckdb.DuckDBPyConnection,
    statement: duckdb.Statement,
    bound: dict[str, str],
    transaction: Transaction,
) -> None:
    """Run a DROP, ALTER or CREATE, undone with an error if it leaves the lake's ``ticks`` or
    ``ticks_rejected`` other than tickstore makes them; inside the user's transaction its COMMIT is
    where that is checked, so that a table can be put back in several steps."""
    if transaction.open:
        con.execute(statement.query, bound)
        return
    before = _own_tables(con)
    con.execute("BEGIN")
    try:
        con.execute(statement.query, bound)
    except BaseException:
        con.execute("ROLLBACK")
        raise
    _check_own_tables(con, before, transaction, opened=True)  # rolls back where it refuses
    try:
        con.execute("COMMIT")
    except duckdb.Error:  # the catalog locked by the sink's commit: retried whole, from BEGIN
        with contextlib.suppress(duckdb.Error):  # a failed COMMIT may have ended it already
            con.execute("ROLLBACK")
        raise


def _check_own_tables(
    con: duckdb.DuckDBPyConnection,
    before: list[tuple[object, ...]] | None,
    transaction: Transaction,
    *,
    opened: bool,
) -> None:
    """Roll the transaction back with an error if it changed the lake's own tables into something
    other than tickstore makes: the sink writes them and every command reads them (a dropped column
    had the sink retry and bisect every batch down to single messages, filing good ticks as rejects),
    and a dropped table left the ticks only in earlier snapshots, which compaction expires. A change
    that puts a table back as tickstore makes it passes."""
    from tickstore import tables

    after = _own_tables(con)
    if before is None or after == before:
        return
    changed = [t for t in OWN_TABLES if [c for c in before if c[0] == t] != [c for c in after if c[0] == t]]
    problems = tables.table_problems(con)
    # a table broken before (by DuckDB's own CLI, say) and left alone is not this change's doing
    made = [problems[t] for t in changed if t in problems]
    if not made:
        return
    con.execute("ROLLBACK")
    transaction.open = False
    undone = "it was undone" if opened else "the transaction was rolled back"
    raise click.ClickException(
        f"this would leave {' and '.join(made)}, which the sink writes and every command reads: {undone}. "
        + REMOVING
    )
