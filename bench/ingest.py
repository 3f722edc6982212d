"""Benchmark: sustained Kafka -> DuckLake sink throughput over >= 1M simulated ticks, 3 products.

Publishes the ticks first (not timed), then times `tickstore sink --until-idle` draining the topic
on a real embedded broker into a fresh lake. Prints ticks/s, p99 batch-commit latency and the
lake's data files afterwards (before and after compaction).

    make bench            # or: .venv/bin/python bench/ingest.py --ticks 1000000
"""

from __future__ import annotations

import argparse
import atexit
import logging
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest import broker, simulate  # noqa: E402
from ingest.sink import Sink  # noqa: E402
from ingest.sink.compaction import compact, data_file_count  # noqa: E402
from tickstore import lake  # noqa: E402
from tickstore.settings import Settings  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--ticks",
        type=int,
        default=1_000_000,
        help="simulated ticks published, then sunk (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-rows",
        type=int,
        default=100_000,
        help="the sink's most rows a batch, as TICKSTORE_SINK_BATCH_ROWS (default: %(default)s)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    home = Path(tempfile.mkdtemp(prefix="tickstore-bench-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)  # a run leaves no lake behind
    s = Settings(
        home=home,
        broker_port=free_port(),
        rebalance_timeout_ms=3000,
        sink_batch_rows=args.batch_rows,
        sink_idle_ms=1000,
        compact_every_s=1e9,
    )
    broker.start(s)
    try:
        t0 = time.monotonic()
        n = simulate.publish(s, simulate.SimConfig(n_ticks=args.ticks))
        print(f"published {n:,} simulated ticks in {time.monotonic() - t0:.1f} s (not timed)")
        sink = Sink(s, until_idle=True)
        stats = sink.run()
        con = lake.connect(s)
        rows = con.execute("SELECT count(*) FROM ticks").fetchone()[0]  # type: ignore[index]
        files_before = data_file_count(con)
        compact(con, 0)
        files_after = data_file_count(con)
        print(f"sink: {rows:,} ticks in lake ({stats.total.ticks:,} new) in {stats.batches} batches")
        # From the first message received to the last offset commit: consume, parse, dedupe, lake
        # commit, offset commit. The group join before it (Tansu waits the rebalance timeout) is not.
        print(f"sustained throughput Kafka -> lake: {stats.sustained_rate():,.0f} ticks/s (target 50,000)")
        print(
            f"p99 batch-commit latency: {stats.p99_commit_s() * 1000:.0f} ms (batch <= {args.batch_rows:,} rows)"
        )
        print(f"lake data files: {files_before} before compaction, {files_after} after")
    finally:
        broker.stop(s)


if __name__ == "__main__":
    main()
