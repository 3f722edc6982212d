"""A consumer kept in its group through a wait longer than max.poll.interval.ms, on a real broker."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError

from ingest import kafka
from ingest.membership import KeptInGroup
from tickstore.settings import Settings


@pytest.mark.kafka
def test_a_consumer_waiting_past_max_poll_stays_in_its_group_and_loses_nothing(
    make_settings: Callable[..., Settings], broker_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    s = make_settings(broker_port=broker_port, rebalance_timeout_ms=2000)
    kafka.ensure_topics(s)
    producer = kafka.producer(s)
    for i in range(30):
        producer.produce(s.topic_raw, value=str(i).encode(), key=b"BTC-USD")
    producer.flush(30)
    consumer = kafka.consumer(s, s.stream_group)
    consumer.subscribe([s.topic_raw])
    caplog.set_level(logging.WARNING, logger="tickstore.kafka.client")
    got: list[int] = []
    errors = []
    try:
        deadline = time.monotonic() + 60
        while len(got) < 10:  # joined, and part way through the partition
            assert time.monotonic() < deadline, "no message within 60 s"
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(int(msg.value()))
        kept = KeptInGroup(consumer, s.rebalance_timeout_ms)
        waited_until = time.monotonic() + 2 * s.rebalance_timeout_ms / 1000  # twice max.poll.interval.ms
        while time.monotonic() < waited_until:
            kept.keep()
            time.sleep(0.1)
        held = kept.release()
        assert all(m.error() is not None for m in held)  # paused: nothing was fetched meanwhile
        back = time.monotonic()
        while len(got) < 30:
            # still a member: the rest comes at once, not after a join (the broker holds one for the
            # whole rebalance timeout)
            assert time.monotonic() - back < s.rebalance_timeout_ms / 1000, got
            msg = consumer.poll(0.2)
            if msg is not None:
                if msg.error() is None:
                    got.append(int(msg.value()))
                else:
                    errors.append(msg.error())
    finally:
        consumer.close()
    assert got == list(range(30))  # each message once, in order
    assert not [e for e in errors if e.code() != KafkaError._PARTITION_EOF], errors
    assert "maximum poll interval" not in caplog.text, caplog.text


@pytest.mark.kafka
def test_work_run_kept_in_group_hands_back_its_result_or_its_error_and_quick_work_is_not_paused(
    make_settings: Callable[..., Settings], broker_port: int
) -> None:
    s = make_settings(broker_port=broker_port, rebalance_timeout_ms=2000)
    kafka.ensure_topics(s)
    consumer = kafka.consumer(s, s.stream_group)
    consumer.subscribe([s.topic_raw])
    try:
        deadline = time.monotonic() + 60
        while not consumer.assignment():
            assert time.monotonic() < deadline, "no assignment within 60 s"
            consumer.poll(0.2)
        kept = KeptInGroup(consumer, s.rebalance_timeout_ms)
        assert kept.quiet_s == pytest.approx(1.0)  # half of max.poll.interval.ms
        assert kept.run(lambda: 7, "test") == 7
        assert not kept._paused  # done within the quiet time: what was fetched ahead is kept

        def fail() -> None:
            time.sleep(1.5)
            raise ValueError("from the worker")

        ticks: list[float] = []
        with pytest.raises(ValueError, match="from the worker"):
            kept.run(fail, "test", each=lambda: ticks.append(time.monotonic()))
        assert kept._paused and ticks  # polled, paused, past the quiet time
        kept.release()
        assert not kept._paused
    finally:
        consumer.close()
