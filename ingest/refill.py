"""Where a restarted stream starts reading, so that its in-memory tail holds whole windows again.

The tail lives in memory, so a restarted stream began with none: for the widest window's length after
every restart or deploy its online rows covered only the ticks read since, and the scorer served values
that training never saw. Each partition now starts a tail's reach before its committed offset; the
messages up to that offset (processed before) refill the tail without writing online rows again.

Where the reach begins comes from Kafka's offsets by time, and from the stream's own marks
(`TailStarts`), kept in the broker under a consumer group of their own: a broker that can't look
offsets up by time (Tansu answers its log's start) made every restart re-read whole partitions.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from datetime import timedelta

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from ingest import kafka
from tickstore.settings import Settings

log = logging.getLogger("ingest.stream")  # the stream's own lines: one logger to follow (and filter)


def rewind(
    consumer: Consumer,
    partitions: list[TopicPartition],
    reach: timedelta,
    marked: dict[tuple[str, int], int] | None = None,
    held: dict[tuple[str, int], int] | None = None,
) -> dict[tuple[str, int], int]:
    """Assign ``partitions`` to ``consumer``, each from ``reach`` before now when that is before its
    committed offset: by Kafka's offsets by time, or from where ``marked`` (`TailStarts.committed`)
    says the tail began, the later of the two (both are at or before its first message within reach;
    a mark past the committed offset is stale and ignored). A partition this process has itself read
    up to its committed offset (``held``, `TailStarts.read_up_to`) is not rewound: its tail is in
    memory (a reconnect, not a restart). Returns {(topic, partition): committed offset} of those
    rewound, the offset below which a message only refills the tail."""
    marked = marked or {}
    held = held or {}
    try:
        committed = consumer.committed(partitions, timeout=10)
        since_ms = int((time.time() - reach.total_seconds()) * 1000)
        starts = consumer.offsets_for_times(
            [TopicPartition(tp.topic, tp.partition, since_ms) for tp in committed], timeout=10
        )
    except KafkaException as exc:
        log.warning("stream: could not look up where to refill the tail from (%s): windows start empty", exc)
        return {}
    refill_until: dict[tuple[str, int], int] = {}
    rereading = 0
    for tp, start in zip(committed, starts, strict=True):
        if held.get((tp.topic, tp.partition), -1) >= tp.offset:
            continue  # read here up to where the group is: nothing the tail lacks
        begin = start.offset  # -1: nothing produced within reach, nothing to refill
        mark = marked.get((tp.topic, tp.partition), -1)
        if begin >= 0 and mark <= tp.offset:  # a mark past the committed offset is stale
            begin = max(begin, mark)
        if 0 <= begin < tp.offset:
            refill_until[(tp.topic, tp.partition)] = tp.offset
            rereading += tp.offset - begin
            tp.offset = begin
    if rereading:
        log.info("stream: re-reading up to %s processed messages to refill the windows", f"{rereading:,}")
    consumer.assign(committed)
    return refill_until


class TailStarts:
    """Where each partition's tail begins: the offset of its oldest message still within the tail's
    reach, committed (at most once a second) under a consumer group of its own,
    ``<stream group>.tail``, which only commits and never joins. `rewind` starts a restart there.

    A partition handed to another stream is still marked as it was read here (its reader marks it
    too): such a mark is earlier than the tail's start, never later, so it costs a longer refill at
    most. Forgetting it on revocation would lose the marks across the stream's own reconnects."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = kafka.consumer(settings, settings.stream_group + ".tail")
        # per partition: (second, offset) of the first message read of each newer second than the last
        self._seconds: dict[tuple[str, int], deque[tuple[int, int]]] = {}
        self._next: dict[tuple[str, int], int] = {}
        self._committed_at = 0.0

    def read(self, messages: list[Message]) -> None:
        """Note where ``messages`` (in offset order per partition) fall in time."""
        now_s = int(time.time())
        for m in messages:
            key = (m.topic() or "", m.partition() or 0)
            kind, ts_ms = m.timestamp()
            second = ts_ms // 1000 if kind else now_s
            seconds = self._seconds.setdefault(key, deque())
            # a message of an earlier or the same second is older than any later entry: covered by the
            # last one, which is dropped only once its whole second is out of reach
            if not seconds or second > seconds[-1][0]:
                seconds.append((second, m.offset() or 0))
            self._next[key] = (m.offset() or 0) + 1

    def commit(self, reach: timedelta, force: bool = False) -> None:
        """Commit each partition's tail start (its next offset when nothing read is within ``reach``)."""
        if not force and time.monotonic() - self._committed_at < 1.0:
            return
        self._committed_at = time.monotonic()
        since_s = time.time() - reach.total_seconds()
        offsets = []
        for key, seconds in self._seconds.items():
            while seconds and seconds[0][0] + 1 <= since_s:
                seconds.popleft()
            offsets.append(TopicPartition(*key, seconds[0][1] if seconds else self._next[key]))
        if offsets:
            try:  # not waited for, even when closing (close sends it): a broker gone must not hold a stop
                self.consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException as exc:  # a mark missed costs a longer refill, never a message
                log.debug("stream: tail starts not committed: %s", exc)

    def read_up_to(self) -> dict[tuple[str, int], int]:
        """The next offset of each partition after the last message this process read there."""
        return dict(self._next)

    def committed(self, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        """The tail starts last committed for ``partitions`` ({} when the broker can't say)."""
        try:
            marks = self.consumer.committed(
                [TopicPartition(tp.topic, tp.partition) for tp in partitions], timeout=10
            )
        except KafkaException as exc:
            log.debug("stream: tail starts not read: %s", exc)
            return {}
        return {(tp.topic, tp.partition): tp.offset for tp in marks if tp.offset >= 0}

    def close(self, reach: timedelta) -> None:
        """Commit the tail starts as they are now, then close."""
        self.commit(reach, force=True)
        self.consumer.close()


def within_reach(batch: list[Message], reach: timedelta) -> list[Message]:
    """The messages of ``batch`` produced within ``reach`` of now (or without a timestamp).

    A restart without the stream's marks on a broker that can't look up offsets by time (Tansu answers
    its log's start) reads whole partitions: what was produced before the tail's reach is dropped
    unparsed.
    """
    since_ms = (time.time() - reach.total_seconds()) * 1000
    return [m for m in batch if not m.timestamp()[0] or m.timestamp()[1] >= since_ms]
