"""Benchmark: `tickstore dataset build` over entity rows in time order and the same rows shuffled.

    make bench            # or: .venv/bin/python bench/dataset.py [--ticks 10000000] [--entities 3000000]
    .venv/bin/python bench/dataset.py --as-given   # also the shuffled rows built as before stop 35

A build reads features a chunk of entity rows at a time (training/dataset.py's CHUNK_ROWS), each over
the ticks its rows span; shuffled rows are built in time order and written back in their own
(training/entity_order.py). Each build runs in a fresh child process so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import atexit
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def step_entities(home: str, entities: int) -> dict:  # type: ignore[type-arg]
    """``entities`` entity rows at random times over the lake's ticks, written shuffled and in time
    order (the build applies the repo's views itself)."""
    import numpy as np
    import pandas as pd

    from tickstore import lake
    from tickstore.settings import Settings

    con = lake.connect(Settings(home=Path(home)), create=False)
    first, last = con.execute("SELECT min(event_time), max(event_time) FROM ticks").fetchone()  # type: ignore[misc]
    con.close()
    rng = np.random.default_rng(1)
    rows = pd.DataFrame(
        {
            "product_id": rng.choice(["BTC-USD", "ETH-USD", "SOL-USD"], entities),
            "event_timestamp": (
                pd.Timestamp(first)
                + pd.to_timedelta(rng.uniform(0, (last - first).total_seconds(), entities), unit="s")
            ).floor("us"),
        }
    )
    rows.to_parquet(f"{home}/shuffled.parquet", index=False)
    rows.sort_values("event_timestamp", kind="stable").to_parquet(
        f"{home}/in_time_order.parquet", index=False
    )
    return {"first": str(first), "last": str(last)}


def step_build(home: str, rows: str, as_given: bool = False) -> dict:  # type: ignore[type-arg]
    """One `dataset build` of ``rows``, timed, with its peak memory and a checksum of its features;
    ``as_given``: chunks in the rows' own order, as before stop 35."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from tickstore.settings import Settings
    from training import dataset, entity_order
    from training.entities import file_entities

    if as_given:  # the build as it was: every chunk in the rows' order (a bench-only switch)
        entity_order.time_order = lambda frame, chunk_rows: None  # type: ignore[assignment]
    s = Settings(home=Path(home))
    out = Path(home) / f"out_{Path(rows).stem}{'_as_given' * as_given}.parquet"
    started = time.perf_counter()
    dataset.build(s, file_entities(Path(rows)), out)
    seconds = time.perf_counter() - started
    table = pq.read_table(out, columns=["tick_count_60s"])
    return {
        "seconds": seconds,
        "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024,
        "rows": table.num_rows,
        "checksum": int(pc.sum(table.column(0)).as_py() or 0),
    }


STEPS = {"entities": step_entities, "build": step_build}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--ticks", type=int, default=10_000_000, help="simulated ticks in the lake (default: %(default)s)"
    )
    parser.add_argument(
        "--entities",
        type=int,
        default=3_000_000,
        help="entity rows of each training set (default: %(default)s)",
    )
    parser.add_argument(
        "--as-given",
        action="store_true",
        help="also build the shuffled rows chunk by chunk as given (before stop 35)",
    )
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--kw", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:  # a child process
        print(json.dumps(STEPS[args.step](args.home, **json.loads(args.kw)), default=str))
        return

    # the offline bench's machine line, child processes and simulated lake ("load"), for comparing runs
    from bench.offline import child, machine

    print(f"machine: {machine()}")
    home = tempfile.mkdtemp(prefix="tickstore-bench-dataset-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    print(
        f"simulating {args.ticks:,} ticks into a fresh lake, {args.entities:,} entity rows at random times ..."
    )
    child("load", home, ticks=args.ticks)
    child("entities", home, script=__file__, entities=args.entities)
    results = {}
    for name in ("in_time_order", "shuffled"):
        r = results[name] = child("build", home, script=__file__, rows=f"{home}/{name}.parquet")
        print(
            f"dataset build, {r['rows']:,} entity rows {name.replace('_', ' ')}: {r['seconds']:.1f} s "
            f"({r['rows'] / r['seconds']:,.0f} rows/s), peak {r['peak_gb']:.1f} GB"
        )
    if args.as_given:
        r = results["as_given"] = child(
            "build", home, script=__file__, rows=f"{home}/shuffled.parquet", as_given=True
        )
        print(
            f"dataset build, {r['rows']:,} entity rows shuffled, chunked as given (before stop 35): "
            f"{r['seconds']:.1f} s ({r['rows'] / r['seconds']:,.0f} rows/s), peak {r['peak_gb']:.1f} GB"
        )
    a, b = results["in_time_order"], results["shuffled"]
    print(
        f"shuffled / in time order: {b['seconds'] / a['seconds']:.2f}x the time, {b['peak_gb'] / a['peak_gb']:.2f}x the memory"
    )
    if args.as_given:
        c = results["as_given"]
        print(
            f"shuffled, as given / in time order first: {c['seconds'] / b['seconds']:.2f}x the time, {c['peak_gb'] / b['peak_gb']:.2f}x the memory"
        )
    same = len({r["checksum"] for r in results.values()}) == 1
    print(f"same features (sum of tick_count_60s): {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
