"""`tickstore stream`: online values equal the offline SQL at every tick time, through a real broker."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from ingest import replay
from ingest.archive import load_ticks
from ingest.stream import OnlineStream, StreamBatch
from tests.conftest import asof_plan, free_port, start_redis
from tests.ingest.helpers import RECORDINGS, VIEWS, offline_rows, same, wait_while_alive
from tickstore.settings import Settings


@pytest.mark.kafka
@pytest.mark.slow
def test_online_values_equal_offline_sql_at_every_tick_time(make_settings, broker_port: int) -> None:
    settings: Settings = make_settings(broker_port=broker_port, stream_batch_rows=20)
    replay.replay(settings, RECORDINGS)
    seen: list[tuple[str, pd.Timestamp, dict]] = []
    stream = OnlineStream(settings, until_idle=True)
    assert [asof_plan(c) for c in stream._cursors.values()] == ["asof"] * len(stream.views)
    service = stream.store.get_feature_service("volatility_model")

    def read_back(batch: StreamBatch) -> None:
        # what a scorer reading the online store sees right after this batch
        online = stream.store.get_online_features(
            features=service, entity_rows=[{"product_id": p} for p in batch.products]
        ).to_dict()
        for i, product in enumerate(batch.products):
            seen.append((product, batch.latest[product], {k: v[i] for k, v in online.items()}))

    stream.on_batch = read_back
    stats = stream.run()

    assert stats.messages == sum(1 for _ in replay.iter_lines(RECORDINGS))
    assert stats.batches >= 20 and len(seen) >= 20
    compared = 0
    for view in VIEWS:
        offline = offline_rows(RECORDINGS, view)
        for product, at, values in seen:
            expected = offline[(product, at)]
            for column, value in expected.items():
                if column in ("product_id", "event_time"):
                    continue
                assert same(values[column], value), (view, product, at, column, values[column], value)
                compared += 1
    assert compared >= 20 * 27
    # the stream's newest row is the lake's newest: same tick count over 300 s at the end
    last = offline_rows(RECORDINGS, "ticks_300s")
    product, at, values = seen[-1]
    assert values["tick_count_300s"] == last[(product, at)]["tick_count_300s"] > 1


@pytest.mark.kafka
@pytest.mark.parametrize("online", ["sqlite", "redis"])
def test_bad_messages_are_skipped_and_the_stream_keeps_going(
    make_settings, broker_port: int, tmp_path: Path, online: str, request: pytest.FixtureRequest
) -> None:
    from ingest import kafka

    extra = (
        {"online_store": "redis", "redis_url": request.getfixturevalue("redis_url")}
        if online == "redis"
        else {}
    )
    settings: Settings = make_settings(broker_port=broker_port, **extra)
    kafka.ensure_topics(settings)
    good = [line for _, _, line in replay.iter_lines([RECORDINGS[0]])][:30]
    bad = [
        b"{not json",
        b"\xff\xfe",
        b'{"type":"ticker","product_id":"BTC-USD","price":"NaN"}',
        b"x" * 2_000_000,
    ]
    producer = kafka.producer(settings)
    for value in [*bad, *good[:15], *bad, *good[15:]]:
        producer.produce(settings.topic_raw, value=value, key=b"BTC-USD")
    producer.flush(30)
    (tmp_path / "good.ndjson").write_bytes(b"\n".join(good) + b"\n")
    expected = load_ticks([tmp_path / "good.ndjson"])
    n_ticks, newest_us = expected.sql("SELECT count(*), epoch_us(max(event_time)) FROM ticks").fetchone()  # type: ignore[misc]

    stream = OnlineStream(settings, until_idle=True)
    stats = stream.run()

    assert stats.messages == 2 * len(bad) + len(good) and stats.new_ticks == n_ticks > 0
    # counted and said: without the sink running, nothing told of them
    assert stats.rejected == 2 * len(bad)
    assert "8 rejected (the sink keeps them in ticks_rejected)" in stats.progress_line()
    online = stream.store.get_online_features(
        features=["tick_clock:event_time_us", "ticks_60s:tick_count_60s"],
        entity_rows=[{"product_id": "BTC-USD"}],
    ).to_dict()
    assert online["event_time_us"] == [newest_us]
    assert online["tick_count_60s"][0] >= 1


class StreamOnRedis:
    """A stream writing a real Redis, run in a thread, and 40 recorded messages to publish to it."""

    def __init__(self, make_settings, broker_port: int, folder: Path) -> None:  # type: ignore[no-untyped-def]
        from ingest import kafka

        self.folder = folder
        self.port = free_port()
        self.redis = start_redis(self.port, folder / "redis")
        self.settings: Settings = make_settings(
            broker_port=broker_port, online_store="redis", redis_url=f"127.0.0.1:{self.port}"
        )
        kafka.ensure_topics(self.settings)
        self.lines = [line for _, _, line in replay.iter_lines([RECORDINGS[0]])][:40]
        (folder / "lines.ndjson").write_bytes(b"\n".join(self.lines) + b"\n")
        self.newest_us = (
            load_ticks([folder / "lines.ndjson"])
            .sql("SELECT epoch_us(max(event_time)) FROM ticks")
            .fetchone()[0]  # type: ignore[index]
        )
        self.producer = kafka.producer(self.settings)
        self.stream = OnlineStream(self.settings)
        self.batches: list[StreamBatch] = []
        self.stream.on_batch = self.batches.append
        self.thread = threading.Thread(target=self.stream.run, daemon=True)

    def publish(self, values: list[bytes]) -> None:
        for value in values:
            self.producer.produce(self.settings.topic_raw, value=value, key=b"BTC-USD")
        self.producer.flush(30)

    def wait_for(self, what: str, done: Callable[[], bool]) -> None:
        wait_while_alive(self.thread, what, done, 90)

    def clock(self) -> object:
        """The newest tick time the online store holds for BTC-USD (microseconds)."""
        got = self.stream.store.get_online_features(
            features=["tick_clock:event_time_us"], entity_rows=[{"product_id": "BTC-USD"}]
        ).to_dict()
        return got["event_time_us"][0]

    def stop_redis(self) -> None:
        self.redis.terminate()
        self.redis.wait(10)

    def stop(self) -> None:
        self.stream.stop()
        self.thread.join(60)
        self.stop_redis()


@pytest.mark.kafka
@pytest.mark.slow
def test_a_redis_outage_is_waited_out_and_its_batch_still_lands(
    make_settings, broker_port: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = StreamOnRedis(make_settings, broker_port, tmp_path)
    caplog.set_level(logging.WARNING, logger="ingest.stream")
    caplog.set_level(logging.WARNING, logger="tickstore.kafka.client")
    try:
        run.thread.start()
        run.publish(run.lines[:20])
        run.wait_for("the first batches", lambda: len(run.batches) > 0)
        run.stop_redis()
        run.publish(run.lines[20:])
        run.wait_for("a retry", lambda: "retrying in" in caplog.text)
        # down for longer than max.poll.interval.ms: the stream stays in its group all the same
        time.sleep(run.settings.rebalance_timeout_ms / 1000 + 2)
        run.redis = start_redis(run.port, tmp_path / "redis")  # empty again: only what the stream writes now
        back = time.monotonic()
        run.wait_for("the newest tick online", lambda: run.clock() == run.newest_us)
        # written as the store came back, not after a group join (the embedded broker holds one for
        # the whole rebalance timeout) and a re-read
        assert time.monotonic() - back < run.settings.rebalance_timeout_ms / 1000
    finally:
        run.stop()
    assert not run.thread.is_alive()
    assert "online store write of" in caplog.text and "start redis-server there" in caplog.text
    # it had left its group, in librdkafka's words: "Application maximum poll interval exceeded"
    assert "MAX_POLL" not in caplog.text and "maximum poll interval" not in caplog.text, caplog.text


@pytest.mark.kafka
@pytest.mark.slow
def test_a_redis_out_of_memory_is_waited_out_with_what_to_do(
    make_settings, broker_port: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis at its maxmemory (the noeviction policy) refuses every write: the stream died of that
    with a traceback, where a down Redis was waited out."""
    import redis as redis_py

    run = StreamOnRedis(make_settings, broker_port, tmp_path)
    admin = redis_py.Redis(port=run.port)
    caplog.set_level(logging.WARNING, logger="ingest.stream")
    try:
        run.thread.start()
        run.publish(run.lines[:20])
        run.wait_for("the first batches", lambda: len(run.batches) > 0)
        admin.config_set("maxmemory", 1)  # below what it holds: every write is refused
        run.publish(run.lines[20:])
        run.wait_for("a retry", lambda: "raise its maxmemory" in caplog.text)
        assert run.clock() != run.newest_us
        admin.config_set("maxmemory", 0)
        run.wait_for("the newest tick online", lambda: run.clock() == run.newest_us)
    finally:
        run.stop()
    assert not run.thread.is_alive()
    assert "Redis is out of memory (used memory > maxmemory)" in caplog.text
    assert "HSET" not in caplog.text  # Redis's own words quote the binary command


@pytest.mark.kafka
@pytest.mark.slow
def test_a_view_edited_and_applied_while_the_stream_runs_is_computed_as_applied(
    make_settings, broker_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    from feast import FeatureView, Field
    from feast.types import Float64

    from ingest import kafka
    from tickstore_feast import DuckDBSource
    from tickstore_feast.repo import definitions, feature_store

    settings: Settings = make_settings(broker_port=broker_port)
    kafka.ensure_topics(settings)
    lines = iter([line for _, _, line in replay.iter_lines([RECORDINGS[0]])])
    producer = kafka.producer(settings)

    def publish(n: int) -> None:
        for _ in range(n):
            producer.produce(settings.topic_raw, value=next(lines), key=b"BTC-USD")
        producer.flush(30)

    stream = OnlineStream(settings)
    runner = threading.Thread(target=stream.run)
    runner.start()
    try:
        publish(20)

        def tick_count() -> int | None:
            online = stream.store.get_online_features(
                features=["ticks_60s:tick_count_60s"], entity_rows=[{"product_id": "BTC-USD"}]
            )
            return online.to_dict()["tick_count_60s"][0]

        wait_while_alive(runner, "the first ticks online", lambda: (tick_count() or 0) > 0)
        # an edited ticks_60s, applied as `tickstore feast apply` would after an edit of its SQL file
        view = definitions().ticks_60s
        source = view.batch_source
        edited = source.query.replace(
            "back + ahead + 1 AS tick_count_60s", "back + ahead + 1001 AS tick_count_60s"
        )
        assert edited != source.query
        applied = FeatureView(
            name=view.name,
            entities=[definitions().product],
            ttl=view.ttl,
            schema=view.schema,
            source=DuckDBSource(name=source.name, query=edited, lookback=source.lookback),
            online=True,
        )
        feature_store(settings, apply=False).apply([applied])

        def new_sql_served() -> bool:
            publish(1)  # the stream computes on the next batch after it has read the registry again
            return (tick_count() or 0) > 1000

        # it read the views once at start: an edit reached training sets but never the online store
        wait_while_alive(runner, "the edited SQL online", new_sql_served, 30)

        # a view whose schema names a column its SQL lacks, registered as Feast's own apply does (no
        # check): each write of it failed, and the stream died of it
        typo = FeatureView(
            name="typo",
            entities=[definitions().product],
            ttl=view.ttl,
            schema=[Field(name="ret_sd_60s", dtype=Float64)],
            source=applied.batch_source,
            online=True,
        )
        feature_store(settings, apply=False).apply([typo])

        def refused() -> bool:
            publish(1)
            return "typo is not computed until it is fixed" in caplog.text

        wait_while_alive(runner, "the view it can't compute named", refused, 30)
        assert "'ret_sd_60s', which its source 'ticks_60s' does not give" in caplog.text
        batches = stream.stats.batches

        def computing_on() -> bool:
            publish(1)
            return stream.stats.batches > batches + 2

        wait_while_alive(runner, "batches after it", computing_on, 30)
        assert "typo" not in {v.name for v in stream.views} and (tick_count() or 0) > 1000
    finally:
        stream.stop()
        runner.join(30)


@pytest.mark.kafka
def test_fetches_that_never_finish_in_time_are_noticed_and_waited_longer_for(
    make_settings, broker_port: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from ingest import fetch_watch, kafka, stream

    # Tansu answers a fetch only after reading the partition, slower the more it holds: past ~15,000
    # messages every 5 ms fetch came back empty and the stream waited, silent, while ticks piled up.
    # A 0 ms wait makes every fetch come back empty on a small topic too.
    monkeypatch.setattr(stream, "FETCH_WAIT_MS", 0)
    monkeypatch.setattr(fetch_watch, "STALL_S", 3.0)
    settings: Settings = make_settings(broker_port=broker_port)
    kafka.ensure_topics(settings)
    lines = [line for _, _, line in replay.iter_lines([RECORDINGS[0]])][:40]
    producer = kafka.producer(settings)
    for value in lines:
        producer.produce(settings.topic_raw, value=value, key=b"BTC-USD")
    producer.flush(30)

    with caplog.at_level(logging.WARNING, logger="ingest.stream"):
        stats = OnlineStream(settings, until_idle=True).run()
    assert stats.messages == len(lines), stats
    warned = [r.getMessage() for r in caplog.records if "brought almost nothing" in r.getMessage()]
    assert len(warned) == 1 and "has messages past where the stream reads" in warned[0], warned
    assert "fetch.wait.max.ms=0" in warned[0] and "reconnecting with 20 ms" in warned[0]


@pytest.mark.kafka
def test_a_broker_that_answers_no_fetch_at_the_longest_wait_is_reported(
    make_settings, broker_port: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from ingest import fetch_watch, kafka

    monkeypatch.setattr(fetch_watch, "STALL_S", 1.0)
    settings: Settings = make_settings(broker_port=broker_port)
    kafka.ensure_topics(settings)
    producer = kafka.producer(settings)
    producer.produce(settings.topic_raw, value=next(replay.iter_lines([RECORDINGS[0]]))[2], key=b"BTC-USD")
    producer.flush(30)
    stream = OnlineStream(settings)
    consumer = stream._consumer(stream._fetch_watch(0))  # every fetch comes back empty
    deadline = time.monotonic() + 60
    while not consumer.assignment() and time.monotonic() < deadline:
        assert consumer.poll(0.2) is None
    watch = stream._fetch_watch(fetch_watch.MAX_FETCH_WAIT_MS)  # as after the reconnects
    with caplog.at_level(logging.WARNING, logger="ingest.stream"):
        while not caplog.records and time.monotonic() < deadline:
            assert not watch.stalled(consumer)  # no reconnect: it says so instead
            time.sleep(0.3)
    consumer.close()
    assert [r.levelname for r in caplog.records] == ["ERROR"], caplog.text
    assert (
        "answers almost no fetch even within 2000 ms" in caplog.text
        and "online features are going stale" in caplog.text
    )
