"""Commit one micro-batch of raw messages to the lake: new ticks and rejects, idempotently, atomically."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from ingest import wire
from tickstore import lake

# Re-delivered messages (a restart after a crash, a second replay) must not add rows. Within the batch
# the first copy of a tick wins, a copy being the same product, event time and tick id as against the
# lake (by tick id alone, two ticks a batch held were one, and kept both when batches split them; the
# tick id first, as it tells nearly all rows apart: ~3 ms more a 100k rows than the tick id alone).
# Against the lake, the anti-join only reads the batch's time range, so DuckLake's per-file min/max
# statistics keep it to the few newest files. BY NAME: a table whose columns were renamed or moved by
# hand takes each value under its name or fails, never into a neighbour.
INSERT_TICKS = """
INSERT INTO ticks BY NAME
SELECT p.product_id, p.event_time, p.feed, p.sequence, p.tick_id, p.trade_id, p.side, p.last_size,
       p.price, p.best_bid, p.best_bid_size, p.best_ask, p.best_ask_size, p.volume_24h,
       p.src_topic, p.src_partition, p.src_offset, p.kafka_time, $now AS ingest_time
FROM (
    SELECT * FROM parsed WHERE kind = 'tick'
    QUALIFY row_number() OVER (
        PARTITION BY tick_id, event_time, product_id ORDER BY src_topic, src_partition, src_offset, ticker_index
    ) = 1
) p
ANTI JOIN (
    SELECT product_id, event_time, tick_id FROM ticks WHERE event_time BETWEEN $lo AND $hi
) t ON t.product_id = p.product_id AND t.event_time = p.event_time AND t.tick_id = p.tick_id
ORDER BY p.product_id, p.event_time
"""

# A rejected message is identified by its Kafka position (and ticker within it).
INSERT_REJECTS = """
INSERT INTO ticks_rejected BY NAME
SELECT r.src_topic, r.src_partition, r.src_offset, r.kafka_time, $now AS ingest_time, r.ticker_index,
       r.reason, r.payload
FROM parsed_rejects r
ANTI JOIN (
    SELECT src_topic, src_partition, src_offset, ticker_index FROM ticks_rejected
    WHERE src_offset BETWEEN $lo AND $hi
) t ON t.src_topic = r.src_topic AND t.src_partition = r.src_partition AND t.src_offset = r.src_offset
   AND coalesce(t.ticker_index, -1) = coalesce(r.ticker_index, -1)
"""

COUNTS = """
SELECT count(*) FILTER (kind = 'tick'), count(*) FILTER (kind = 'reject'),
       count(*) FILTER (kind = 'control'),
       min(event_time) FILTER (kind = 'tick'), max(event_time) FILTER (kind = 'tick'),
       min(src_offset) FILTER (kind = 'reject'), max(src_offset) FILTER (kind = 'reject')
FROM parsed
"""


@dataclass
class BatchResult:
    """What one lake commit did."""

    messages: int = 0
    ticks: int = 0  # new rows in `ticks`
    duplicates: int = 0  # ticks already in the lake (or twice in the batch)
    rejects: int = 0  # new rows in `ticks_rejected`
    controls: int = 0  # subscriptions / heartbeats, skipped
    commit_s: float = 0.0
    rejected: list[tuple[str, int, int, str, bytes]] | None = (
        None  # (topic, partition, offset, reason, payload)
    )

    def add(self, other: BatchResult) -> None:
        self.messages += other.messages
        self.ticks += other.ticks
        self.duplicates += other.duplicates
        self.rejects += other.rejects
        self.controls += other.controls
        self.commit_s += other.commit_s
        self.rejected = (self.rejected or []) + (other.rejected or [])


class LakeWriter:
    """Writes parsed micro-batches into the DuckLake ``ticks`` and ``ticks_rejected`` tables."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        max_tick_bytes: int,
        parser: Callable[[pa.Table], None] | None = None,
    ) -> None:
        self.con = con
        self.max_tick_bytes = max_tick_bytes
        # how raw messages become the temp tables `parsed` and `parsed_rejects` on ``con``
        self.parse = parser or (lambda raw: wire.parse(con, raw))

    def write(self, raw: pa.Table) -> BatchResult:
        """Parse and commit ``raw`` (a wire.RAW_SCHEMA table) as one lake snapshot."""
        started = time.perf_counter()
        con = self.con
        self.parse(raw)
        row = con.execute(COUNTS).fetchone()
        assert row is not None
        n_ticks, n_rejects, n_controls, lo, hi, rlo, rhi = row
        now = datetime.now(UTC)
        result = BatchResult(messages=raw.num_rows, controls=n_controls)
        con.execute("BEGIN TRANSACTION")
        try:
            if n_ticks:
                inserted = con.execute(INSERT_TICKS, {"now": now, "lo": lo, "hi": hi}).fetchone()
                result.ticks = int(inserted[0]) if inserted else 0
                result.duplicates = n_ticks - result.ticks
            if n_rejects:
                inserted = con.execute(INSERT_REJECTS, {"now": now, "lo": rlo, "hi": rhi}).fetchone()
                result.rejects = int(inserted[0]) if inserted else 0
            con.execute("COMMIT")
        except BaseException:
            lake.rollback(con)  # a failed COMMIT has rolled back already; keep its error, not ROLLBACK's
            raise
        if result.rejects:
            result.rejected = [
                (t, p, o, reason, bytes(payload) if payload is not None else b"")
                for t, p, o, reason, payload in con.execute(
                    "SELECT src_topic, src_partition, src_offset, reason, payload FROM parsed_rejects"
                ).fetchall()
            ]
        result.commit_s = time.perf_counter() - started
        return result

    def reject_whole(self, raw: pa.Table, reason: str) -> BatchResult:
        """Store every message of ``raw`` as rejected with ``reason`` (the last resort of bisection)."""
        marked = raw.set_column(
            raw.schema.get_field_index("pre_reason"),
            "pre_reason",
            pa.array([reason] * raw.num_rows, pa.string()),
        )
        # Keep the original bytes: the payload column goes back to raw bytes for these rows.
        payload = raw.column("payload").cast(pa.binary())
        raws = [
            r if r is not None else p
            for r, p in zip(raw.column("raw").to_pylist(), payload.to_pylist(), strict=True)
        ]
        marked = marked.set_column(marked.schema.get_field_index("raw"), "raw", pa.array(raws, pa.binary()))
        marked = marked.set_column(
            marked.schema.get_field_index("payload"), "payload", pa.nulls(raw.num_rows, pa.string())
        )
        return self.write(marked)
