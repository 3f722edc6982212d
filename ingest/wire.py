"""Turn raw wire messages into the normalized tick schema, by running ``wire.sql`` inside DuckDB."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources

import duckdb
import pyarrow as pa

WIRE_SQL = resources.files("ingest").joinpath("wire.sql").read_text()

RAW_SCHEMA = pa.schema(
    [
        ("src_topic", pa.string()),
        ("src_partition", pa.int32()),
        ("src_offset", pa.int64()),
        ("kafka_time", pa.timestamp("ms", tz="UTC")),
        ("payload", pa.string()),
        ("raw", pa.binary()),
        ("pre_reason", pa.string()),
    ]
)


def precheck(value: bytes | None, max_bytes: int) -> tuple[str | None, str | None]:
    """Return (text, None) for a message worth parsing, or (None, reason) for one rejected as bytes.

    DuckDB strings must be valid UTF-8 and a huge message would only waste the JSON parser, so
    these two checks happen before SQL sees the payload.
    """
    if value is None:
        return None, "empty message (no value)"
    if len(value) > max_bytes:
        return None, f"message too large: {len(value)} bytes (limit {max_bytes})"
    try:
        return value.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"invalid UTF-8 at byte {exc.start}"


def raw_table(
    topics: Sequence[str | None],
    partitions: Sequence[int | None],
    offsets: Sequence[int | None],
    times_ms: Sequence[int | None],
    values: Sequence[bytes | None],
    max_bytes: int,
) -> pa.Table:
    """An Arrow ``raw_batch`` table for ``wire.sql``: one row per message, in columns."""
    payloads: list[str | None] = []
    raws: list[bytes | None] = []
    reasons: list[str | None] = []
    for value in values:
        text, reason = precheck(value, max_bytes)
        payloads.append(text)
        raws.append(value if reason is not None else None)
        reasons.append(reason)
    return pa.table(
        [
            pa.array(topics, pa.string()),
            pa.array(partitions, pa.int32()),
            pa.array(offsets, pa.int64()),
            pa.array(times_ms, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            pa.array(payloads, pa.string()),
            pa.array(raws, pa.binary()),
            pa.array(reasons, pa.string()),
        ],
        schema=RAW_SCHEMA,
    )


# Decimal strings to decimals, exactly or not at all (NULL, which wire.sql rejects with a reason).
# Prices and sizes are DECIMAL(18, 8): Coinbase quotes at most 8 decimals, and a 64-bit decimal casts
# to DOUBLE 25x faster than a 128-bit one, which every feature query pays. The direct cast is taken for
# plain strings with at most 8 fractional digits; anything else (exponents, more digits) goes through a
# wide cast and is kept only if narrowing loses nothing. volume_24h can exceed 10^10: DECIMAL(38, 8).
# No slow cast may appear twice: the optimizer hoists repeated expressions and evaluates them for
# every row, which defeats the lazy coalesce (measured: 8 us a value instead of 0.07).
EXACT_DECIMAL_MACRO = """
CREATE OR REPLACE TEMP MACRO exact_decimal(s) AS coalesce(
    CASE WHEN strlen(s) - coalesce(nullif(strpos(s, '.'), 0), strlen(s)) <= 8
              AND NOT contains(lower(s), 'e')
         THEN try_cast(s AS DECIMAL(18, 8)) END,
    CASE WHEN try_cast(s AS DECIMAL(38, 18)) = try_cast(s AS DECIMAL(18, 8))
         THEN try_cast(s AS DECIMAL(18, 8)) END);
CREATE OR REPLACE TEMP MACRO exact_wide_decimal(s) AS coalesce(
    exact_decimal(s)::DECIMAL(38, 8),
    CASE WHEN strlen(s) - coalesce(nullif(strpos(s, '.'), 0), strlen(s)) <= 8
              AND NOT contains(lower(s), 'e')
         THEN try_cast(s AS DECIMAL(38, 8)) END);
"""


# Rejected rows with their raw payload, found again by Kafka position (rejects are few, so the join
# builds on them and only probes the batch).
REJECTS_SELECT = """
SELECT p.src_topic, p.src_partition, p.src_offset, p.kafka_time, p.ticker_index, p.reason,
       coalesce(r.raw, encode(r.payload)) AS payload
FROM parsed p JOIN raw_batch r USING (src_topic, src_partition, src_offset)
WHERE p.kind = 'reject'
"""
REJECTS_SQL = f"CREATE OR REPLACE TEMP TABLE parsed_rejects AS {REJECTS_SELECT}"  # noqa: S608 - fixed SQL


def parse(con: duckdb.DuckDBPyConnection, raw: pa.Table) -> None:
    """Parse ``raw`` into the temp tables ``parsed`` (see wire.sql) and ``parsed_rejects``."""
    con.execute(EXACT_DECIMAL_MACRO)
    con.register("raw_batch", raw)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE parsed AS {WIRE_SQL}")  # noqa: S608 - fixed SQL file
        con.execute(REJECTS_SQL)
    finally:
        con.unregister("raw_batch")


# Optimizers that plan from the data's statistics. A prepared plan outlives the batch it was planned on,
# so it must not depend on it: planned on an empty batch, statistics propagation folded every payload
# to NULL and every later message came out "invalid JSON" (seen while building PreparedParser).
DATA_DEPENDENT_OPTIMIZERS = ("statistics_propagation", "compressed_materialization")


class PreparedParser:
    """``parse`` for a stream of small batches: wire.sql planned once per connection, not per batch.

    Planning wire.sql costs ~10 ms and running it on a few messages ~1 ms, so the per-batch plan was
    most of a one-message batch's parse (measured: 16 ms against 7 ms with this). The results are the
    same tables from the same SQL; big batches are better served by ``parse`` (copying them into the
    raw table costs more than the plan: 100,000 messages took ~25% longer this way).

    The connection keeps the data-dependent optimizers off for good: DuckDB re-plans a prepared
    statement after a catalog change on its connection (with a table registered per batch the
    prepared parse cost as much as planning it), and a re-plan with them on would fit the plan to
    whatever batch is in hand.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        row = con.execute("SELECT current_setting('disabled_optimizers')").fetchone()
        disabled = {o.strip() for o in (row[0] if row else "").split(",") if o.strip()}
        disabled.update(DATA_DEPENDENT_OPTIMIZERS)
        con.execute(f"SET disabled_optimizers = '{','.join(sorted(disabled))}'")  # fixed names
        con.execute(EXACT_DECIMAL_MACRO)
        con.register("raw_batch_init", RAW_SCHEMA.empty_table())
        con.execute("CREATE OR REPLACE TEMP TABLE raw_batch AS FROM raw_batch_init")
        con.unregister("raw_batch_init")
        con.execute(f"CREATE OR REPLACE TEMP TABLE parsed AS {WIRE_SQL} LIMIT 0")  # noqa: S608 - fixed SQL
        con.execute(f"CREATE OR REPLACE TEMP TABLE parsed_rejects AS {REJECTS_SELECT} LIMIT 0")  # noqa: S608
        con.execute(f"PREPARE tickstore_wire_parse AS INSERT INTO parsed {WIRE_SQL}")  # noqa: S608
        con.execute(f"PREPARE tickstore_wire_rejects AS INSERT INTO parsed_rejects {REJECTS_SELECT}")  # noqa: S608

    def __call__(self, raw: pa.Table) -> None:
        """Parse ``raw`` into the temp tables ``parsed`` and ``parsed_rejects``, as ``parse`` does."""
        con = self.con
        con.execute("DELETE FROM raw_batch; DELETE FROM parsed; DELETE FROM parsed_rejects")
        # a relation, not a registered view: registering is a catalog change, which forces a re-plan
        con.from_arrow(raw).insert_into("raw_batch")
        con.execute("EXECUTE tickstore_wire_parse")
        con.execute("EXECUTE tickstore_wire_rejects")


def lines_table(lines: Sequence[bytes], source: str = "file") -> pa.Table:
    """Archive or recording lines as a raw table (no Kafka position: the line number stands in as offset)."""
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    n = len(lines)
    values = [line.rstrip(b"\r\n") for line in lines]
    return raw_table([source] * n, [0] * n, range(n), [now_ms] * n, values, 1 << 30)


def parse_lines(con: duckdb.DuckDBPyConnection, lines: Sequence[bytes], source: str = "file") -> None:
    """Parse archive or recording lines into ``parsed`` and ``parsed_rejects``."""
    parse(con, lines_table(lines, source))
