"""The stream and the sink on an embedded broker that changes under them: restarted, back to their first,
short fetch wait; grown, on to the wait its partitions' size needs."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from ingest import broker, fetch_watch, kafka, replay, stream
from ingest.sink import consumer as sink_consumer
from ingest.stream import OnlineStream
from tests.conftest import SHARED, free_port
from tests.ingest.helpers import wait_while_alive
from tickstore.settings import Settings

RECORDING = SHARED / "advanced_trade" / "btc-usd_20251206_050705.ndjson"


@pytest.fixture
def own_broker(make_settings: Callable[..., Settings]) -> Iterator[Settings]:
    """Settings with an embedded broker of their own (the test restarts it)."""
    s = make_settings(broker_port=free_port())
    broker.start(s)
    try:
        yield s
    finally:
        broker.stop(s)


def produce(s: Settings, lines: list[bytes], *, batch_each: bool = False) -> None:
    """``lines`` to one partition; ``batch_each``: a record batch each, as a live feed sends them."""
    producer = kafka.producer(s, **({"linger.ms": 0, "batch.num.messages": 1} if batch_each else {}))
    for value in lines:
        producer.produce(s.topic_raw, value=value, key=b"BTC-USD")
        if batch_each:
            producer.flush(10)
    producer.flush(30)


def make(who: str, s: Settings) -> OnlineStream | sink_consumer.Sink:
    """The process under test: ``stream`` or ``sink``."""
    return OnlineStream(s) if who == "stream" else sink_consumer.Sink(s)


@contextmanager
def running(process: OnlineStream | sink_consumer.Sink) -> Iterator[threading.Thread]:
    """``process`` run in a thread, stopped (as SIGTERM does) and joined on the way out."""
    runner = threading.Thread(target=process.run, daemon=True)
    runner.start()
    try:
        yield runner
    finally:
        process.stop()
        runner.join(60)


def messages_read(process: OnlineStream | sink_consumer.Sink) -> int:
    return process.stats.messages if isinstance(process, OnlineStream) else process.stats.total.messages


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.parametrize("who", ["stream", "sink"])
def test_a_restarted_broker_is_fetched_from_with_the_first_wait_again(
    own_broker: Settings, who: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A stream that had lengthened its wait on a grown embedded broker kept it after the broker was
    # restarted (empty), and its freshness stayed bounded by that wait (Tansu holds a fetch for all
    # of it) until the stream was restarted too. A 0 ms wait makes every fetch come back empty, so
    # the process lengthens it to 20 ms first, as it would on a grown partition.
    s = own_broker
    lines = [line for _, _, line in replay.iter_lines([RECORDING])][:80]
    monkeypatch.setattr(fetch_watch, "STALL_S", 3.0)
    monkeypatch.setattr(stream if who == "stream" else sink_consumer, "FETCH_WAIT_MS", 0)
    process = make(who, s)

    produce(s, lines[:40])
    caplog.set_level(logging.INFO)
    with running(process) as runner:
        wait_while_alive(
            runner,
            "the first 40",
            lambda: messages_read(process) >= 40 and "reconnecting with 20 ms" in caplog.text,
        )
        broker.stop(s)
        broker.start(s)  # empty, as a restarted Tansu is
        produce(s, lines[40:])
        wait_while_alive(
            runner, "the restart noticed", lambda: "every broker was down and answers again" in caplog.text
        )
        wait_while_alive(runner, "the 40 after the restart", lambda: messages_read(process) >= 80)
    assert "so fetching with 0 ms again (was 20 ms)" in caplog.text
    assert messages_read(process) == 80


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.parametrize("who", ["stream", "sink"])
def test_a_partition_grown_past_a_size_is_fetched_from_with_the_next_wait_before_it_stalls(
    own_broker: Settings, who: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A stream on a live feed kept its 5 ms wait while the feed's partition grew (12 ticks/s, a record
    # batch each: 4,000 in six minutes), stalled 15-20 s at each size the embedded broker slows down
    # at, then tried the next wait. As if 30 batches were past the first wait's reach (~4,000).
    s = own_broker
    lines = [line for _, _, line in replay.iter_lines([RECORDING])][:50]
    monkeypatch.setattr(fetch_watch, "TANSU_WAITS", ((30, 5), (10**9, 1000)))
    monkeypatch.setattr(fetch_watch, "GROWTH_CHECK_S", 0.5)
    process = make(who, s)

    produce(s, lines[:20], batch_each=True)
    caplog.set_level(logging.INFO)
    with running(process) as runner:
        wait_while_alive(runner, "the first 20", lambda: messages_read(process) >= 20)
        assert "has grown to" not in caplog.text  # 20 batches: the first wait still reads them
        produce(s, lines[20:40], batch_each=True)
        wait_while_alive(runner, "the growth noticed", lambda: "has grown to" in caplog.text)
        produce(s, lines[40:], batch_each=True)  # read by the consumer made again
        wait_while_alive(runner, "all 50", lambda: messages_read(process) >= 50)
    first = (stream if who == "stream" else sink_consumer).FETCH_WAIT_MS
    assert re.search(
        rf"{who}: a partition of {s.topic_raw} has grown to \d\d record batches, past what the embedded "
        rf"broker answers within a {first} ms fetch wait: reconnecting with 1000 ms",
        caplog.text,
    ), caplog.text
    assert caplog.text.count("has grown to") == 1 and "brought almost nothing" not in caplog.text
    assert messages_read(process) == 50
    if isinstance(process, OnlineStream):
        # its tail is in memory: the consumer made again re-reads nothing to refill it
        assert process.stats.warmed == 0 and "re-reading" not in caplog.text
