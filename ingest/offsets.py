"""Where tickstore's topics and their readers stand: topic sizes, a group's lag and membership, a
consumer's positions against the broker's watermarks."""

from __future__ import annotations

import json
import threading
from typing import Any, NamedTuple

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from ingest import kafka
from tickstore.settings import Settings


class TopicStats(NamedTuple):
    """A topic's partitions and messages, from their watermarks (on Tansu: record batches)."""

    partitions: int
    messages: int
    busiest: int  # messages in its fullest partition


def topic_stats(settings: Settings, timeout: float = 5.0, meta: Any = None) -> dict[str, TopicStats]:
    """tickstore's topics that exist, by name, with their partition and message counts.

    ``meta``: the cluster's metadata when the caller has it already (from `cluster`), else asked for.
    """
    c = kafka.consumer(settings, group="tickstore-status")
    try:
        if meta is None:
            meta = c.list_topics(timeout=timeout)
        out: dict[str, TopicStats] = {}
        for name in (settings.topic_raw, settings.topic_dlq):
            topic = meta.topics.get(name)
            if topic is None or topic.error is not None:
                continue
            counts = []
            for p in topic.partitions:
                lo, hi = c.get_watermark_offsets(TopicPartition(name, p), timeout=timeout)
                counts.append(max(hi - lo, 0))
            out[name] = TopicStats(len(counts), sum(counts), max(counts, default=0))
        return out
    finally:
        c.close()


def _commits(settings: Settings, group: str, timeout: float) -> list[tuple[TopicPartition, int, int]] | None:
    """Consumer group ``group``'s committed offset on each partition of ticks.raw, with the partition's
    low and high watermarks; None when the topic is missing or the group has committed nothing there.

    Reads the group's commits without joining it: the consumer made here never subscribes.
    """
    c = kafka.consumer(settings, group=group)
    try:
        topic = c.list_topics(settings.topic_raw, timeout=timeout).topics.get(settings.topic_raw)
        if topic is None or topic.error is not None:
            return None
        committed = c.committed(
            [TopicPartition(settings.topic_raw, p) for p in topic.partitions], timeout=timeout
        )
        if all(tp.offset < 0 for tp in committed):
            return None
        return [(tp, *c.get_watermark_offsets(tp, timeout=timeout)) for tp in committed]
    finally:
        c.close()


def group_lag(settings: Settings, group: str, timeout: float = 5.0) -> int | None:
    """How far consumer group ``group`` is behind on ticks.raw (high watermarks minus its committed
    offsets, summed over the partitions); None when it has committed nothing there."""
    commits = _commits(settings, group, timeout)
    if commits is None:
        return None
    # a partition it never committed: from the start
    return sum(max(hi - max(tp.offset, lo), 0) for tp, lo, hi in commits)


def read_before(settings: Settings, group: str, timeout: float = 5.0) -> int | None:
    """How many messages of ticks.raw lie before consumer group ``group``'s committed offsets (from
    each partition's low watermark, summed): what a member of the group will not read, as it goes on
    from the commits. None when it has committed nothing there."""
    commits = _commits(settings, group, timeout)
    if commits is None:
        return None
    return sum(max(tp.offset - lo, 0) for tp, lo, _ in commits if tp.offset >= 0)


def group_running(settings: Settings, group: str, timeout: float = 5.0) -> bool | None:
    """Whether consumer group ``group`` has a member now (its process runs); None when the broker
    would not say."""
    from confluent_kafka import ConsumerGroupState

    client = kafka.admin(settings)  # held: a future outlives no client
    try:
        state = client.describe_consumer_groups([group], request_timeout=timeout)[group].result(timeout)
    except KafkaException:
        return None
    if state.state == ConsumerGroupState.UNKNOWN:
        return None
    return state.state not in (ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD)


def read_to_end(consumer: Consumer, settings: Settings) -> bool:
    """Whether ``consumer`` has its partitions and the broker's own watermarks say each is read to its
    end (asked on a connection apart from the consumer's pending fetch: ``positions(fresh=True)``)."""
    try:
        out = positions(consumer, settings, fresh=True)
    except KafkaException:
        return False
    return out is not None and all(pos >= high for _, pos, high in out)


def positions(
    consumer: Consumer, settings: Settings, timeout: float = 5.0, *, fresh: bool = False
) -> list[tuple[TopicPartition, int, int]] | None:
    """(partition, position, high watermark) for each partition assigned to ``consumer``; None while
    it has none (joining its group).

    A partition nothing was fetched from yet in this session is at its committed offset, or at its
    low watermark when the group has none there. The watermarks are those the consumer's own fetches
    brought, and for a partition no fetch has answered for yet the broker's, asked on a connection of
    its own (``watermarks``): Tansu answers the consumer's own question only after its pending fetch,
    so up to a fetch wait a partition. With ``fresh``, every partition's watermarks are the broker's,
    asked that way (fetches that bring nothing leave the cached ones behind).
    """
    assignment = consumer.assignment()
    if not assignment:
        return None
    current = consumer.position(assignment)
    # the group's committed offsets cost a broker round trip: asked only for partitions without a position
    unread = [tp for tp in current if tp.offset < 0]
    committed = {
        (tp.topic, tp.partition): tp.offset
        for tp in (consumer.committed(unread, timeout=timeout) if unread else [])
    }
    marks: dict[tuple[str, int], tuple[int, int]] = {}
    for tp in [] if fresh else current:
        lo, hi = consumer.get_watermark_offsets(tp, cached=True)
        if hi >= 0:  # a fetch has answered for the partition
            marks[(tp.topic, tp.partition)] = (lo, hi)
    missing = [tp for tp in current if (tp.topic, tp.partition) not in marks]
    if missing:
        marks.update(watermarks(settings, missing, timeout))
    out = []
    for tp in current:
        lo, hi = marks[(tp.topic, tp.partition)]
        pos = tp.offset
        if pos < 0:
            pos = committed.get((tp.topic, tp.partition), -1)
            pos = pos if pos >= 0 else lo
        out.append((tp, pos, hi))
    return out


def watermarks(
    settings: Settings, partitions: list[TopicPartition], timeout: float = 5.0
) -> dict[tuple[str, int], tuple[int, int]]:
    """The broker's low and high watermarks of each of ``partitions``, asked on a connection of its
    own (an admin client), so no consumer's pending fetch is waited for; KafkaException when the
    broker would not say."""
    from confluent_kafka.admin import OffsetSpec

    client = _watermark_admin(settings)
    keys = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
    try:
        answers = [
            client.list_offsets({tp: spec for tp in keys}, request_timeout=timeout)
            for spec in (OffsetSpec.earliest(), OffsetSpec.latest())
        ]
        low, high = (
            {(tp.topic, tp.partition): f.result(timeout).offset for tp, f in a.items()} for a in answers
        )
    except TimeoutError as exc:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "no watermarks in time")) from exc
    return {key: (low[key], high[key]) for key in high}


# One admin client for the process's watermark questions, kept while the broker and configuration
# stay the same: the sink and the stream ask on each progress line and idle check, and a client made
# per question (its threads and connection set up, then torn down) came to 38 in 10 s of polling.
_watermark_client: tuple[tuple[str, str], AdminClient] | None = None
_watermark_lock = threading.Lock()


def _watermark_admin(settings: Settings) -> AdminClient:
    global _watermark_client
    key = (settings.bootstrap, json.dumps(settings.kafka_config, sort_keys=True))
    with _watermark_lock:
        if _watermark_client is None or _watermark_client[0] != key:
            _watermark_client = (key, kafka.admin(settings))  # another broker's client goes with the tuple
        return _watermark_client[1]
