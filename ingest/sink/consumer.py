"""`tickstore sink`: a consumer-group member micro-batching ``ticks.raw`` into the DuckLake."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import TypeVar

import duckdb
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from ingest import kafka, signals
from ingest.fetch_watch import FetchWatch
from ingest.membership import KeptInGroup
from ingest.sink import dlq, fresh_lake
from ingest.sink.compaction import compact, inline_small_writes
from ingest.sink.lock_wait import LockWait, StoppedMidBatch
from ingest.sink.standing import Standing
from ingest.sink.stats import SinkStats
from ingest.sink.writer import BatchResult, LakeWriter
from tickstore import catalog, lake, tables
from tickstore.settings import Settings

log = logging.getLogger("tickstore.sink")
T = TypeVar("T")

TRANSIENT_RETRIES = 5
# librdkafka's default: a sink gains nothing from a shorter one. Longer when the broker can't answer a
# fetch within it (ingest/fetch_watch.py): an embedded Tansu holding days of a live feed.
FETCH_WAIT_MS = 500


class Sink:
    """Consumes ``settings.topic_raw`` and commits Kafka offsets only after the lake commit."""

    def __init__(self, settings: Settings, *, until_idle: bool = False) -> None:
        self.settings = settings
        self.until_idle = until_idle
        self.stats = SinkStats()
        self._buffer: list[Message] = []
        self._buffer_since = 0.0
        self._stop = False
        self._con: duckdb.DuckDBPyConnection | None = None
        self._writer: LakeWriter | None = None
        self._dlq: Producer | None = None
        self._last_compact = time.monotonic()
        self._last_log = time.monotonic()
        self._logged_ticks = 0
        self._last_commit: str = "never"
        self._watch = FetchWatch(
            settings,
            FETCH_WAIT_MS,
            who="sink",
            log=log,
            falling_behind="the lake is falling behind the topic",
            what_to_do="A feed that runs for days wants a real Kafka (TICKSTORE_KAFKA_BOOTSTRAP). With "
            "this one restarted, `tickstore ingest replay` of the live feed's archive "
            f"({settings.archive_dir}) adds what the lake lacks: ticks it has are skipped",
        )
        self._standing = Standing(settings, self._watch, self.stats)
        self._kept: KeptInGroup | None = None  # the consumer, polled while a write waits

    # -- lifecycle -------------------------------------------------------------------------------
    def stop(self, *_: object) -> None:
        """Ask the loop to flush, commit and return (SIGTERM / SIGINT handler)."""
        self._stop = True

    def run(self) -> SinkStats:
        """Consume until stopped (or caught up, with ``until_idle``); returns the totals."""
        s = self.settings
        con = lake.connect(s)
        inline_small_writes(con, s.sink_inline_rows)  # again at each compaction, should this fail
        self._use_lake(con)
        kafka.ensure_topics(s)  # first: without a broker, say so before any client starts retrying
        fresh_lake.say_what_an_empty_lake_misses(s, con)
        self._dlq = kafka.producer(s)
        self._watch.fit_to_broker()
        self._consumer = self._subscribe(self._watch.wait_ms)
        previous = signals.install(self.stop, "sink")
        idle_since: float | None = None
        log.info(
            "sink: consuming %s from %s as group %s%s",
            s.topic_raw,
            s.bootstrap,
            s.sink_group,
            kafka.join_note(s),
        )
        try:
            while not self._stop:
                room = max(1, s.sink_batch_rows - len(self._buffer))
                messages = self._consumer.consume(num_messages=min(room, 10_000), timeout=0.1)
                if self._kept is not None:
                    self._kept.polled()
                self._watch.read(messages)
                for msg in messages:
                    err = msg.error()
                    if err is None:
                        if not self._buffer:
                            self._buffer_since = time.monotonic()
                            if self.stats.first_message is None:
                                self.stats.first_message = self._buffer_since
                        self._buffer.append(msg)
                    elif err.code() != KafkaError._PARTITION_EOF:
                        log.warning("sink: kafka error %s", err)
                if self._buffer and (
                    len(self._buffer) >= s.sink_batch_rows
                    or (time.monotonic() - self._buffer_since) * 1000 >= s.sink_batch_ms
                ):
                    self._flush()
                self._periodic()
                if self._watch.back_after_restart(messages):
                    self._flush()  # landed and committed before the consumer is made again
                    self._resubscribe(self._watch.first_wait_ms)
                    idle_since = None
                elif (grown := self._watch.outgrown(self._consumer)) is not None:
                    self._flush()
                    self._resubscribe(grown)
                    idle_since = None
                elif messages:
                    idle_since = None
                elif not self._buffer and self._watch.stalled(self._consumer):
                    self._resubscribe(self._watch.next_wait_ms())
                    idle_since = None
                elif self.until_idle:
                    idle_since = idle_since or time.monotonic()
                    if not self._buffer:
                        if self._standing.idle_enough(self._consumer, time.monotonic() - idle_since):
                            break
                    elif self._standing.caught_up(self._consumer, time.monotonic() - idle_since):
                        # the rest of the topic is buffered: a run with TICKSTORE_SINK_BATCH_MS=60000
                        # sat a minute at lag 0 before writing it, and stopping
                        self._flush()
            self._flush()
        finally:
            signals.restore(previous)
            self._consumer.close()
            if self._dlq is not None:
                self._dlq.flush(10)
                self._dlq = None  # librdkafka's client goes with its last reference: none outlives run()
            if self._con is not None:
                self._con.close()
        self._log_summary()
        return self.stats

    def _use_lake(self, con: duckdb.DuckDBPyConnection) -> None:
        """Write through ``con`` from now on."""
        # The sink reads a data file about once (to merge it, or the newest to drop re-delivered
        # ticks); DuckDB's file cache kept ~110 KB for each small file merged: ~10 GB a day of a
        # live feed's one-second files, until DuckDB's memory limit (80% of the machine's).
        con.execute("SET enable_external_file_cache = false")
        self._con = con
        self._writer = LakeWriter(con, self.settings.sink_max_tick_bytes)
        self._catalog = lake.catalog_identity(self.settings)

    def _check_catalog(self) -> None:
        """Stop, committing nothing, where the lake's catalog was removed under the sink (`rm -r
        .tickstore/lake` to start over): it went on writing batches into the removed file, their
        offsets committed, and died at the first write that opened the path anew."""
        if lake.catalog_identity(self.settings) != self._catalog:
            where = self.settings.lake_catalog
            raise lake.LakeError(
                f"the lake at {where.parent} was removed while the sink ran (its catalog {where.name} is "
                f"gone or another). Nothing of this batch was committed: its messages stay in "
                f"{self.settings.topic_raw}. Started again, the sink makes a new lake there and goes on "
                "from its committed offsets; to load the whole topic into it, start it under another "
                "TICKSTORE_SINK_GROUP"
            )

    def _reopen_lake(self) -> None:
        """Move to a new DuckDB instance of the lake, so that what the old one gathered is freed."""
        try:
            con = lake.reopen(self.settings)
        except (duckdb.Error, lake.LakeError) as exc:  # the open one still writes
            log.warning("sink: could not open the lake anew, going on with the open connection: %s", exc)
            return
        old = self._con
        self._use_lake(con)
        if old is not None:
            old.close()

    def _resubscribe(self, wait_ms: int) -> None:
        """The consumer closed (nothing buffered: its offsets are committed) and made again with ``wait_ms``."""
        self._consumer.close()
        # neither idle nor stalled before the new member had the time to join
        self._watch.waited(wait_ms, grace_s=self.settings.rebalance_timeout_ms / 1000)
        self._consumer = self._subscribe(wait_ms)

    def _subscribe(self, wait_ms: int) -> Consumer:
        """A member of the sink's group on ``topic_raw``, fetching with a wait of ``wait_ms``."""
        s = self.settings
        consumer = kafka.consumer(
            s, s.sink_group, **{"fetch.wait.max.ms": wait_ms, "error_cb": self._watch.on_error}
        )
        consumer.subscribe([s.topic_raw], on_revoke=self._on_revoke)
        self._kept = KeptInGroup(consumer, self.settings.rebalance_timeout_ms)
        return consumer

    # -- batches ---------------------------------------------------------------------------------
    def _flush(self) -> None:
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        try:
            # in a thread too: half a million messages take ~1 s to gather into a table
            gather = functools.partial(kafka.raw_table, batch, self.settings.sink_max_tick_bytes)
            raw = self._in_group(gather, "tickstore-sink-gather")
            result = self._write_safely(raw)
        except StoppedMidBatch as stopped:
            # Offsets stay where they were, so nothing is lost: the next run reads the batch again
            # (and what part of it a bisection may have committed is deduplicated by tick id).
            self.stats.left_uncommitted += len(batch)
            log.warning(
                "sink: stopped while %s: %d messages were not committed and will be read again by the "
                "next run",
                stopped.why,
                len(batch),
            )
            return
        finally:
            self._take_held()
        self._check_catalog()  # before the offsets: a batch written into a removed catalog is lost
        dlq.publish_rejects(self._dlq, self.settings.topic_dlq, result)
        self._commit_offsets(batch)
        self.stats.total.add(result)
        self.stats.batches += 1
        self.stats.commit_latencies.append(result.commit_s)
        self.stats.last_commit = time.monotonic()
        self._last_commit = time.strftime("%H:%M:%S")

    def _write_safely(self, raw) -> BatchResult:  # type: ignore[no-untyped-def]
        """Commit ``raw``; retry transient lake errors, and bisect a batch that keeps failing so that
        one pathological message is rejected with the error instead of stopping the sink."""
        assert self._writer is not None
        last: duckdb.Error | None = None
        failures, attempt, lock = 0, 0, LockWait(self.settings.lake_catalog)
        while failures < TRANSIENT_RETRIES:
            try:
                return self._in_group(functools.partial(self._writer.write, raw), "tickstore-sink-write")
            except duckdb.Error as exc:
                last, attempt = exc, attempt + 1
                if lake.is_locked(exc):  # another writer's commit: wait, don't bisect
                    lock.locked(exc, attempt, self._stop)
                else:
                    failures += 1
                    if self._stop:  # retries and a bisection to single messages could take minutes
                        raise StoppedMidBatch(f"a lake write failed ({exc})") from exc
                    log.warning("sink: lake write failed (attempt %d): %s", attempt, exc)
                self._wait(min(0.1 * 2 ** min(attempt - 1, 5), 2.0))
        assert last is not None
        self._check_catalog()  # removed under it: the table check below died in DuckDB's traceback
        if (trouble := lake.cannot_write(last)) is not None:
            # The machine, not a message: bisecting would fail the same way down to single ticks
            # and file good ones as rejects. Offsets stay uncommitted, so nothing is lost.
            raise lake.LakeError(
                f"cannot write the lake at {self.settings.lake_catalog.parent}: {trouble} ({last}). "
                f"Nothing of this batch was committed: its messages stay in {self.settings.topic_raw}, "
                "and the sink resumes from them when started again"
            ) from last
        if (problem := tables.table_problem(self._writer.con)) is not None:
            # The table, not a message (changed by hand): every write fails alike, and bisecting
            # took seconds a message, filing good ticks as rejects. Nothing is committed.
            table, what = problem
            raise lake.LakeError(
                f"cannot write {what} ({last}). Nothing of this batch was committed: its messages stay "
                f"in {self.settings.topic_raw}, and the sink resumes from them once the table is back: "
                f"{tables.put_back(self._writer.con, table)}"
            ) from last
        if raw.num_rows == 1:
            return self._writer.reject_whole(raw, f"sink error: {last}"[:500])
        half = raw.num_rows // 2
        result = self._write_safely(raw.slice(0, half))
        result.add(self._write_safely(raw.slice(half)))
        return result

    def _in_group(self, work: Callable[[], T], name: str) -> T:
        """``work()`` in a thread, the consumer polled, paused, once half of max.poll.interval.ms has
        passed since its last poll: a big batch's write past it took the sink out of its group, and it
        read the whole batch again as duplicates."""
        return self._kept.run(work, name) if self._kept is not None else work()

    def _wait(self, seconds: float) -> None:
        """Sleep ``seconds`` before a write is tried again, polling the consumer, paused, meanwhile: a
        catalog locked for 15 s took the sink out of its group past max.poll.interval.ms (its offset
        commit failed, and it joined again to read the batch a second time)."""
        until = time.monotonic() + seconds
        while True:
            if self._kept is not None:
                self._kept.keep()
            left = until - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.2))

    def _take_held(self) -> None:
        """Buffer what the consumer's polls during a write's wait returned (of partitions assigned meanwhile)."""
        for msg in self._kept.release() if self._kept is not None else []:
            err = msg.error()
            if err is None:
                if not self._buffer:
                    self._buffer_since = time.monotonic()
                self._buffer.append(msg)
            elif err.code() != KafkaError._PARTITION_EOF:
                log.warning("sink: kafka error %s", err)

    def _commit_offsets(self, batch: list[Message]) -> None:
        try:
            self._consumer.commit(offsets=kafka.next_offsets(batch), asynchronous=False)
        except KafkaException as exc:
            # The lake already has the rows; a re-delivery after this is deduplicated.
            log.warning("sink: offset commit failed (rows are safe, re-delivery is deduplicated): %s", exc)

    def _on_revoke(self, consumer, partitions) -> None:  # type: ignore[no-untyped-def]
        # Flush before losing the partitions so the next owner starts after our rows.
        self._flush()

    # -- housekeeping ----------------------------------------------------------------------------
    def _periodic(self) -> None:
        now = time.monotonic()
        due = now - self._last_compact >= self.settings.compact_every_s
        if due and self._con is not None and not self._stop:  # stopping: left to the next run
            self._compact(self._con)
            self._last_compact = time.monotonic()  # from its end: a long pass is not followed by another
            if not self._stop:
                # what DuckDB gathered over the commits since (caches, DuckLake's metadata) goes with it
                self._reopen_lake()
        if now - self._last_log >= self.settings.log_every_s:
            rate = (self.stats.total.ticks - self._logged_ticks) / (now - self._last_log)
            self._last_log, self._logged_ticks = now, self.stats.total.ticks
            log.info(
                "sink: %s rows/s, lag %s, %s ticks, %s rejected, last commit %s",
                f"{rate:,.0f}",
                self._standing.lag(self._consumer),
                f"{self.stats.total.ticks:,}",
                self.stats.total.rejects,
                self._last_commit,
            )

    def _compact(self, con: duckdb.DuckDBPyConnection) -> None:
        """Compact the lake in a thread of its own while this one keeps the consumer in its group.

        A top tier's merge (16 files of 16-256 MiB: 285 MiB took 1.8 s here, a full one holds 4 GiB)
        outlasts max.poll.interval.ms: run in the loop, it took the sink out of its group, and the
        embedded broker holds a join back a whole rebalance timeout. A stop interrupts the pass: its
        transaction is rolled back.
        """
        self._flush()  # nothing buffered: a revocation heard during the pass has nothing to write

        def work() -> None:
            inline_small_writes(con, self.settings.sink_inline_rows)
            compact(con, self.settings.snapshot_retention_days)

        def interrupt_if_stopping() -> None:
            if self._stop:  # again each time: one between two statements of the pass interrupts none
                con.interrupt()

        failed: Exception | None = None
        try:
            assert self._kept is not None
            self._kept.run(work, "tickstore-compaction", quiet_s=0.0, each=interrupt_if_stopping)
        except Exception as exc:  # said below, or raised
            failed = exc
        self._take_held()
        if failed is None:
            log.info("sink: compacted the lake")
        elif isinstance(failed, duckdb.InterruptException):
            log.info("sink: stopped during a compaction: it was left undone, the next run compacts")
        elif isinstance(failed, duckdb.Error):  # ticks go on landing; a data file removed by hand is named
            said = catalog.missing_data_file(self.settings, str(failed)) or failed
            log.warning("sink: compaction failed, will retry: %s", said)
        else:
            raise failed

    def _log_summary(self) -> None:
        log.info("sink: stopped after %s", self.stats.summary())
