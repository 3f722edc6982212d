"""The stream's upkeep between batches: its in-memory tail, its progress line, an online store lost or
restarted under it, and its registry."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.stream import OnlineStream
from tests.conftest import SHARED
from tickstore.settings import Settings


def test_the_tail_gives_back_the_memory_of_what_it_prunes(make_settings: Callable[..., Settings]) -> None:
    from ingest import wire

    # DuckDB keeps deleted rows of in-memory tables until a checkpoint: the pruned tail and the
    # parser's per-batch temp rows grew a long-running stream by ~1.3 KB a message
    files = sorted((SHARED / "advanced_trade").glob("btc-usd_20251206_05*.ndjson"))
    lines = [line for f in files for line in f.read_bytes().splitlines()]
    stream = OnlineStream(make_settings())

    def table_mb() -> float:
        row = stream.con.execute(
            "SELECT sum(memory_usage_bytes) FROM duckdb_memory() WHERE tag = 'IN_MEMORY_TABLE'"
        ).fetchone()
        return (row[0] if row else 0) / 2**20

    for i in range(0, len(lines), 20):  # batches as small as a live feed's
        stream._ingest(wire.lines_table(lines[i : i + 20]))
        if i % 1000 == 0 or i + 20 >= len(lines):
            stream._last_prune = 0  # as every PRUNE_EVERY_S
            stream._periodic()
    kept = stream.con.execute("SELECT count(*), max(event_time) - min(event_time) FROM ticks").fetchone()
    assert kept is not None and kept[0] < len(lines) // 2 and kept[1] <= stream.keep, kept
    assert table_mb() < 3, f"{table_mb():.1f} MB held for {kept[0]} ticks in the tail"


def test_the_progress_line_gives_the_freshness_of_the_messages_since_the_last_line(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    # Over the newest 10,000 messages, the backlog a stream starts on (hours old when produced) kept
    # the live feed's p99 at 1,647,636 ms for a quarter of an hour after the stream had caught up.
    stream = OnlineStream(make_settings())

    def line_after(latencies_s: list[float]) -> str:
        stream.stats.freshness_s.extend(latencies_s)  # as a batch adds its messages' latencies
        stream.stats.measured += len(latencies_s)
        stream._last_log = 0
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="ingest.stream"):
            stream._periodic()
        return " ".join(r.getMessage() for r in caplog.records if "online rows" in r.getMessage())

    assert "500 since the last line, freshness p99 3,600,000 ms" in line_after([3600.0] * 500)
    assert "3 since the last line, freshness p99 52 ms" in line_after([0.052, 0.041, 0.052])
    assert "no freshness measured since the last line" in line_after([])
    assert "10,000+ since the last line, freshness p99 20 ms" in line_after([3600.0] + [0.02] * 12_000)


def test_a_removed_online_store_file_is_made_again_and_written_to(
    make_settings: Callable[..., Settings],
) -> None:
    from ingest import wire
    from tickstore_feast.repo import feature_store

    # Removing the file is how to empty the SQLite online store: under a running stream, its writes
    # went on into the removed file, which no reader (scorer, `tickstore status`) could see
    s = make_settings()
    stream = OnlineStream(s)
    lines = (SHARED / "advanced_trade" / "btc-eth-usd_2026-04-03_no-sizes.ndjson").read_bytes().splitlines()

    def batch(part: list[bytes]) -> list[str]:
        _, products, _ = stream._ingest(wire.lines_table(part))
        stream._write_newest(sorted(products))
        return sorted(products)

    def newest(products: list[str]) -> list[int]:
        """Each product's newest tick as a reader opening the file at its path now sees it."""
        online = feature_store(s, apply=False).get_online_features(
            features=["tick_clock:event_time_us"], entity_rows=[{"product_id": p} for p in products]
        )
        return list(online.to_dict()["event_time_us"])

    products = batch(lines[:300])
    assert products == ["BTC-USD", "ETH-USD"]
    written = newest(products)
    assert None not in written
    for part in (s.home / "feast").glob("online_store.db*"):
        part.unlink()
    stream._last_registry_check = 0  # as every second
    stream._periodic()
    assert newest(products) == written  # made again, every product of the tail written there at once
    batch(lines[300:600])
    later = newest(products)
    assert all(b > a for a, b in zip(written, later, strict=True)), (written, later)


def test_messages_produced_before_the_stream_joined_its_group_are_not_its_freshness(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    # a stream started beside a running feed reported "p99 4,424 ms": its first batch had waited for
    # the group join (6 s on the embedded broker), the ~200 messages after it 60-200 ms
    stream = OnlineStream(make_settings())
    stats = stream.stats
    stats.joined_ms = 1_000_000.0  # as the first partition assignment sets it
    assert stats.measure([994_000.0, 999_500.0, 1_000_010.0, 1_000_020.0], 1_000_060.0) == [0.05, 0.04]
    assert (stats.backlog, stats.backlog_wait_s, stats.measured) == (2, 6.06, 2)

    def line() -> str:
        stream._last_log = 0
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="ingest.stream"):
            stream._periodic()
        return " ".join(r.getMessage() for r in caplog.records if "online rows" in r.getMessage())

    assert line().endswith(
        "2 since the last line, freshness p99 40 ms (2 produced before the stream joined its group, "
        "not counted: they waited up to 6.1 s)"
    )
    assert line().endswith("no freshness measured since the last line")  # said once


@pytest.mark.kafka
def test_until_idle_with_nothing_to_read_stops_once_the_broker_says_so(
    make_settings: Callable[..., Settings], broker_port: int
) -> None:
    from ingest import kafka

    s = make_settings(broker_port=broker_port)
    kafka.ensure_topics(s)
    started = time.monotonic()
    stats = OnlineStream(s, until_idle=True).run()
    took = time.monotonic() - started
    # it waited out the whole join limit (3 x the 6 s rebalance timeout + 30 s): 48 s
    assert stats.messages == 0 and took < 20, took


def test_a_redis_restarted_under_the_stream_is_written_each_product_again(
    make_settings: Callable[..., Settings], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from ingest import wire
    from tests.conftest import free_port, start_redis

    # Redis back from a restart held none of the stream's rows (or its last snapshot's): a product
    # with no tick since stayed unknown to the scorer (404), or stale, until its next tick
    port = free_port()
    redis = start_redis(port, tmp_path / "redis")
    try:
        s = make_settings(online_store="redis", redis_url=f"127.0.0.1:{port}")
        stream = OnlineStream(s)
        lines = (
            (SHARED / "advanced_trade" / "btc-eth-usd_2026-04-03_no-sizes.ndjson").read_bytes().splitlines()
        )

        def newest(products: list[str]) -> list[int]:
            online = stream.store.get_online_features(
                features=["tick_clock:event_time_us"], entity_rows=[{"product_id": p} for p in products]
            )
            return list(online.to_dict()["event_time_us"])

        _, products, _ = stream._ingest(wire.lines_table(lines[:300]))
        stream._write_newest(sorted(products))
        both = sorted(products)
        assert both == ["BTC-USD", "ETH-USD"]
        written = newest(both)
        assert None not in written
        stream._last_registry_check = 0
        stream._periodic()  # the same server: nothing written again
        assert "restarted" not in caplog.text
        redis.terminate()
        redis.wait(10)
        redis = start_redis(port, tmp_path / "redis")  # empty
        assert newest(both) == [None, None]
        stream._last_registry_check = 0  # as every second
        with caplog.at_level(logging.WARNING, logger="ingest.stream"):
            stream._periodic()
        assert newest(both) == written  # every product of the tail, at once, not at its next tick
        assert f"the Redis online store at 127.0.0.1:{port} restarted while the stream ran" in caplog.text
    finally:
        redis.terminate()
        redis.wait(10)


def test_a_removed_registry_leaves_the_stream_computing_its_views_until_one_is_applied(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    from feast import FeatureStore

    from ingest import wire
    from tickstore.paths import FEATURE_REPO
    from tickstore_feast.config import repo_config
    from tickstore_feast.repo import feature_store

    # removing the registry is how to replace a damaged one: a running stream died of it, in
    # Feast's FileNotFoundError traceback, at its next look at the registry
    s = make_settings()
    stream = OnlineStream(s)
    lines = (SHARED / "advanced_trade" / "btc-eth-usd_2026-04-03_no-sizes.ndjson").read_bytes().splitlines()
    (s.home / "feast" / "registry.db").unlink()

    def look() -> str:
        stream._last_registry_check = 0  # as every second
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="ingest.stream"):
            stream._periodic()
        return " ".join(r.getMessage() for r in caplog.records if "registry" in r.getMessage())

    said = look()
    assert "the feature registry" in said and "was removed: `tickstore feast apply` registers" in said, said
    assert "computing ticks_10s, ticks_300s, ticks_60s, tick_clock as registered before" in said
    assert look() == ""  # said once
    _, products, _ = stream._ingest(wire.lines_table(lines[:300]))
    assert set(stream._write_newest(sorted(products))) == {
        "ticks_10s",
        "ticks_60s",
        "ticks_300s",
        "tick_clock",
    }
    # Feast's registry, opened where there is none, writes an empty one: so does its apply, for the
    # seconds it then takes to read feature_repo/
    empty = FeatureStore(repo_path=str(FEATURE_REPO), config=repo_config(s)).registry
    assert not empty.list_feature_views("tickstore")
    assert "holds no feature view: `tickstore feast apply`" in look()
    assert len(stream.views) == 4
    (s.home / "feast" / "registry.db").write_bytes(b"\x00 cut short")
    said = look()
    assert "is damaged" in said and "computing ticks_10s, ticks_300s, ticks_60s, tick_clock as" in said
    assert len(stream.views) == 4
    (s.home / "feast" / "registry.db").unlink()  # as its error says
    feature_store(s)  # applied again, as `tickstore feast apply` does
    assert look() == ""  # the same views: nothing to say
    assert len(stream.views) == 4
