"""Benchmark: feature SQL over 10M ticks, a 1M-row point-in-time training set, and Feast's own DuckDB
offline store beside ours at 100k entity rows; ad-hoc SQL over a view's last hour, filtered or called
with the range.

    make bench            # or: .venv/bin/python bench/offline.py [--ticks 10000000] [--entities 1000000]

Each measurement runs in a fresh child process so its peak memory (max RSS) is its own.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent


def child(step: str, home: str, script: str = __file__, **kw: object) -> dict:  # type: ignore[type-arg]
    """Run one measurement (a step of ``script``: this file's unless another bench's) in a new
    process; returns its result plus its peak RSS."""
    out = subprocess.run(
        [sys.executable, script, "--step", step, "--home", home, "--kw", json.dumps(kw)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{step} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    """CPU model, cores, DuckDB version and block pool: machines of one size gave figures 1.6x apart."""
    import duckdb

    from tickstore.settings import Settings

    model = "CPU model unknown"
    try:
        cpu: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().split("\n\n")[0].splitlines():
            key, _, value = line.partition(":")
            cpu[key.strip()] = value.strip()
        model = cpu["model name"]
        # virtual machines often show a bare "AMD EPYC": family, model and clock tell them apart
        model += f" (family {cpu.get('cpu family', '?')} model {cpu.get('model', '?')}"
        model += f", {float(cpu.get('cpu MHz', 'nan')):.0f} MHz)"
    except (OSError, KeyError, ValueError):
        pass
    pool = Settings().duckdb_block_pool  # the figures depend on it: 10% on the feature SQL (measured)
    return f"{model}, {os.cpu_count()} cores, DuckDB {duckdb.__version__}, block pool {pool}"


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


# -- steps (each in its own process) ---------------------------------------------------------------
def step_load(home: str, ticks: int) -> dict:  # type: ignore[type-arg]
    from ingest import simulate
    from tickstore import lake
    from tickstore.settings import Settings

    con = lake.connect(Settings(home=Path(home)))
    table = simulate.tick_table(simulate.SimConfig(n_ticks=ticks, start=1_767_225_600.0))
    con.register("sim", table)
    con.execute("INSERT INTO ticks BY NAME SELECT * FROM sim")
    first, last = con.execute("SELECT min(event_time), max(event_time) FROM ticks").fetchone()  # type: ignore[misc]
    return {"rows": ticks, "first": first.isoformat(), "last": last.isoformat()}


def step_features(home: str, view: str, materialize: bool = False) -> dict:  # type: ignore[type-arg]
    from tickstore import lake
    from tickstore.settings import Settings

    con = lake.connect(Settings(home=Path(home)))
    n = con.execute("SELECT count(*) FROM ticks").fetchone()[0]  # type: ignore[index]
    sql = (REPO / "sql" / f"{view}.sql").read_text()
    started = time.perf_counter()
    con.execute(f"CREATE TEMP TABLE f AS {sql}")  # noqa: S608
    seconds = time.perf_counter() - started
    peak = peak_gb()
    if materialize:  # the feature rows the point-in-time benchmarks join against (not timed: storage)
        con.execute(f"CREATE OR REPLACE TABLE bench_{view} AS SELECT * FROM f")  # noqa: S608
        con.execute(f"COPY bench_{view} TO '{home}/bench_{view}.parquet' (FORMAT parquet)")
    return {"ticks": n, "seconds": seconds, "ticks_per_s": n / seconds, "peak_gb": peak}


def _entities(home: str, n: int, feature_rows: str | None = None):  # type: ignore[no-untyped-def]
    import numpy as np
    import pandas as pd

    from tickstore import lake
    from tickstore.settings import Settings

    con = lake.connect(Settings(home=Path(home)), create=False)
    if feature_rows:
        first, last = con.execute(
            "SELECT min(event_time), max(event_time) FROM read_parquet($p)", {"p": feature_rows}
        ).fetchone()  # type: ignore[misc]
    else:
        first, last = con.execute("SELECT min(event_time), max(event_time) FROM ticks").fetchone()  # type: ignore[misc]
    rng = np.random.default_rng(1)
    span = (last - first).total_seconds()
    return pd.DataFrame(
        {
            "product_id": rng.choice(["BTC-USD", "ETH-USD", "SOL-USD"], n),
            # microseconds, as the lake stores time (Feast's own store refuses to truncate nanoseconds)
            "event_timestamp": (
                pd.Timestamp(first) + pd.to_timedelta(rng.uniform(0, span, n), unit="s")
            ).floor("us"),
        }
    )


def _store(home: str, name: str, offline_store: dict, source):  # type: ignore[no-untyped-def,type-arg]
    """A Feast store with the bench's one feature view over ``source``, on ``offline_store``."""
    from feast import Entity, FeatureStore, FeatureView, Field, RepoConfig, ValueType
    from feast.types import Float64, Int64

    config = RepoConfig(
        project="bench",
        provider="local",
        registry=f"{home}/{name}_registry.db",
        online_store={"type": "sqlite", "path": f"{home}/{name}_online.db"},
        offline_store=offline_store,
        entity_key_serialization_version=3,
    )
    store = FeatureStore(config=config)
    product = Entity(name="product", join_keys=["product_id"], value_type=ValueType.STRING)
    view = FeatureView(
        name="ticks_60s",
        entities=[product],
        ttl=timedelta(seconds=60),
        schema=[
            Field(name="ret_std_60s", dtype=Float64),
            Field(name="spread_bps_mean_60s", dtype=Float64),
            Field(name="tick_count_60s", dtype=Int64),
        ],
        source=source,
    )
    store.apply([product, view])
    return store


def _our_store(home: str, table: str):  # type: ignore[no-untyped-def]
    from tickstore_feast import DuckDBSource

    offline = {"type": "tickstore_feast.offline_store.DuckDBOfflineStore", "home": home}
    # the table is sql/ticks_60s.sql's own output, whose rows at one (product, time) are equal, as
    # the repo's view declares for the SQL (tests/feature_repo/test_definitions.py checks it)
    return _store(home, "ours", offline, DuckDBSource(table=table, ties_equal=True))


FEATURES = ["ticks_60s:ret_std_60s", "ticks_60s:spread_bps_mean_60s", "ticks_60s:tick_count_60s"]


# five, not three: on a 2-core machine one call of ~0.15 s varied 0.13-0.21 s, and a median of three
# caught two slow ones (ours at 0.19 s, Feast's ratio 88x where the next runs gave 105-119x)
WARM_RUNS = 5


def _timed(call):  # type: ignore[no-untyped-def]
    """(first call's seconds, median seconds of the next WARM_RUNS calls, result): cold includes
    one-time setup in the process (imports, extension loading); warm is the steady state of a
    long-lived process, a median because one call of ~0.1 s varies by a fifth or more from run to run."""
    started = time.perf_counter()
    call()
    cold = time.perf_counter() - started
    warm = []
    for _ in range(WARM_RUNS):
        started = time.perf_counter()
        result = call()
        warm.append(time.perf_counter() - started)
    return cold, statistics.median(warm), result


def _pit(store, frame) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """Time one point-in-time retrieval on ``store``; both stores are read through the same call."""
    import pyarrow.compute as pc

    cold, seconds, out = _timed(
        lambda: store.get_historical_features(entity_df=frame, features=FEATURES).to_arrow()
    )
    return {
        "entities": len(frame),
        "seconds": seconds,
        "cold": cold,
        "rows": out.num_rows,
        "peak_gb": peak_gb(),
        "filled": out.num_rows - out.column("tick_count_60s").null_count,
        "checksum": pc.sum(out.column("tick_count_60s")).as_py(),
    }


def step_pit_ours(home: str, entities: int, table: str) -> dict:  # type: ignore[type-arg]
    return _pit(_our_store(home, table), _entities(home, entities))


def step_pit_feast(home: str, entities: int, parquet: str) -> dict:  # type: ignore[type-arg]
    from feast import FileSource

    store = _store(home, "feast", {"type": "duckdb"}, FileSource(path=parquet, timestamp_field="event_time"))
    return _pit(store, _entities(home, entities, parquet))


def step_adhoc(home: str, view: str, minutes: int) -> dict:  # type: ignore[type-arg]
    """One product's last ``minutes`` of a feature view, as `tickstore sql` runs it: filtered by a
    WHERE on the view (its whole history computed first) and called with the range; interleaved runs."""
    import numpy as np

    from tickstore import feature_sql, lake
    from tickstore.settings import Settings

    con = lake.connect(Settings(home=Path(home)), create=False, read_only=True)
    product, last = con.execute(
        "SELECT product_id, max(event_time) FROM ticks GROUP BY 1 ORDER BY 1"
    ).fetchone()  # type: ignore[misc]
    since = last - timedelta(minutes=minutes)
    forms = {
        "where": f"SELECT * FROM {view} WHERE product_id = $p AND event_time >= $since",  # noqa: S608
        "range": f"SELECT * FROM {view}($since) WHERE product_id = $p",  # noqa: S608
    }
    feature_sql.attach_views(con, view)
    seconds: dict[str, list[float]] = {k: [] for k in forms}
    rows = {}
    for _ in range(3):
        for form, sql in forms.items():
            started = time.perf_counter()
            rows[form] = con.execute(sql + " ORDER BY ALL", {"p": product, "since": since}).df()
            seconds[form].append(time.perf_counter() - started)
    keys = ["product_id", "event_time"]
    same = rows["where"].shape == rows["range"].shape and rows["where"][keys].equals(rows["range"][keys])
    same = same and bool(
        np.allclose(
            rows["where"].select_dtypes("number"),
            rows["range"].select_dtypes("number"),
            rtol=1e-9,
            equal_nan=True,
        )
    )
    return {"product": product, "rows": len(rows["range"]), "same": same} | {
        k: statistics.median(v) for k, v in seconds.items()
    }


STEPS = {
    "load": step_load,
    "features": step_features,
    "pit_ours": step_pit_ours,
    "pit_feast": step_pit_feast,
    "adhoc": step_adhoc,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--ticks",
        type=int,
        default=10_000_000,
        help="simulated ticks the feature SQL reads (default: %(default)s)",
    )
    parser.add_argument(
        "--entities",
        type=int,
        default=1_000_000,
        help="entity rows of our point-in-time set (default: %(default)s)",
    )
    parser.add_argument(
        "--peer-entities",
        type=int,
        default=100_000,
        help="entity rows of the side-by-side with Feast's own store (default: %(default)s)",
    )
    parser.add_argument(
        "--peer-ticks",
        type=int,
        default=100_000,
        help="feature rows of the side-by-side (default: %(default)s)",
    )
    # a measurement in a child process of its own (`child`)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--kw", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:  # a child process
        print(json.dumps(STEPS[args.step](args.home, **json.loads(args.kw)), default=str))
        return

    print(f"machine: {machine()}")
    big = tempfile.mkdtemp(prefix="tickstore-bench-offline-")
    atexit.register(shutil.rmtree, big, ignore_errors=True)  # ~1.5 GB of lake: none left behind
    print(f"simulating {args.ticks:,} ticks over 3 products into a fresh lake ...")
    child("load", big, ticks=args.ticks)
    for view in ("ticks_60s", "ticks_10s", "ticks_300s"):
        r = child("features", big, view=view, materialize=view == "ticks_60s")
        print(
            f"feature SQL {view}: {r['ticks']:,} ticks in {r['seconds']:.1f} s = {r['ticks_per_s']:,.0f} ticks/s, "
            f"peak {r['peak_gb']:.1f} GB"
            + ("   (target >= 1,000,000 ticks/s)" if view == "ticks_60s" else "")
        )
    r = child("adhoc", big, view="ticks_60s", minutes=60)
    print(
        f"ad-hoc SQL, {r['product']}'s last hour of ticks_60s ({r['rows']:,} rows; median of 3): a WHERE on the "
        f"view {r['where']:.2f} s, the view called with the range {r['range']:.3f} s, "
        f"{r['where'] / r['range']:,.0f}x; same rows: {'yes' if r['same'] else 'NO'}"
    )
    r = child("pit_ours", big, entities=args.entities, table="bench_ticks_60s")
    print(
        f"point-in-time set, ours: {r['entities']:,} entity rows x {args.ticks:,} feature rows in "
        f"{r['cold']:.2f} s cold, {r['seconds']:.2f} s warm, peak {r['peak_gb']:.1f} GB, {r['filled']:,} rows with values "
        "(target <= 10 s, <= 4 GB)"
    )

    small = tempfile.mkdtemp(prefix="tickstore-bench-peer-")
    atexit.register(shutil.rmtree, small, ignore_errors=True)
    child("load", small, ticks=args.peer_ticks)
    child("features", small, view="ticks_60s", materialize=True)
    ours = child("pit_ours", small, entities=args.peer_entities, table="bench_ticks_60s")
    feast = child("pit_feast", small, entities=args.peer_entities, parquet=f"{small}/bench_ticks_60s.parquet")
    print(
        f"side by side, {args.peer_entities:,} entity rows x {args.peer_ticks:,} feature rows "
        f"(cold: the first call; warm: the median of the next {WARM_RUNS}):"
    )
    print(
        f"  ours (DuckDBOfflineStore, ASOF JOIN):   {ours['cold']:6.2f} s cold, {ours['seconds']:6.2f} s warm, "
        f"peak {ours['peak_gb']:.1f} GB, "
        f"{ours['filled']:,} filled"
    )
    print(
        f"  Feast's duckdb offline store (Parquet): {feast['cold']:6.2f} s cold, {feast['seconds']:6.2f} s warm, "
        f"peak {feast['peak_gb']:.1f} GB, "
        f"{feast['filled']:,} filled"
    )
    same = (ours["filled"], ours["checksum"]) == (feast["filled"], feast["checksum"])
    print(f"  same answers (rows filled, sum of tick_count_60s): {'yes' if same else 'NO'}")
    print(
        f"  ratio: ours is {feast['seconds'] / ours['seconds']:,.0f}x faster warm, "
        f"{feast['cold'] / ours['cold']:,.0f}x cold (target >= 100x)"
    )


if __name__ == "__main__":
    main()
