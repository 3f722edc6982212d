"""The sink against a real broker and a real DuckLake: exact counts, idempotence, rejects, restarts."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from ingest import kafka, replay
from ingest.sink import Sink
from tests.conftest import SHARED, hold_catalog_lock
from tests.ingest.helpers import query, reference_ticks, write_protected
from tickstore.lake import LakeError
from tickstore.settings import Settings

pytestmark = pytest.mark.kafka

GOOD = {
    "type": "ticker",
    "sequence": 1,
    "product_id": "SOL-USD",
    "price": "150.10",
    "best_bid": "150.09",
    "best_bid_size": "3.5",
    "best_ask": "150.11",
    "best_ask_size": "2.25",
    "side": "sell",
    "time": "2026-01-01T00:00:00.000001Z",
    "trade_id": 1,
    "last_size": "0.5",
    "volume_24h": "1000",
}


def good(i: int) -> bytes:
    return json.dumps(
        dict(GOOD, sequence=i, trade_id=i, time=f"2026-01-01T00:00:{i % 60:02d}.{i:06d}Z")
    ).encode()


def per_product(settings: Settings) -> Counter[str]:
    return Counter(dict(query(settings, "SELECT product_id, count(*) FROM ticks GROUP BY ALL")))


def publish_good(settings: Settings, path: Path, numbers: range) -> None:
    """Good ticks ``numbers`` written to ``path`` as a recording, then replayed to ticks.raw."""
    path.write_bytes(b"\n".join(good(i) for i in numbers) + b"\n")
    replay.replay(settings, [path])


@pytest.mark.slow
def test_every_recording_lands_exactly_once_and_a_second_replay_adds_nothing(
    kafka_settings: Settings,
) -> None:
    files = replay.discover([SHARED])
    expected = reference_ticks(files)
    replay.replay(kafka_settings, files)
    first = Sink(kafka_settings, until_idle=True).run()
    assert per_product(kafka_settings) == expected
    assert first.total.controls == 5 and first.total.rejects == 0

    replay.replay(kafka_settings, files)
    second = Sink(kafka_settings, until_idle=True).run()
    assert second.total.messages == first.total.messages
    assert second.total.ticks == 0 and second.total.duplicates == sum(expected.values())
    assert per_product(kafka_settings) == expected
    distinct = query(kafka_settings, "SELECT count(*) = count(DISTINCT tick_id) FROM ticks")
    assert distinct == [(True,)]


def adversarial_lines() -> list[tuple[bytes, str]]:
    """(line, expected reason prefix)."""
    return [
        (b'{"type":"ticker","product_id":"SOL-USD","price":"1', "invalid JSON"),
        (json.dumps(dict(GOOD, price=["x"])).encode(), "price is not an exact decimal"),
        (json.dumps(dict(GOOD, sequence="seven")).encode(), "unparseable sequence"),
        (
            json.dumps(dict(GOOD, price="NaN")).encode(),
            "price is not an exact decimal (at most 8 places, below 1e10): NaN",
        ),
        (json.dumps(dict(GOOD, best_ask_size="9" * 400)).encode(), "best_ask_size is not an exact decimal"),
        (json.dumps(dict(GOOD, best_bid="151", best_ask="150")).encode(), "crossed book"),
        (json.dumps(dict(GOOD, best_bid_size="-1")).encode(), "negative size"),
        (b'{"x":"' + b"a" * (10 * 1024 * 1024) + b'"}', "message too large"),
        (b'{"type":"ticker","product_id":"\xc3\x28"}', "invalid UTF-8"),
        (b"not json at all", "invalid JSON"),
    ]


def test_adversarial_lines_land_in_ticks_rejected_and_the_sink_keeps_running(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    bad = adversarial_lines()
    lines: list[bytes] = []
    for i, (line, _) in enumerate(bad):
        lines += [good(2 * i), line, good(2 * i + 1)]
    path = tmp_path / "adversarial.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")

    sink = Sink(kafka_settings)  # a long-running sink, not --until-idle
    thread = threading.Thread(target=sink.run)
    thread.start()
    try:
        replay.replay(kafka_settings, [path])
        wait_for(lambda: query(kafka_settings, "SELECT count(*) FROM ticks_rejected")[0][0] == len(bad))
        # still alive after all that: later good ticks land too
        more = tmp_path / "more.ndjson"
        more.write_bytes(b"\n".join(good(1000 + i) for i in range(5)) + b"\n")
        replay.replay(kafka_settings, [more])
        wait_for(lambda: query(kafka_settings, "SELECT count(*) FROM ticks")[0][0] == 2 * len(bad) + 5)
        assert thread.is_alive()
    finally:
        sink.stop()
        thread.join(30)
    rows = query(
        kafka_settings,
        "SELECT src_topic, src_partition, src_offset, reason, payload FROM ticks_rejected ORDER BY octet_length(payload)",
    )
    by_payload = {bytes(r[4]): r for r in rows}
    for line, reason in bad:
        topic, partition, offset, got, _ = by_payload[line]
        assert got.startswith(reason), (line[:60], got)
        assert topic == kafka_settings.topic_raw and partition >= 0 and offset >= 0
    # and the dead-letter topic has a copy of each, with its reason and source position. (Counted by
    # consuming: Tansu's high watermark ignores all but the first record of a batch.)
    copies = consume_all(kafka_settings, kafka_settings.topic_dlq, expect=len(bad))
    assert sorted(c.value() for c in copies) == sorted(line for line, _ in bad)
    for c in copies:
        headers = dict(c.headers())
        assert headers["source"].startswith(kafka_settings.topic_raw.encode() + b"/")
        assert headers["reason"]


def test_fetches_that_never_finish_in_time_are_noticed_and_waited_longer_for(
    kafka_settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from ingest import fetch_watch
    from ingest.sink import consumer

    # Tansu answers a fetch only after reading the partition: at 800,000 record batches (days of a live
    # feed, one batch a message) every 500 ms fetch of the sink came back empty.
    # A 0 ms wait makes every fetch come back empty on a small topic too.
    monkeypatch.setattr(consumer, "FETCH_WAIT_MS", 0)
    monkeypatch.setattr(fetch_watch, "STALL_S", 3.0)
    kafka.ensure_topics(kafka_settings)
    producer = kafka.producer(kafka_settings)
    for i in range(40):
        producer.produce(kafka_settings.topic_raw, value=good(i))
    producer.flush(30)

    with caplog.at_level(logging.WARNING, logger="tickstore.sink"):
        stats = Sink(kafka_settings, until_idle=True).run()
    assert stats.total.ticks == 40, stats.total  # not stopped as idle while the messages waited
    assert query(kafka_settings, "SELECT count(*) FROM ticks") == [(40,)]
    warned = [r.getMessage() for r in caplog.records if "brought almost nothing" in r.getMessage()]
    assert len(warned) == 1, caplog.text
    assert warned[0].startswith(f"sink: {kafka_settings.topic_raw} has messages past where the sink reads")
    assert "fetch.wait.max.ms=0" in warned[0] and "reconnecting with 20 ms" in warned[0]


@pytest.mark.slow
def test_the_progress_line_and_the_idle_check_do_not_hold_the_sink_behind_its_pending_fetch(
    make_settings: Callable[..., Settings],
    broker_port: int,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ingest import fetch_watch
    from ingest.sink import consumer

    # A long fetch wait, as on a large embedded partition: Tansu answered the sink's own watermark
    # questions only after its pending fetch, so each progress line held the loop ~3.4 s for three
    # partitions, past max.poll.interval.ms: librdkafka took the sink out of its group ("leaving group").
    # The fetch watch's stall check, run once a STALL_S while idle, asked the same way.
    monkeypatch.setattr(consumer, "FETCH_WAIT_MS", 2000)
    monkeypatch.setattr(fetch_watch, "STALL_S", 1.0)
    settings = make_settings(broker_port=broker_port, log_every_s=0.2, rebalance_timeout_ms=2000)
    kafka.ensure_topics(settings)
    producer = kafka.producer(settings)
    for i in range(6):
        producer.produce(settings.topic_raw, value=good(i), partition=i % 3)
        producer.flush(10)
    sink = Sink(settings)
    runner = threading.Thread(target=sink.run)
    with caplog.at_level(logging.INFO):
        runner.start()
        try:
            wait_for(lambda: sink.stats.total.ticks == 6)
            time.sleep(5)  # ~25 progress lines, each asking where the partitions end
        finally:
            sink.stop()
            runner.join(30)
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("sink: ") and "lag" in r.getMessage()
    ]
    assert len(lines) >= 10, lines
    assert "lag 0," in lines[-1]  # the fetches' watermarks say where the partitions end
    assert sink._watch.checks >= 2, sink._watch.checks  # caught up and idle: once a STALL_S
    assert not [r.getMessage() for r in caplog.records if "leaving group" in r.getMessage()]
    # with --until-idle the run ends once the broker agrees, asked apart from the pending fetch
    again = Sink(settings, until_idle=True).run()
    assert again.total.messages == 0
    assert not [r.getMessage() for r in caplog.records if "leaving group" in r.getMessage()]


@pytest.mark.slow
def test_a_catalog_locked_by_another_process_is_waited_for_not_taken_for_bad_data(
    kafka_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tickstore import lake

    lake.connect(kafka_settings).close()  # the lake exists; now another process holds its catalog
    path = tmp_path / "two.ndjson"
    path.write_bytes(good(1) + b"\n" + good(2) + b"\n")
    replay.replay(kafka_settings, [path])
    holder = hold_catalog_lock(kafka_settings, 15)
    try:
        stats = Sink(kafka_settings, until_idle=True).run()
    finally:
        holder.kill()
        holder.wait()
    # Five failed attempts were taken for a bad batch: it was bisected down to single messages, whose
    # rejection failed on the same lock and stopped the sink (had the lock cleared just then, valid
    # ticks would have been stored as rejects). Now the batch waits for the lock.
    assert (stats.total.ticks, stats.total.rejects) == (2, 0)
    assert query(kafka_settings, "SELECT count(*) FROM ticks_rejected") == [(0,)]
    # waiting 15 s, past max.poll.interval.ms, the sink stayed in its group: it had left it, its
    # offset commit failed, and it joined again to read the batch a second time
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if "maximum poll interval" in m or "commit failed" in m], said
    # said once, past 5 s; each attempt was a "lake write failed" warning, which two sinks' commits
    # made a few times a minute
    assert len([m for m in said if "has been locked by another process for" in m]) == 1, said
    assert not [m for m in said if "lake write failed" in m], said


@pytest.mark.slow
def test_a_stop_while_the_catalog_is_locked_returns_soon_and_loses_nothing(
    kafka_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tickstore import lake

    lake.connect(kafka_settings).close()
    path = tmp_path / "two.ndjson"
    path.write_bytes(good(1) + b"\n" + good(2) + b"\n")
    replay.replay(kafka_settings, [path])
    holder = hold_catalog_lock(kafka_settings, 120)
    try:
        sink = Sink(kafka_settings)
        runner = threading.Thread(target=sink.run)
        runner.start()
        try:
            wait_for(lambda: any("has been locked" in r.getMessage() for r in caplog.records))
        finally:  # the sink's thread stopped whatever happened: left running, pytest never ended
            stopped_at = time.monotonic()
            sink.stop()  # what SIGTERM does
            runner.join(30)
        # The stop used to be acted on only when the lock cleared, or after five minutes.
        assert not runner.is_alive(), "the sink kept waiting for the lock after being stopped"
        assert time.monotonic() - stopped_at < 15
        assert (sink.stats.total.ticks, sink.stats.left_uncommitted) == (0, 2)
    finally:
        holder.kill()
        holder.wait()
    again = Sink(kafka_settings, until_idle=True).run()  # the batch was left uncommitted: read again
    assert again.total.ticks == 2
    assert per_product(kafka_settings) == {"SOL-USD": 2}


@pytest.mark.slow
def test_a_lake_the_machine_will_not_write_stops_the_sink_and_loses_nothing(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    kafka_settings = kafka_settings.model_copy(update={"sink_inline_rows": 0})  # a batch is a file
    publish_good(kafka_settings, tmp_path / "first.ndjson", range(1, 31))
    assert Sink(kafka_settings, until_idle=True).run().total.ticks == 30
    data_files = kafka_settings.lake_data / "main" / "ticks"
    assert any(data_files.glob("*.parquet")), "the first batch was inlined: no data folder to protect"

    publish_good(kafka_settings, tmp_path / "second.ndjson", range(31, 61))
    with write_protected(data_files), pytest.raises(LakeError, match="may not write there.*resumes from"):
        Sink(kafka_settings, until_idle=True).run()
    # The batch was bisected as if one of its messages were bad, and its good ticks were filed as
    # rejects with the machine's error; now nothing of it is in the lake and nothing is committed.
    assert query(kafka_settings, "SELECT count(*) FROM ticks_rejected") == [(0,)]
    assert per_product(kafka_settings) == {"SOL-USD": 30}

    again = Sink(kafka_settings, until_idle=True).run()
    assert (again.total.ticks, again.total.rejects) == (30, 0)
    assert per_product(kafka_settings) == {"SOL-USD": 60}


def test_a_stop_while_a_failing_write_is_retried_returns_soon_and_loses_nothing(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    from tickstore import lake

    publish_good(kafka_settings, tmp_path / "r.ndjson", range(1, 41))
    lake.connect(kafka_settings, create=True).close()
    con = lake.connect(kafka_settings, create=False)
    con.execute("ALTER TABLE ticks DROP COLUMN volume_24h")  # every write fails alike
    con.close()
    sink = Sink(kafka_settings, until_idle=True)

    class StopAtFirstFailure(logging.Handler):
        """`kill` (SIGTERM) as the first failed write is logged."""

        def emit(self, record: logging.LogRecord) -> None:
            if "lake write failed" in record.getMessage():
                sink.stop()

    handler = StopAtFirstFailure()
    logging.getLogger("tickstore").addHandler(handler)
    try:
        started = time.monotonic()
        stats = sink.run()
        took = time.monotonic() - started
    finally:
        logging.getLogger("tickstore").removeHandler(handler)
    # it went on retrying and then bisecting the batch (~3 s a message), whatever the stop
    assert took < 15, took
    assert stats.left_uncommitted > 0 and stats.total.ticks == 0
    assert query(kafka_settings, "SELECT count(*) FROM ticks_rejected") == [(0,)]


def wait_for(condition, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (LakeError, duckdb.Error):  # the sink has not created the lake yet
            pass
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def consume_all(settings: Settings, topic: str, expect: int, timeout: float = 30.0) -> list:  # type: ignore[type-arg]
    """Every message of ``topic`` (read by a fresh group), once ``expect`` have arrived."""
    consumer = kafka.consumer(settings, group=f"check.{topic}")
    consumer.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < expect and time.monotonic() < deadline:
            got += [m for m in consumer.consume(100, 0.5) if m.error() is None]
    finally:
        consumer.close()
    return got
