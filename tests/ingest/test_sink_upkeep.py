"""The sink's upkeep over days: its memory stays flat while it writes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from ingest.sink import Sink
from tests.ingest.test_sink import per_product, publish_good, wait_for
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
