"""The sink's upkeep over days: its memory stays flat while it writes, and long work (a compaction, a
big batch's write) keeps it in its group."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from ingest import simulate
from ingest.sink import Sink
from ingest.sink.compaction import TIERS, data_file_count
from tests.ingest.test_sink import per_product, publish_good, wait_for
from tickstore import lake
from tickstore.settings import Settings

pytestmark = pytest.mark.kafka


def test_a_long_running_sink_moves_to_a_new_duckdb_after_compacting_and_keeps_writing(
    make_settings: Callable[..., Settings], broker_port: int, tmp_path: Path
) -> None:
    """A new instance frees what the old one gathered (its caches grew with every commit), and the
    file cache is off: the sink reads a file about once."""
    settings = make_settings(broker_port=broker_port, compact_every_s=0.5, sink_inline_rows=50)
    sink = Sink(settings)
    thread = threading.Thread(target=sink.run)
    thread.start()
    try:
        publish_good(settings, tmp_path / "first.ndjson", range(10))
        wait_for(lambda: per_product(settings)["SOL-USD"] == 10)
        first = sink._con
        wait_for(lambda: sink._con is not first)  # compacted, then a new instance
        with pytest.raises(duckdb.ConnectionException):
            first.execute("SELECT 1")  # the old one closed: nothing holds its memory
        publish_good(settings, tmp_path / "second.ndjson", range(10, 20))
        wait_for(lambda: per_product(settings)["SOL-USD"] == 20)  # written through the new one
        assert thread.is_alive()
        con = sink._con
        assert con is not None
        # a cursor of its own: the sink's thread runs its statements on the sink's (a query on it from
        # here once read the sink's own result)
        setting = con.cursor().execute("SELECT current_setting('enable_external_file_cache')").fetchone()
        assert setting == (False,)
        inlining = con.cursor().execute(
            "SELECT value FROM ducklake_options('lake') WHERE option_name = 'data_inlining_row_limit'"
        )
        assert inlining.fetchone() == ("50",)  # the sink set the lake's, at its start
    finally:
        sink.stop()
        thread.join(30)


def fill_a_top_tier(settings: Settings, files: int = 16, rows: int = 250_000) -> None:
    """``files`` data files of ``rows`` ticks each in the lake, all in the largest merged tier."""
    con = lake.connect(settings)
    try:
        # a year before the tests' own ticks: the sink's check of each batch against the lake prunes these
        # files by their time statistics. Overlapping them, it read all 285 MiB in a write, without a poll:
        # past the 1 s max.poll.interval.ms the sink left its group before any compaction (a loaded CI)
        for f in range(files):  # one INSERT, one file
            con.execute(
                "INSERT INTO ticks SELECT 'XBT-FILL', TIMESTAMPTZ '2025-01-01' + to_microseconds(i * 1000 + $f), "
                "'exchange', i, hash(i, $f), i, 'buy', random() * 10, 50000 + random() * 100, "
                "50000 + random() * 100, random(), 50000 + random() * 100, random(), random() * 1e6, "
                "'ticks.raw', 0, i, now(), now() FROM range($n) t(i)",
                {"n": rows, "f": f},
            )
        sizes = con.execute(
            "SELECT data_file_size_bytes FROM ducklake_list_files('lake', 'ticks')"
        ).fetchall()
        assert len(sizes) == files and all(TIERS[3] <= size < TIERS[4] for (size,) in sizes), sizes
    finally:
        con.close()


@pytest.mark.slow
def test_the_sink_stays_in_its_group_through_a_compaction_longer_than_max_poll(
    make_settings: Callable[..., Settings],
    broker_port: int,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The merge of a full top tier (16 files of 16-256 MiB) ran in the sink's loop without a poll:
    past max.poll.interval.ms librdkafka took the sink out of its group, and it joined again (on the
    embedded broker, a whole rebalance timeout later). Here ~285 MiB merge in ~1.8 s, past 1 s."""
    settings = make_settings(broker_port=broker_port, compact_every_s=4, rebalance_timeout_ms=1000)
    fill_a_top_tier(settings)
    publish_good(settings, tmp_path / "first.ndjson", range(10))
    sink = Sink(settings)
    thread = threading.Thread(target=sink.run)
    with caplog.at_level(logging.INFO):
        thread.start()
        try:
            wait_for(lambda: per_product(settings)["SOL-USD"] == 10)
            wait_for(lambda: any(r.getMessage() == "sink: compacted the lake" for r in caplog.records))
            publish_good(settings, tmp_path / "second.ndjson", range(10, 20))
            wait_for(lambda: per_product(settings)["SOL-USD"] == 20)
            time.sleep(1)  # a re-read would land by now
        finally:
            sink.stop()
            thread.join(30)
    said = [r.getMessage() for r in caplog.records]
    assert not left_its_group(said), said
    assert per_product(settings) == {"XBT-FILL": 16 * 250_000, "SOL-USD": 20}
    con = lake.connect(settings, read_only=True)
    try:
        assert data_file_count(con) < 16  # the tier was merged
    finally:
        con.close()


@pytest.mark.slow
def test_a_stop_during_a_compaction_interrupts_it_and_loses_nothing(
    make_settings: Callable[..., Settings],
    broker_port: int,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A SIGTERM waited for the pass to end (1.8 s here; a full top tier holds up to 4 GiB); now the
    pass is interrupted and its transaction rolled back."""
    settings = make_settings(broker_port=broker_port, compact_every_s=5)
    fill_a_top_tier(settings)
    publish_good(settings, tmp_path / "first.ndjson", range(10))
    sink = Sink(settings)
    thread = threading.Thread(target=sink.run)
    with caplog.at_level(logging.INFO, logger="tickstore.sink"):
        thread.start()
        try:
            wait_for(lambda: per_product(settings)["SOL-USD"] == 10)
            wait_for(lambda: any(t.name == "tickstore-compaction" for t in threading.enumerate()), 30)
            time.sleep(0.3)  # into the merge
        finally:
            stopped = time.monotonic()
            sink.stop()
            thread.join(30)
    assert time.monotonic() - stopped < 1.5  # the merge alone takes ~1.8 s here
    said = [r.getMessage() for r in caplog.records if r.name == "tickstore.sink"]
    assert "sink: stopped during a compaction: it was left undone, the next run compacts" in said, said
    assert per_product(settings) == {"XBT-FILL": 16 * 250_000, "SOL-USD": 10}
    con = lake.connect(settings)
    try:
        big = con.execute(
            "SELECT count(*) FROM ducklake_list_files('lake', 'ticks') WHERE data_file_size_bytes >= $low",
            {"low": TIERS[3]},
        ).fetchone()
        assert big == (16,)  # rolled back: the tier is as it was
    finally:
        con.close()


def left_its_group(said: list[str]) -> list[str]:
    """What librdkafka and the sink say when the sink fell out of its group."""
    return [m for m in said if "maximum poll interval" in m or "leaving group" in m or "commit failed" in m]


@pytest.mark.slow
def test_a_write_longer_than_max_poll_keeps_the_sink_in_its_group_and_the_topics_end_is_not_held_back(
    make_settings: Callable[..., Settings], broker_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A big batch's write (~9 s a million ticks here) ran in the sink's loop without a poll: past
    max.poll.interval.ms the sink left its group, its offset commit failed, and it read the whole
    batch again as duplicates. And with --until-idle, the last batch, read to the topic's end, waited
    out TICKSTORE_SINK_BATCH_MS (a minute at "lag 0", as set) before it was written."""
    ticks = 500_000  # one batch, seconds to write: past the 1 s max.poll.interval.ms on any machine
    settings = make_settings(
        broker_port=broker_port, rebalance_timeout_ms=1000, sink_batch_rows=1_000_000, sink_batch_ms=600_000
    )
    simulate.publish(settings, simulate.SimConfig(n_ticks=ticks))
    with caplog.at_level(logging.INFO):
        started = time.monotonic()
        stats = Sink(settings, until_idle=True).run()
        took = time.monotonic() - started
    assert not left_its_group([r.getMessage() for r in caplog.records]), caplog.text
    assert (stats.total.ticks, stats.total.duplicates, stats.batches) == (ticks, 0, 1)
    assert took < 120, took  # not the 600 s batch wait
    assert sum(per_product(settings).values()) == ticks
