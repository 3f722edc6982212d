"""`tickstore stream`: keep the online store current from Kafka, with the feature views' own SQL.

A consumer group of its own reads ``ticks.raw``. Each micro-batch (a few ms of messages) is parsed and
deduplicated by the sink's own code into an in-memory tail of recent ticks; then, for the products it
touched, every online feature view's SQL file runs over just the ticks its newest row needs, and the
rows go to Feast's online store through its write API. No batch job, no second definition of a feature.
"""

from __future__ import annotations

import gc
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from feast import FeatureView

from ingest import kafka, offsets, refill, signals, stream_views, tail, wire
from ingest.fetch_watch import FetchWatch
from ingest.membership import KeptInGroup
from ingest.sink.writer import LakeWriter
from ingest.stream_stats import StreamBatch, StreamStats
from tickstore import lake
from tickstore.settings import Settings
from tickstore.text import without_passwords
from tickstore_feast import sqlite_online
from tickstore_feast.config import registry_stamp
from tickstore_feast.online import (
    CLOCK_VIEW,
    OnlineStoreUnavailable,
    RedisRestarts,
    check_online_store,
    fail_fast,
    latest_rows,
    write_rows,
)
from tickstore_feast.repo import feature_store
from tickstore_feast.source import DuckDBSource

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 5.0
REGISTRY_CHECK_S = 1.0  # a stat of the registry file; it is re-read only when that changed
# fetch whatever has arrived, waiting at most this for more (latency over throughput; longer when the
# broker can't answer within it: ingest/fetch_watch.py)
FETCH_WAIT_MS = 5


class OnlineStream:
    """Consumes ``settings.topic_raw`` as ``settings.stream_group`` and writes fresh features online."""

    def __init__(
        self,
        settings: Settings,
        *,
        until_idle: bool = False,
        on_batch: Callable[[StreamBatch], None] | None = None,
    ) -> None:
        self.settings = settings
        self.until_idle = until_idle
        self.on_batch = on_batch
        self.stats = StreamStats()
        self._stop = False
        self.store = feature_store(settings)
        # a write to a Redis that is down fails at once, not after redis-py's 5-10 s of retries: the
        # stream waits it out itself (_write), staying in its consumer group meanwhile
        fail_fast(self.store)
        self._registry = Path(self.store.config.registry.path)
        self._registry_mtime = registry_stamp(self._registry)
        self._last_registry_check = time.monotonic()
        self._online_file = sqlite_online.FileFollower(self.store)
        self._redis_runs = RedisRestarts(self.store)
        self.con = tail.open_tail()
        # batches are a few messages: wire.sql planned once, not per batch (the sink's big batches aren't)
        self.writer = LakeWriter(self.con, settings.sink_max_tick_bytes, wire.PreparedParser(self.con))
        # Each query is small: one thread apiece beats DuckDB splitting a few thousand rows across cores.
        self.con.execute("SET threads = 1")
        self._cursors: dict[str, duckdb.DuckDBPyConnection] = {}
        self._use_views(stream_views.online_views(self.store))
        # a thread per view, started as needed (the registry can add views while the stream runs)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="stream-view")
        self._last_prune = time.monotonic()
        self._last_log = time.monotonic()
        # per partition: the committed offset a restart re-reads up to into the tail only (see _on_assign)
        self._warm_until: dict[tuple[str, int], int] = {}
        self._tail_starts: refill.TailStarts | None = None  # made by run(), closed at its end
        self._kept: KeptInGroup | None = None  # the consumer, polled while a write waits (made by run())
        self._held: list[Message] = []  # what those polls returned: the next batch

    def _use_views(self, views: list[FeatureView]) -> None:
        """Compute ``views`` from now on; the tail reaches back twice over the widest window."""
        self.views = views
        self.sources: dict[str, DuckDBSource] = {v.name: v.batch_source for v in views}  # type: ignore[misc]
        widest = max((src.lookback for src in self.sources.values()), default=timedelta(0))
        self.keep = 2 * widest + timedelta(seconds=1)
        for name in self.sources.keys() - self._cursors.keys():
            cursor = self.con.cursor()
            lake.tune(cursor)  # a cursor is a session: it inherits no settings
            cursor.execute("SET TimeZone = 'UTC'")
            self._cursors[name] = cursor

    def _follow_registry(self) -> None:
        """Take up feature views changed in the registry (`tickstore feast apply` of an edited SQL file).

        The stream read the views once at start, so after an edit it went on serving the old SQL while
        training sets were built from the new one: the skew the one definition is there to prevent.
        """
        stamp = registry_stamp(self._registry)
        if stamp == self._registry_mtime:
            return
        self._registry_mtime = stamp
        views, trouble = stream_views.reread(self.store, self._registry, stamp)
        if not views and self.views:
            # an empty one is also what Feast's apply writes first, where there was none, for the
            # seconds it takes to read feature_repo/: the stream computed nothing meanwhile
            names = ", ".join(v.name for v in self.views)
            log.warning("stream: %s; computing %s as registered before meanwhile", trouble, names)
            return

        before, after = stream_views.definitions(self.views), stream_views.definitions(views)
        if before != after:
            changed = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
            log.info(
                "stream: feature views changed in the registry (%s): computing them as defined now",
                ", ".join(changed),
            )
            self._use_views(
                [v for v in views if v.name not in changed or stream_views.computable(self.con, v)]
            )

    def stop(self, *_: object) -> None:
        """Ask the loop to finish its batch and return (SIGTERM / SIGINT handler)."""
        self._stop = True

    def run(self) -> StreamStats:
        """Consume until stopped (or quiet for ``sink_idle_ms`` with ``until_idle``)."""
        s = self.settings
        kafka.ensure_topics(s)
        check_online_store(self.store)  # fail at once, saying what to do, rather than at the first batch
        watch = self._fetch_watch(FETCH_WAIT_MS)
        watch.fit_to_broker()
        # made before the consumer: its assignment reads them
        tail_starts = self._tail_starts = refill.TailStarts(s)
        consumer = self._consumer(watch)
        # Feast and pandas leave hundreds of thousands of long-lived objects; a full garbage collection
        # walking them stalls a batch for a quarter of a second. They live as long as the stream.
        gc.collect()
        gc.freeze()
        previous = signals.install(self.stop, "stream")
        last_message: float | None = None
        join_limit = 3 * s.rebalance_timeout_ms / 1000 + 30
        idle_s, next_ask = s.sink_idle_ms / 1000, 0.0
        log.info(
            "stream: %s -> online store (%s), views %s%s",
            s.topic_raw,
            s.online_store,
            self.view_names,
            kafka.join_note(s),
        )
        try:
            while not self._stop:
                # Block for the first message only, then take whatever else has already arrived: while
                # one batch is processed the next builds up, so batches grow with the load by themselves.
                held, self._held = self._held, []
                first = None if held else consumer.poll(timeout=s.stream_batch_ms / 1000)
                messages = held or (
                    [] if first is None else [first, *consumer.consume(s.stream_batch_rows - 1, timeout=0)]
                )
                watch.read(messages)
                good: list[Message] = []
                warm: list[Message] = []
                for msg in messages:
                    err = msg.error()
                    if err is None:
                        processed_before = self._warm_until.get((msg.topic() or "", msg.partition() or 0), -1)
                        (warm if (msg.offset() or 0) < processed_before else good).append(msg)
                    elif err.code() != KafkaError._PARTITION_EOF:
                        log.warning("stream: kafka error %s", err)
                if warm:
                    self._warm(warm)
                    tail_starts.read(warm)
                    last_message = time.monotonic()
                if good:
                    self._process(good)
                    # the processed partitions only: one still refilling its tail would move back
                    consumer.commit(offsets=kafka.next_offsets(good), asynchronous=True)
                    tail_starts.read(good)
                    tail_starts.commit(self.keep)
                    last_message = time.monotonic()
                else:
                    if self.until_idle:
                        now = time.monotonic()
                        if last_message is not None and (now - last_message) * 1000 >= s.sink_idle_ms:
                            break
                        if last_message is None and now - self.stats.started > join_limit:
                            break
                        # nothing to read at all (an empty topic waited out the join limit, ~50 s);
                        # asked at most once a second: each asks the broker on a connection apart
                        if last_message is None and now - self.stats.started >= idle_s and now >= next_ask:
                            next_ask = now + 1.0
                            if offsets.read_to_end(consumer, s):
                                break
                    if not messages and watch.stalled(consumer):
                        consumer = self._reconnect(consumer, watch, watch.next_wait_ms())
                        last_message = time.monotonic() + s.rebalance_timeout_ms / 1000
                if watch.back_after_restart(messages):
                    consumer = self._reconnect(consumer, watch, watch.first_wait_ms)
                    last_message = time.monotonic() + s.rebalance_timeout_ms / 1000
                elif (grown := watch.outgrown(consumer)) is not None:
                    consumer = self._reconnect(consumer, watch, grown)
                    last_message = time.monotonic() + s.rebalance_timeout_ms / 1000
                self._periodic()
        finally:
            signals.restore(previous)
            consumer.close()
            tail_starts.close(self.keep)
            self._tail_starts = None
            self._pool.shutdown()
        return self.stats

    def _fetch_watch(self, wait_ms: int) -> FetchWatch:
        """A watch on the stream's fetches, which start with ``wait_ms``."""
        return FetchWatch(
            self.settings,
            wait_ms,
            who="stream",
            log=log,
            falling_behind="online features are going stale",
            what_to_do="An embedded broker holding days of messages: restart it once the sink has "
            "caught up (it keeps nothing), or use a real Kafka",
        )

    def _reconnect(self, consumer: Consumer, watch: FetchWatch, wait_ms: int) -> Consumer:
        """``consumer`` closed (its processed offsets were committed as it went) and made again with ``wait_ms``."""
        consumer.close()
        # neither idle nor stalled before the new member had the time to join
        watch.waited(wait_ms, grace_s=self.settings.rebalance_timeout_ms / 1000)
        return self._consumer(watch)

    def _consumer(self, watch: FetchWatch) -> Consumer:
        """A stream consumer fetching whatever has arrived, waiting at most ``watch.wait_ms`` for more."""
        s = self.settings
        consumer = kafka.consumer(
            s,
            s.stream_group,
            **{"fetch.wait.max.ms": watch.wait_ms, "fetch.min.bytes": 1, "error_cb": watch.on_error},
        )
        consumer.subscribe([s.topic_raw], on_assign=self._on_assign)
        self._kept = KeptInGroup(consumer, self.settings.rebalance_timeout_ms)
        return consumer

    @property
    def view_names(self) -> list[str]:
        return [v.name for v in self.views]

    def _ingest(self, raw: pa.Table) -> tuple[int, set[str], int]:
        """Add ``raw``'s new ticks to the tail; (new ticks, products touched, messages rejected).

        A batch that fails to parse is halved until the failing message stands alone and is skipped:
        one pathological record costs only itself (the sink keeps it in ticks_rejected and the DLQ).
        """
        try:
            result = self.writer.write(raw)
        except (duckdb.Error, ValueError, TypeError) as exc:
            if raw.num_rows == 1:
                topic, partition, offset = (
                    raw.column(c)[0].as_py() for c in ("src_topic", "src_partition", "src_offset")
                )
                log.warning("stream: skipped %s[%s]@%s: %s", topic, partition, offset, exc)
                return 0, set(), 1
            mid = raw.num_rows // 2
            n1, p1, r1 = self._ingest(raw.slice(0, mid))
            n2, p2, r2 = self._ingest(raw.slice(mid))
            return n1 + n2, p1 | p2, r1 + r2
        if result.rejects:
            self.con.execute("DELETE FROM ticks_rejected")  # rejects are the sink's to keep
        if not result.ticks:
            return 0, set(), result.rejects
        products = {
            r[0]
            for r in self.con.execute("SELECT DISTINCT product_id FROM parsed WHERE kind = 'tick'").fetchall()
        }
        return result.ticks, products, result.rejects

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start each partition a tail's reach before its committed offset (ingest/refill.py)."""
        if self.stats.joined_ms is None:
            self.stats.joined_ms = time.time() * 1000
        starts = self._tail_starts
        marked, held = (starts.committed(partitions), starts.read_up_to()) if starts else ({}, {})
        self._warm_until.update(refill.rewind(consumer, partitions, self.keep, marked, held))

    def _warm(self, batch: list[Message]) -> None:
        """Refill the tail with messages processed before a restart; nothing goes online."""
        recent = refill.within_reach(batch, self.keep)
        if recent:
            self._ingest(kafka.raw_table(recent, self.settings.sink_max_tick_bytes))
        self.stats.warmed += len(batch)

    def _process(self, batch: list[Message]) -> None:
        raw = kafka.raw_table(batch, self.settings.sink_max_tick_bytes)
        new_ticks, touched, rejected = self._ingest(raw)
        self.stats.rejected += rejected  # not while warming: those were counted by the run before
        products = sorted(touched)
        rows = self._write_newest(products)
        freshness = self.stats.measure(
            [m.timestamp()[1] for m in batch if m.timestamp()[0]], time.time() * 1000
        )
        self.stats.messages += len(batch)
        self.stats.new_ticks += new_ticks
        self.stats.batches += 1
        if self.on_batch is not None:
            clock = rows.get(CLOCK_VIEW)
            latest = (
                {}
                if clock is None
                else dict(zip(clock["product_id"].to_pylist(), clock["event_time"].to_pylist(), strict=True))
            )
            self.on_batch(StreamBatch(len(batch), new_ticks, products, latest, rows, freshness))

    def _write_newest(self, products: list[str]) -> dict[str, pa.Table]:
        """Compute every view's newest row of each of ``products`` from the tail, and write them online."""
        rows: dict[str, pa.Table] = {}
        if products:
            # the views run side by side, each on its own cursor (DuckDB releases the GIL)
            computed = self._pool.map(
                lambda v: latest_rows(self._cursors[v.name], self.sources[v.name], products), self.views
            )
            for view, table in zip(self.views, computed, strict=True):
                self._write(view, table)
                self.stats.rows_written += table.num_rows
                rows[view.name] = table
        return rows

    def _follow_online_store(self) -> None:
        """Write each product's newest rows again where the online store lost them under the running
        stream: its SQLite file removed or replaced (the way to empty it: writes went on into the
        removed file, which no reader saw), or its Redis restarted (a quiet product stayed missing, or
        as old as Redis's last snapshot, until its next tick)."""
        try:
            reopened = self._online_file.reopened()
        except (sqlite3.Error, OSError) as exc:  # a full disk, say: the next second tries again
            log.warning("stream: the online store file cannot be made again (%s); retrying", exc)
            return
        if reopened:
            path = Path(self.store.config.online_store.path).resolve()
            lost = f"the online store file {path} was removed or replaced while the stream ran: writing to the one there now"
        elif self._redis_runs.restarted():
            where = without_passwords(self.settings.redis_url)
            lost = f"the Redis online store at {where} restarted while the stream ran: writing to it again"
        else:
            return
        log.warning("stream: %s, each product's newest rows first", lost)
        products = self.con.execute("SELECT DISTINCT product_id FROM ticks ORDER BY 1").fetchall()
        self._write_newest([p for (p,) in products])

    def _write(self, view: FeatureView, table: pa.Table) -> None:
        """Write a view's rows, waiting out an online store that is down, locked or full.

        The batch's offsets are committed only after its rows are written, so a stream stopped during
        the outage loses nothing: it re-reads the batch when it starts again. While it waits, its
        consumer is polled, paused, so that it stays in its group (ingest/membership.py).
        """
        delay = 0.5
        while True:
            try:
                write_rows(self.store, view, table)
                if self._kept is not None:  # resumes fetching after a wait; else nothing to do
                    self._held += self._kept.release()
                return
            except OnlineStoreUnavailable as exc:
                if self._stop:
                    raise
                log.warning("stream: %s; retrying in %.1f s", exc, delay)
                resume = time.monotonic() + delay
                while not self._stop and time.monotonic() < resume:
                    if self._kept is not None:
                        self._kept.keep()  # past max.poll.interval.ms the stream left its group
                    time.sleep(0.1)
                delay = min(2 * delay, 10.0)

    def _periodic(self) -> None:
        now = time.monotonic()
        if now - self._last_registry_check >= REGISTRY_CHECK_S:
            self._last_registry_check = now
            self._follow_registry()
            self._follow_online_store()
        if now - self._last_prune >= PRUNE_EVERY_S:
            self._last_prune = now
            tail.prune(self.con, self.keep)  # twice the widest window
        if now - self._last_log >= self.settings.log_every_s:
            self._last_log = now
            log.info("%s", self.stats.progress_line())
