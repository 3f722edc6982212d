"""Where a restarted stream starts reading, so that its in-memory tail holds whole windows again.

The tail lives in memory, so a restarted stream began with none: for the widest window's length after
every restart or deploy its online rows covered only the ticks read since, and the scorer served values
that training never saw. Each partition now starts a tail's reach before its committed offset; the
messages up to that offset (processed before) refill the tail without writing online rows again.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

log = logging.getLogger("ingest.stream")  # the stream's own lines: one logger to follow (and filter)


def rewind(
    consumer: Consumer, partitions: list[TopicPartition], reach: timedelta
) -> dict[tuple[str, int], int]:
    """Assign ``partitions`` to ``consumer``, each from ``reach`` before now (by Kafka's offsets by
    time) when that is before its committed offset; returns {(topic, partition): committed offset} of
    those rewound, the offset below which a message only refills the tail."""
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
        if 0 <= start.offset < tp.offset:
            refill_until[(tp.topic, tp.partition)] = tp.offset
            rereading += tp.offset - start.offset
            tp.offset = start.offset
    if rereading:
        log.info("stream: re-reading up to %s processed messages to refill the windows", f"{rereading:,}")
    consumer.assign(committed)
    return refill_until


def within_reach(batch: list[Message], reach: timedelta) -> list[Message]:
    """The messages of ``batch`` produced within ``reach`` of now (or without a timestamp).

    Brokers that can't look up offsets by time (Tansu answers 0) hand over the whole partition: what
    was produced before the tail's reach is dropped unparsed.
    """
    since_ms = (time.time() - reach.total_seconds()) * 1000
    return [m for m in batch if not m.timestamp()[0] or m.timestamp()[1] >= since_ms]
