"""`tickstore stream` restarted: its windows refilled from what it had processed, and only from
within their reach."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from ingest import replay
from ingest.stream import OnlineStream
from tests.ingest.helpers import RECORDINGS, VIEWS, offline_rows, same
from tickstore.settings import Settings


@pytest.mark.kafka
@pytest.mark.slow
def test_a_restarted_stream_serves_whole_windows_at_once(
    make_settings, broker_port: int, tmp_path: Path
) -> None:
    from ingest import kafka

    settings: Settings = make_settings(broker_port=broker_port)
    kafka.ensure_topics(settings)
    lines = [line for _, _, line in replay.iter_lines([RECORDINGS[0]])][:600]
    before, after = lines[:500], lines[500:]

    def publish(values: list[bytes]) -> None:
        producer = kafka.producer(settings)
        for value in values:
            producer.produce(settings.topic_raw, value=value, key=b"BTC-USD")
        producer.flush(30)

    publish(before)
    OnlineStream(settings, until_idle=True).run()
    publish(after)  # while the stream is down: a deploy, a crash
    restarted = OnlineStream(settings, until_idle=True)
    stats = restarted.run()
    # the 500 it had processed refilled the windows only; the 100 new ones were processed
    assert (stats.warmed, stats.messages) == (len(before), len(after))

    (tmp_path / "all.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    online = restarted.store.get_online_features(
        features=restarted.store.get_feature_service("volatility_model"),
        entity_rows=[{"product_id": "BTC-USD"}],
    ).to_dict()
    for view in VIEWS:
        offline = offline_rows([tmp_path / "all.ndjson"], view)
        newest = max(at for product, at in offline if product == "BTC-USD")
        expected = offline[("BTC-USD", newest)]
        # The tail began empty at every start: for a window's length after it, the online values
        # covered only the ticks read since (tick_count_300s 100 where the window held 600 ticks).
        for column, value in expected.items():
            if column not in ("product_id", "event_time"):
                assert same(online[column][0], value), (view, column, online[column][0], value)


@pytest.mark.kafka
@pytest.mark.slow
def test_a_restart_re_reads_only_what_is_within_the_tail_s_reach(
    make_settings, broker_port: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Tansu can't look offsets up by time (it answers its log's start), so a restart re-read whole
    partitions; the stream's own marks of where its tail begins now start it there."""
    from confluent_kafka import TopicPartition

    from ingest import fetch_watch, kafka

    # as if more than 2 record batches were past the 5 ms wait's reach (it is ~4,000:
    # ingest/fetch_watch.py); three flushes below make 3 batches at least
    monkeypatch.setattr(fetch_watch, "TANSU_WAITS", ((2, 5), (10**9, 20)))

    settings: Settings = make_settings(broker_port=broker_port)
    kafka.ensure_topics(settings)
    lines = [line for _, _, line in replay.iter_lines([RECORDINGS[0]])][:560]
    hour_ago_ms = int((time.time() - 3600) * 1000)  # far beyond the tail's reach (twice 300 s)
    producer = kafka.producer(settings)

    def publish(values: list[bytes], timestamp: int = 0) -> None:
        for value in values:
            producer.produce(settings.topic_raw, value=value, key=b"BTC-USD", timestamp=timestamp)
        producer.flush(30)

    publish(lines[:400], timestamp=hour_ago_ms)
    publish(lines[400:500])
    OnlineStream(settings, until_idle=True).run()
    # one partition (one key): its tail begins at the first message within reach
    probe = kafka.consumer(settings, settings.stream_group + ".tail")
    marks = probe.committed([TopicPartition(settings.topic_raw, p) for p in range(3)], timeout=10)
    probe.close()
    assert [tp.offset for tp in marks if tp.offset >= 0] == [400], marks
    publish(lines[500:])
    with caplog.at_level("INFO", logger="ingest.stream"):
        stats = OnlineStream(settings, until_idle=True).run()
    # only the 100 messages within reach refilled the tail (the hour-old 400 were not fetched again)
    assert (stats.warmed, stats.messages) == (100, 60)
    # and it fetched with the wait a partition of that size needs from the start
    assert re.search(
        r"holds [\d,]+ record batches, past what the embedded broker answers within a 5 ms fetch wait: "
        r"fetching with 20 ms",
        caplog.text,
    ), caplog.text


@pytest.mark.kafka
def test_a_partition_read_here_up_to_the_group_s_offset_is_not_rewound(kafka_settings: Settings) -> None:
    # A stream that made its consumer again (a longer fetch wait) re-read its whole tail, ~2 s of a
    # live feed's, into the tail it already held; a partition it has not read that far still is.
    from confluent_kafka import TopicPartition

    from ingest import kafka, refill

    s = kafka_settings
    kafka.ensure_topics(s)
    producer = kafka.producer(s)
    for _ in range(10):
        producer.produce(s.topic_raw, value=b"{}", partition=0)  # now: within the tail's reach
    producer.flush(30)
    group = kafka.consumer(s, s.stream_group)
    group.commit(offsets=[TopicPartition(s.topic_raw, 0, 10)], asynchronous=False)
    key = (s.topic_raw, 0)
    reach = OnlineStream(s).keep

    def rewound(held: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        return refill.rewind(group, [TopicPartition(s.topic_raw, 0)], reach, held=held)

    assert rewound({}) == {key: 10}  # a restart: refilled up to the group's offset
    assert rewound({key: 6}) == {key: 10}  # read here, but not that far (another stream went on)
    assert rewound({key: 10}) == {}  # read here up to there: the tail holds it
    group.close()
