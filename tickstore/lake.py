"""The DuckLake connection every stage uses: extensions from PyPI, a SQLite catalog, the tick tables."""

from __future__ import annotations

import importlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import duckdb

from tickstore import catalog, paths, sqlite_file
from tickstore.errors import TickstoreError, storage_trouble
from tickstore.settings import Settings

LAKE = "lake"

# The normalized tick: one row per ticker update, whatever wire format it came in.
TICKS_DDL = """
CREATE TABLE IF NOT EXISTS ticks (
    product_id     VARCHAR,        -- e.g. BTC-USD
    event_time     TIMESTAMPTZ,    -- exchange event time, UTC, microseconds
    feed           VARCHAR,        -- 'exchange' or 'advanced_trade'
    sequence       BIGINT,         -- wire sequence (Exchange: per product; Advanced Trade: per connection)
    tick_id        UBIGINT,        -- content key that makes re-delivery idempotent
    trade_id       BIGINT,         -- the trade that moved the ticker (Exchange only)
    side           VARCHAR,        -- the taker's side of that trade, buy or sell (Exchange only)
    -- Exact decimals at Coinbase's precision (8 places); a 64-bit decimal reads 25x faster than a wider one.
    last_size      DECIMAL(18, 8), -- that trade's size (Exchange only)
    price          DECIMAL(18, 8), -- last trade price
    best_bid       DECIMAL(18, 8), -- best bid price
    best_bid_size  DECIMAL(18, 8), -- size at the best bid; NULL where the feed left it out
    best_ask       DECIMAL(18, 8), -- best ask price
    best_ask_size  DECIMAL(18, 8), -- size at the best ask; NULL where the feed left it out
    volume_24h     DECIMAL(38, 8), -- 24 h volume (24 h volumes of low-priced coins exceed 10^10)
    src_topic      VARCHAR,        -- the Kafka topic the message came from
    src_partition  INTEGER,        -- its partition
    src_offset     BIGINT,         -- its offset there
    kafka_time     TIMESTAMPTZ,    -- its Kafka timestamp
    ingest_time    TIMESTAMPTZ     -- when the sink wrote it to the lake
)
"""

REJECTED_DDL = """
CREATE TABLE IF NOT EXISTS ticks_rejected (
    src_topic      VARCHAR,        -- the Kafka topic the message came from
    src_partition  INTEGER,        -- its partition
    src_offset     BIGINT,         -- its offset there
    kafka_time     TIMESTAMPTZ,    -- its Kafka timestamp
    ingest_time    TIMESTAMPTZ,    -- when the sink rejected it
    ticker_index   INTEGER,        -- which ticker of a multi-ticker message; NULL for the whole message
    reason         VARCHAR,        -- why it could not be used
    payload        BLOB            -- the raw message, byte for byte
)
"""
# a column of the DDL above and the comment beside it (what `tickstore sql`'s .schema shows)
_DDL_COLUMN = re.compile(r"^\s+([a-z_][a-z0-9_]*)\s+[A-Z][A-Z0-9(), ]*?,?\s*--\s*(\S.*?)\s*$", re.MULTILINE)


def column_comments(table: str) -> dict[str, str]:
    """What each column of the lake's table ``table`` holds, from the comment beside it in its DDL."""
    ddl = {"ticks": TICKS_DDL, "ticks_rejected": REJECTED_DDL}.get(table, "")
    return dict(_DDL_COLUMN.findall(ddl))


class LakeError(TickstoreError):
    """The lake could not be opened; the message says what to do."""


def refuse_stray_home(settings: Settings) -> None:
    """LakeError, before anything is made, for the default data directory (`.tickstore` in the
    current folder) where it does not exist yet while the source tree's holds a lake.

    A notebook in a folder of its own (`notebooks/`) opening `feature_store(Settings())` made
    `.tickstore/feast/` there, a registry and an empty online store, and only its first query named the
    missing lake; `tickstore sink` run from `sql/` started a second lake there. A home given
    (`--home`, TICKSTORE_HOME, ``Settings(home=...)``) or one already there is the user's choice, and
    is left alone.
    """
    beside = catalog.stray_home(settings)
    if beside is not None:
        raise LakeError(
            f"no data directory in this folder ({settings.home.resolve()} does not exist), and the source "
            f"tree's, with its lake, is {beside}: run tickstore from {beside.parent}, or point "
            f"TICKSTORE_HOME (--home; from Python, Settings(home={str(beside)!r})) at it. Nothing was made "
            f"here; to start a new data directory in this folder, `mkdir {settings.home}` first"
        )


def _extension_file(package: str, name: str) -> Path:
    """Path of the .duckdb_extension file that a PyPI extension package ships."""
    try:
        module = importlib.import_module(package)
    except ImportError as exc:  # pragma: no cover - only without the pinned dependencies
        raise LakeError(f"{package} is not installed; run `make demo` or `pip install -e .`") from exc
    root = Path(module.__file__ or "").parent / "extensions" / f"v{duckdb.__version__}"
    path = root / f"{name}.duckdb_extension"
    if not path.exists():
        raise LakeError(f"{path} not found: the {package} version must equal duckdb {duckdb.__version__}")
    return path


def _quote(value: str) -> str:
    """A SQL string literal; ATTACH takes no bound parameters, so paths are quoted here."""
    return "'" + value.replace("'", "''") + "'"


LOCK_RETRIES = 20
T = TypeVar("T")


def connect(
    settings: Settings,
    *,
    snapshot: int | None = None,
    create: bool = True,
    read_only: bool = False,
) -> duckdb.DuckDBPyConnection:
    """A connection with the lake attached as ``lake`` and selected as default; close it when done.

    ``snapshot`` attaches the lake read-only as it was then (DuckLake time travel; `snapshot_at`
    finds the one of a time);
    ``read_only`` attaches the newest lake so that it can't be changed (ad-hoc SQL). With ``create``
    the data directory and the tick tables are made when missing.
    """
    if (orphans := catalog.orphaned(settings)) is not None:  # one stat, while the catalog is there
        raise LakeError(orphans)
    if not create and not settings.lake_catalog.exists():
        raise LakeError(catalog.no_lake(settings))
    if snapshot is not None and not 0 <= snapshot < 2**63:  # DuckLake's ids are BIGINTs: a cast error
        raise LakeError(f"no snapshot {snapshot} in the lake{catalog.snapshot_span(settings.lake_catalog)}")
    con = _instance(settings, snapshot, read_only).cursor()
    tune(con)  # a cursor is a session of its own: it does not inherit its parent's settings
    # Ticks are UTC; pin the session zone so TIMESTAMPTZ prints and truncates the same everywhere.
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"USE {LAKE}")
    if snapshot is not None and "ticks" not in _tables(con):
        # snapshot 0 is the empty lake, before the first commit made its tables: every reader of it
        # failed on a missing `ticks`, one of them with a traceback (`dataset build --as-of 0`)
        said = (
            f"the lake has no ticks table at snapshot {snapshot} (dropped by hand): pick another "
            f"snapshot{catalog.snapshot_span(settings.lake_catalog)}, or see `tickstore status` for how to put it back"
            if last_change(con, "ticks", upto=snapshot) is not None
            else f"snapshot {snapshot} is from before the lake's ticks table was made: "
            f"pick a later one{catalog.snapshot_span(settings.lake_catalog)}"
        )
        con.close()
        raise LakeError(said)
    if create and not read_only and snapshot is None:
        existing = _tables(con)
        if not {"ticks", "ticks_rejected"} <= existing:  # DDL is a catalog write: skip it when not needed
            try:
                retry_locked(lambda: _in_transaction(con, [TICKS_DDL, REJECTED_DDL]))
            except duckdb.Error:
                # processes starting together on a new lake: another one's CREATE may have won
                if not {"ticks", "ticks_rejected"} <= _tables(con):
                    raise
    return con


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The lake's table names."""
    rows = con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = $d", {"d": LAKE})
    return {r[0] for r in rows.fetchall()}


# One DuckDB instance per lake (and time-travel point) per process; connect() hands out cursors.
# Loading the two extensions verifies their signatures, ~80 ms each: paid once per process, not per
# query. Cursors of one instance also share its lake attachment, so a process's readers and writer
# coordinate through DuckDB's own transactions instead of racing for the SQLite file lock.
_INSTANCES: OrderedDict[tuple[str, int | None, bool], duckdb.DuckDBPyConnection] = OrderedDict()
_INSTANCES_LOCK = threading.Lock()
MAX_INSTANCES = 8


# the catalog file each instance attached: a lake removed (or put back) since is attached anew, where
# the old instance went on with the removed file, which nothing else reads
_IDENTITIES: dict[tuple[str, int | None, bool], tuple[int, int] | None] = {}


def _instance(settings: Settings, snapshot: int | None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    key = (str(settings.lake_catalog.resolve()), snapshot, read_only)
    with _INSTANCES_LOCK:
        base = _INSTANCES.get(key)
        if base is not None and _IDENTITIES.get(key) == catalog_identity(settings):
            _INSTANCES.move_to_end(key)
            return base
        base = _open(settings, snapshot, read_only)
        _INSTANCES[key] = base
        _IDENTITIES[key] = catalog_identity(settings)
        while len(_INSTANCES) > MAX_INSTANCES:  # evicted ones close once their cursors are gone
            _IDENTITIES.pop(_INSTANCES.popitem(last=False)[0], None)
        return base


def reopen(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A connection on a new DuckDB instance of the newest lake, for a process that writes for days.

    The instance it replaces closes with its last cursor, and with it what it gathered: its caches
    and DuckLake's metadata grew a long-running sink's memory with every commit, without end
    (docs/decisions.md).
    """
    with _INSTANCES_LOCK:
        _INSTANCES.pop((str(settings.lake_catalog.resolve()), None, False), None)
    return connect(settings)


def catalog_identity(settings: Settings) -> tuple[int, int] | None:
    """`paths.file_identity` of the lake's catalog: a writer that opened it goes on writing a removed
    one, which nothing else reads, so a writer compares this."""
    return paths.file_identity(settings.lake_catalog)


def tune(con: duckdb.DuckDBPyConnection) -> None:
    """Settings every tickstore DuckDB session gets (each cursor too: sessions don't inherit them).

    The feature views ASOF-join CTEs whose size the planner can't see (it guesses ~1 row), and below
    `asof_loop_join_threshold` rows it picks a nested-loop ASOF join: quadratic. Measured on 6,667
    ticks: 730 ms with the loop join, 3.5 ms without. The sort-based ASOF join is never much slower.

    DuckDB draws its own progress bar on stdout once a statement runs 2 s, piped or not, in a session
    that has it on (a new connection; a cursor starts with it off): CI found it ahead of a script's
    printed count, the lake's attach having waited 2 s on a catalog other processes held. tickstore
    draws its own bars, on the console, where work is long.
    """
    con.execute("SET asof_loop_join_threshold = 0")
    con.execute("SET enable_progress_bar = false")


def _block_pool(con: duckdb.DuckDBPyConnection, size: str) -> None:
    """Let DuckDB reuse freed memory blocks instead of handing them back to the kernel.

    Without the pool, blocks freed by one operator (a sort, a window's segment trees) go back to the
    system and the next operator's are page-faulted in afresh: over 10M ticks of feature SQL that
    was a fifth of the CPU time, spent in the kernel. Set on the instance once (DuckDB can't shrink
    it); a percentage is of DuckDB's memory limit. Given in the connect() config, DuckDB 1.5 aborts
    the process on a percentage, so it is SET afterwards.
    """
    if size in ("0", "0%"):
        return
    try:
        con.execute(f"SET block_allocator_memory = {_quote(size)}")
    except duckdb.Error as exc:
        con.close()
        raise LakeError(
            f"DuckDB refused TICKSTORE_DUCKDB_BLOCK_POOL={size} ({exc}); "
            "use a share of at most 100%, or 0 to turn the pool off"
        ) from exc


def _open(settings: Settings, snapshot: int | None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB with the extensions loaded and the lake attached."""
    settings.lake_data.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()  # never queried itself: connect() hands out cursors, tuned there
    tune(con)  # but it attaches the lake, which can take seconds while other processes hold the catalog
    _block_pool(con, settings.duckdb_block_pool)
    con.execute(f"LOAD {_quote(str(_extension_file('duckdb_extension_sqlite_scanner', 'sqlite_scanner')))}")
    con.execute(f"LOAD {_quote(str(_extension_file('duckdb_extension_ducklake', 'ducklake')))}")
    # The catalog records the data path it was made with: a home moved or copied elsewhere failed to
    # attach ("does not match existing data path"). A home's data is always in its lake/data/.
    options = [f"DATA_PATH {_quote(str(settings.lake_data.resolve()) + '/')}", "OVERRIDE_DATA_PATH TRUE"]
    if snapshot is not None:
        options.append(f"SNAPSHOT_VERSION {int(snapshot)}")
    elif read_only:
        options.append("READ_ONLY")
    # WAL: the sink's commits and other processes' reads do not lock each other out (its readers'
    # locks failed the sink's commit at once: DuckDB's SQLite scanner sets no busy timeout)
    sqlite_file.make_in_wal_mode(settings.lake_catalog)
    target = _quote("ducklake:sqlite:" + str(settings.lake_catalog.resolve()))
    try:
        retry_locked(lambda: con.execute(f"ATTACH {target} AS {LAKE} ({', '.join(options)})"))
    except duckdb.Error as exc:
        con.close()
        known = catalog.snapshot_span(settings.lake_catalog) if "No snapshot found" in str(exc) else ""
        trouble = known + catalog.damaged(settings, str(exc))
        raise LakeError(f"cannot attach the lake at {settings.lake_catalog}: {exc}{trouble}") from exc
    return con


def _in_transaction(con: duckdb.DuckDBPyConnection, statements: list[str]) -> None:
    con.execute("BEGIN TRANSACTION")
    try:
        for statement in statements:
            con.execute(statement)
        con.execute("COMMIT")
    except BaseException:
        rollback(con)
        raise


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction, if the failure left one.

    A COMMIT that fails (the catalog locked by another process, a conflicting change) has already
    rolled back, and a second ROLLBACK raises "no transaction is active": raised from an `except`,
    that error hid the real one, so "database is locked" was never retried.
    """
    try:
        con.execute("ROLLBACK")
    except duckdb.TransactionException:
        pass


def is_locked(exc: duckdb.Error) -> bool:
    """Whether ``exc`` is the SQLite catalog held by another writer: wait and retry, it is no fault."""
    return "locked" in str(exc)


def cannot_write(exc: duckdb.Error) -> str | None:
    """A hint when a lake write failed for want of room or rights (see errors.storage_trouble), or
    None: then the data, or a passing conflict, is to blame."""
    # Only errors whose text is the operating system's or SQLite's: a conversion error quotes the
    # value it could not convert, and a tick saying "Permission denied" is still just a bad tick.
    if isinstance(exc, (duckdb.IOException, duckdb.PermissionException, duckdb.TransactionException)):
        return storage_trouble(exc)
    return None


def retry_locked(action: Callable[[], T], attempts: int = LOCK_RETRIES) -> T:
    """Run ``action``, retrying while the SQLite catalog says "database is locked".

    DuckDB's SQLite scanner sets no busy timeout, so a concurrent catalog writer fails at once
    instead of waiting; a short backoff turns that into waiting.
    """
    for attempt in range(attempts):
        try:
            return action()
        except duckdb.Error as exc:
            if not is_locked(exc) or attempt == attempts - 1:
                raise
            time.sleep(min(0.02 * 2**attempt, 0.5))
    raise AssertionError("unreachable")


def snapshot_at(settings: Settings, when: datetime) -> int:
    """The id of the lake's newest snapshot taken at or before ``when``: the lake as it was then."""
    con = connect(settings, create=False, read_only=True)
    try:
        row = con.execute(
            "SELECT max(snapshot_id) FROM ducklake_snapshots($lake) WHERE snapshot_time <= $when",
            {"lake": LAKE, "when": when},
        ).fetchone()
    finally:
        con.close()
    if not row or row[0] is None:
        raise LakeError(
            f"the lake has no snapshot at or before {when.isoformat()}{catalog.snapshot_span(settings.lake_catalog)}"
        )
    return int(row[0])


def current_snapshot(con: duckdb.DuckDBPyConnection) -> int:
    """The newest DuckLake snapshot id of the attached lake."""
    row = con.execute("SELECT max(snapshot_id) FROM ducklake_snapshots($lake)", {"lake": LAKE}).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def last_change(con: duckdb.DuckDBPyConnection, table: str, upto: int | None = None) -> int | None:
    """The newest snapshot (up to ``upto``) that dropped or altered ``table``, or None."""
    # a table's ids over its lives (made anew after a drop, it has another) are in the lake's own
    # catalog; snapshots name what they dropped or altered by id
    row = con.execute(
        f"SELECT max(snapshot_id) FROM ducklake_snapshots($lake), "  # noqa: S608 - a fixed name
        f"(SELECT table_id::VARCHAR AS id FROM __ducklake_metadata_{LAKE}.ducklake_table "
        "WHERE table_name = $table) AS ids "
        "WHERE (list_contains(changes['tables_dropped'], ids.id) "
        "OR list_contains(changes['tables_altered'], ids.id)) AND ($upto IS NULL OR snapshot_id <= $upto)",
        {"lake": LAKE, "table": table, "upto": upto},
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def tick_span(settings: Settings, snapshot: int | None = None) -> str:
    """Where the lake's ticks lie (at ``snapshot``), for an error about a range without any: their
    first and last event times (UTC), or that there are none yet and how to get some."""
    con = connect(settings, snapshot=snapshot, create=False)
    try:
        first, last = con.execute("SELECT min(event_time), max(event_time) FROM ticks").fetchone() or (
            None,
            None,
        )
    finally:
        con.close()
    if first is None:
        return (
            "the lake holds no ticks yet: `tickstore ingest replay FILES` then `tickstore sink --until-idle`"
        )
    utc = "%Y-%m-%d %H:%M:%S"
    return f"the lake's ticks run from {first.astimezone(UTC):{utc}} to {last.astimezone(UTC):{utc}} UTC"
