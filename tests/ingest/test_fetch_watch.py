"""The fetch watch on a real broker: reading almost nothing while behind is a stall; a live feed is not."""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from ingest import fetch_watch, kafka
from ingest.fetch_watch import FetchWatch
from tickstore.settings import Settings

pytestmark = pytest.mark.kafka

log = logging.getLogger("tests.fetch_watch")


def feed(settings: Settings) -> Producer:
    # a record batch a message, as a live feed sends them (and Tansu's watermarks count batches)
    kafka.ensure_topics(settings)
    return kafka.producer(settings, **{"linger.ms": 0, "batch.num.messages": 1})


def consumer_at_start(settings: Settings) -> Consumer:
    consumer = kafka.consumer(settings, settings.sink_group)
    consumer.assign([TopicPartition(settings.topic_raw, 0, 0)])
    return consumer


def read_slowly(
    consumer: Consumer, watch: FetchWatch, seconds: float, producer: Producer | None = None
) -> bool:
    """Take one message every 0.25 s, as a consumer does whose every fetch brings one record batch (a
    Tansu partition whose offset search outlasts the fetch wait), with ``producer`` sending one just
    before each; whether the watch called it stalled."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if producer is not None:
            producer.produce(watch.topic, value=b"{}", partition=0)
            producer.flush(10)
        messages = consumer.consume(num_messages=1, timeout=1.0)
        watch.read(messages)
        if watch.stalled(consumer):
            return True
        time.sleep(0.25)
    return False


def test_reading_a_backlog_a_message_at_a_time_is_a_stall(
    kafka_settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Found in a soak: a sink behind on a Tansu partition of 900,000 record batches read one message a
    # second with its 500 ms fetch wait, and the watch, which looked only for empty fetches, said nothing.
    monkeypatch.setattr(fetch_watch, "STALL_S", 2.0)
    producer = feed(kafka_settings)
    an_hour_ago = int((time.time() - 3600) * 1000)
    for i in range(200):
        producer.produce(kafka_settings.topic_raw, value=b"{}", partition=0, timestamp=an_hour_ago + i)
        producer.poll(0)
    producer.flush(30)
    consumer = consumer_at_start(kafka_settings)
    watch = FetchWatch(kafka_settings, 500, who="sink", log=log, falling_behind="-", what_to_do="-")
    with caplog.at_level(logging.WARNING, logger=log.name):
        assert read_slowly(consumer, watch, seconds=20)
    consumer.close()
    [warning] = [r.getMessage() for r in caplog.records]
    assert "has messages past where the sink reads" in warning and "reconnecting with 2000 ms" in warning


def test_a_live_feed_read_as_it_arrives_is_not_a_stall(
    kafka_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a few messages a second, each read just after it was produced
    monkeypatch.setattr(fetch_watch, "STALL_S", 2.0)
    producer = feed(kafka_settings)
    consumer = consumer_at_start(kafka_settings)
    watch = FetchWatch(kafka_settings, 500, who="sink", log=log, falling_behind="-", what_to_do="-")
    assert not read_slowly(consumer, watch, seconds=fetch_watch.STALL_S * 3, producer=producer)
    assert watch.checks == 0  # nor was the broker asked (~20 ms on Tansu, a stall of the stream's loop)
    consumer.close()


def test_an_idle_consumer_that_is_caught_up_asks_the_broker_once_a_stall_period(
    kafka_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found in a soak: on a Tansu partition of 900,000 batches a question took over 2 s (librdkafka
    # logged a timed-out ListOffsetsRequest), and an idle stream asked once a second.
    monkeypatch.setattr(fetch_watch, "STALL_S", 2.0)
    producer = feed(kafka_settings)
    producer.produce(kafka_settings.topic_raw, value=b"{}", partition=0)
    producer.flush(10)
    consumer = consumer_at_start(kafka_settings)
    watch = FetchWatch(kafka_settings, 500, who="sink", log=log, falling_behind="-", what_to_do="-")
    assert not read_slowly(consumer, watch, seconds=fetch_watch.STALL_S * 4.5)  # 9 s, 7 of them idle
    consumer.close()
    assert 1 <= watch.checks <= 4, watch.checks  # once a second would be 6 or 7


def test_the_first_wait_is_the_one_a_partition_of_that_size_answers_within() -> None:
    assert fetch_watch.wait_for(0, 5) == fetch_watch.wait_for(3_000, 5) == 5
    assert fetch_watch.wait_for(10_000, 500) == 500  # never shorter than the process's own
    assert fetch_watch.wait_for(3_000, 0) == 0  # nor changed where the shortest wait reads
    waits = [fetch_watch.wait_for(n, 5) for n in (3_000, 10_000, 30_000, 200_000, 400_000, 10**7)]
    assert waits == sorted(waits) and waits[-1] == fetch_watch.MAX_FETCH_WAIT_MS and len(set(waits)) == 6


def test_on_the_embedded_broker_a_process_starts_with_the_wait_its_fullest_partition_needs(
    kafka_settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A stream restarted on a Tansu partition of 30,000 batches read nothing with its 5 ms wait until
    # the watch had seen 15 s of it (then 20 ms read them all): the size says so at once.
    monkeypatch.setattr(fetch_watch, "TANSU_WAITS", ((20, 5), (10**9, 80)))
    producer = feed(kafka_settings)
    for _ in range(21):
        producer.produce(kafka_settings.topic_raw, value=b"{}", partition=1)
        producer.flush(10)

    def first_wait(settings: Settings) -> int:
        watch = FetchWatch(settings, 5, who="stream", log=log, falling_behind="-", what_to_do="-")
        watch.fit_to_broker()
        return watch.wait_ms

    with caplog.at_level(logging.INFO, logger=log.name):
        assert first_wait(kafka_settings) == 80
    [line] = [r.getMessage() for r in caplog.records]
    assert "the fullest partition of" in line and "holds 21 record batches" in line and "with 80 ms" in line
    # a partition within the short wait's reach keeps it; a real Kafka answers as soon as data is there
    monkeypatch.setattr(fetch_watch, "TANSU_WAITS", ((21, 5), (10**9, 80)))
    assert first_wait(kafka_settings) == 5
    monkeypatch.setattr(fetch_watch, "TANSU_WAITS", ((20, 5), (10**9, 80)))
    real_kafka = kafka_settings.model_copy(update={"kafka_bootstrap": kafka_settings.bootstrap})
    assert first_wait(real_kafka) == 5


def test_on_the_embedded_broker_a_process_moves_to_the_next_wait_as_its_partition_grows(
    kafka_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sizes from the watermarks librdkafka keeps from its fetches: no question to the broker
    monkeypatch.setattr(fetch_watch, "TANSU_WAITS", ((20, 5), (10**9, 80)))
    producer = feed(kafka_settings)
    consumer = consumer_at_start(kafka_settings)
    real_kafka = kafka_settings.model_copy(update={"kafka_bootstrap": kafka_settings.bootstrap})
    watches = []
    for settings in (kafka_settings, real_kafka):
        watch = FetchWatch(settings, 5, who="stream", log=log, falling_behind="-", what_to_do="-")
        watch.fit_to_broker()  # an empty topic: the first wait
        watches.append(watch)
    embedded, real = watches
    monkeypatch.setattr(fetch_watch, "GROWTH_CHECK_S", 0.0)
    assert embedded.outgrown(consumer) is None  # nothing fetched yet
    read = 0
    for n in range(21):
        producer.produce(kafka_settings.topic_raw, value=b"{}", partition=0)
        producer.flush(10)
        while read <= n:
            read += sum(m.error() is None for m in consumer.consume(num_messages=1, timeout=1.0))
        # 20 batches are still within the first wait's reach
        assert embedded.outgrown(consumer) == (80 if n == 20 else None), n
    assert real.outgrown(consumer) is None  # a real Kafka answers as soon as data is there
    embedded.waited(80)  # reconnected with it: that size asks for no more
    assert embedded.outgrown(consumer) is None
    consumer.close()
