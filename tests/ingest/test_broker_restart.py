"""The stream and the sink after the embedded broker restarts: back to their first, short fetch wait."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

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


def produce(s: Settings, lines: list[bytes]) -> None:
    producer = kafka.producer(s)
    for value in lines:
        producer.produce(s.topic_raw, value=value, key=b"BTC-USD")
    producer.flush(30)


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
    process: OnlineStream | sink_consumer.Sink = OnlineStream(s) if who == "stream" else sink_consumer.Sink(s)

    def read() -> int:
        return process.stats.messages if isinstance(process, OnlineStream) else process.stats.total.messages

    produce(s, lines[:40])
    caplog.set_level(logging.INFO)
    runner = threading.Thread(target=process.run, daemon=True)
    runner.start()
    try:
        wait_while_alive(
            runner, "the first 40", lambda: read() >= 40 and "reconnecting with 20 ms" in caplog.text
        )
        broker.stop(s)
        broker.start(s)  # empty, as a restarted Tansu is
        produce(s, lines[40:])
        wait_while_alive(
            runner, "the restart noticed", lambda: "every broker was down and answers again" in caplog.text
        )
        wait_while_alive(runner, "the 40 after the restart", lambda: read() >= 80)
    finally:
        process.stop()
        runner.join(60)
    assert "so fetching with 0 ms again (was 20 ms)" in caplog.text
    assert read() == 80
