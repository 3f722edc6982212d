"""`training.dataset`: grids and files of entity rows, manifests, byte-identical rebuilds (the command:
tests/cli/test_dataset.py)."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.conftest import files_capped_at
from tests.tickstore_feast.conftest import T0, load, tick_rows
from tests.training.helpers import seeded
from tickstore import lake
from tickstore.feature_sql import SQL_DIR, fingerprints
from tickstore.settings import Settings
from training import dataset, entities


def built_once(make_settings: Callable[..., Settings], folder: Path) -> tuple[Settings, Path]:
    """A seeded lake, and a dataset of its first 100 s built at ``folder/train.parquet``."""
    s = seeded(make_settings)
    out = folder / "train.parquet"
    dataset.build(s, dataset.Grid(T0, T0 + timedelta(seconds=100), timedelta(seconds=1)), out)
    return s, out


def first_of_five_minutes(
    make_settings: Callable[..., Settings], out: Path
) -> tuple[Settings, dataset.Grid, dataset.Manifest]:
    """A seeded lake, a grid of its first 300 s every 2 s, and the dataset built of it at ``out``."""
    s = seeded(make_settings)
    grid = dataset.Grid(T0, T0 + timedelta(seconds=300), timedelta(seconds=2))
    return s, grid, dataset.build(s, grid, out)


def test_grid_dataset_has_a_row_per_product_and_step_and_a_manifest(
    make_settings: Callable[..., Settings], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    s = seeded(make_settings)
    out = tmp_path / "train.parquet"
    seen: list[tuple[int, int]] = []
    m = dataset.build(
        s,
        dataset.Grid(T0, T0 + timedelta(seconds=100), timedelta(seconds=1)),
        out,
        progress=lambda d, t: seen.append((d, t)),
    )
    table = pq.read_table(out)
    assert table.num_rows == m.rows == 200 and seen[-1] == (200, 200)
    assert set(table.column("product_id").to_pylist()) == {"BTC-USD", "ETH-USD"}
    assert {"tick_count_60s", "ret_std_10s", "price_range_300s"} <= set(table.column_names)
    manifest = json.loads(out.with_suffix(".manifest.json").read_text())
    assert manifest["snapshot"] == m.snapshot and len(manifest["sql_sha256"]) == 3
    # the SQL itself and its fingerprint: what training logs, and the scorer checks a model against
    assert manifest["sql"]["ticks_60s"] == (SQL_DIR / "ticks_60s.sql").read_text()
    assert manifest["sql_fingerprint"]["ticks_60s"] == fingerprints([manifest["sql"]["ticks_60s"]])[0]
    assert len(set(manifest["sql_fingerprint"].values())) == 3
    assert manifest["null_fraction"]["tick_count_300s"] == 0.0
    # how far back each view reads, for the drift test's blocks (its SQL's lookback header)
    assert manifest["lookback_s"] == {"ticks_10s": 10.0, "ticks_60s": 60.0, "ticks_300s": 300.0}


def test_a_grid_is_every_step_from_its_start_to_before_its_end_for_each_product_with_ticks_in_it(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings()
    # SOL only at the range's start, ETH only at its end (excluded), BTC throughout and beyond
    rows = [("SOL-USD", 10.0, 20.0), ("ETH-USD", 20.0, 2000.0)] + [
        ("BTC-USD", t, 100.0) for t in range(0, 40, 5)
    ]
    snapshot = load(s, tick_rows(rows))
    grid = dataset.Grid(T0 + timedelta(seconds=10), T0 + timedelta(seconds=20), timedelta(seconds=3))
    got = dataset.grid_entities(s, grid, snapshot)
    steps = [T0 + timedelta(seconds=t) for t in (10, 13, 16, 19)]  # the last step before the end
    assert list(got.itertuples(index=False, name=None)) == [
        (p, t) for t in steps for p in ("BTC-USD", "SOL-USD")
    ]
    # a step that does not divide the range still counts its last, partial one against the limit
    odd = dataset.Grid(T0, T0 + timedelta(microseconds=100_000_001), timedelta(microseconds=2), ("BTC-USD",))
    with pytest.raises(ValueError, match=r"is 50,000,001 entity rows, more than 50,000,000"):
        dataset.grid_entities(s, odd, snapshot)


def test_rebuild_as_of_the_recorded_snapshot_is_byte_identical_after_new_ticks(
    make_settings: Callable[..., Settings], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    s, grid, first = first_of_five_minutes(make_settings, tmp_path / "a.parquet")
    load(s, tick_rows([("BTC-USD", 100.05 + i, 200.0) for i in range(50)]))  # new ticks inside the range
    again = dataset.build(s, grid, tmp_path / "b.parquet", as_of=first.snapshot)
    assert again.snapshot == first.snapshot
    latest = dataset.build(s, grid, tmp_path / "c.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert (tmp_path / "a.parquet").read_bytes() != (tmp_path / "c.parquet").read_bytes()
    assert latest.snapshot > first.snapshot


def _append_until(home: str, stop: str) -> None:
    """Append a BTC-USD tick inside the test's range, commit by commit, until ``stop`` exists: another
    process writing the lake, as the sink does."""
    s = Settings(home=Path(home))
    i = 0
    while not Path(stop).exists():
        load(s, tick_rows([("BTC-USD", 100.005 + i * 0.01, 200.0 + i)]))
        i += 1


def _build_at_once(home: str, out: str, barrier: Any) -> None:
    """Build the first five minutes at ``out``, its rows written when every process given ``barrier``
    has written its own (so that the builds overlap where they write, whatever the machine's pace)."""
    grid = dataset.Grid(T0, T0 + timedelta(seconds=300), timedelta(seconds=2))
    dataset.build(Settings(home=Path(home)), grid, Path(out), progress=lambda done, total: barrier.wait(120))


@pytest.mark.slow
def test_two_processes_building_one_file_at_once_both_finish(
    make_settings: Callable[..., Settings], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    # two drift gates on one range: with one name for both half-written files, one failed ("No such file")
    s = seeded(make_settings)
    out = tmp_path / "same.parquet"
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(2)
    builds = [spawn.Process(target=_build_at_once, args=(str(s.home), str(out), barrier)) for _ in range(2)]
    for build in builds:
        build.start()
    for build in builds:
        build.join(180)
    assert [b.exitcode for b in builds] == [0, 0]
    manifest = json.loads(out.with_suffix(".manifest.json").read_text())
    assert manifest["sha256"] == dataset.file_sha256(out) and manifest["rows"] == len(pd.read_parquet(out))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == [
        "same.manifest.json",
        "same.parquet",
    ]


def _snapshot(s: Settings) -> int:
    con = lake.connect(s, create=False)
    try:
        return lake.current_snapshot(con)
    finally:
        con.close()


@pytest.mark.slow
def test_rebuilds_as_of_a_snapshot_are_byte_identical_while_another_process_appends(
    make_settings: Callable[..., Settings], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    s, grid, first = first_of_five_minutes(make_settings, tmp_path / "a.parquet")
    stop = tmp_path / "stop"
    writer = multiprocessing.get_context("spawn").Process(target=_append_until, args=(str(s.home), str(stop)))
    writer.start()
    try:
        deadline = time.monotonic() + 60
        while _snapshot(s) == first.snapshot:  # the writer's first commit: it is running
            assert writer.is_alive() and time.monotonic() < deadline, "the writer process did not append"
            time.sleep(0.05)
        before = _snapshot(s)
        # three rebuilds at least, and on until the writer has committed while they read: on a loaded
        # CI machine its commits paused for all of three (snapshot 28 before and after)
        deadline, k = time.monotonic() + 60, 0
        while k < 3 or (_snapshot(s) == before and time.monotonic() < deadline):
            again = dataset.build(s, grid, tmp_path / f"b{k}.parquet", as_of=first.snapshot)
            assert again.snapshot == first.snapshot
            assert (tmp_path / f"b{k}.parquet").read_bytes() == (tmp_path / "a.parquet").read_bytes()
            k += 1
        during = _snapshot(s)
    finally:
        stop.touch()
        writer.join(60)
    assert writer.exitcode == 0
    assert during > before  # ticks were committed while the rebuilds read
    latest = dataset.build(s, grid, tmp_path / "c.parquet")
    assert latest.snapshot >= during and latest.rows == first.rows
    assert (tmp_path / "c.parquet").read_bytes() != (tmp_path / "a.parquet").read_bytes()


def test_entities_from_a_csv_file(make_settings: Callable[..., Settings], tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = seeded(make_settings)
    rows = tmp_path / "rows.csv"
    pd.DataFrame(
        {"product_id": ["ETH-USD", "BTC-USD", "DOGE-USD"], "event_timestamp": ["2026-01-01T00:00:10Z"] * 3}
    ).to_csv(rows, index=False)
    m = dataset.build(s, entities.file_entities(rows), tmp_path / "f.parquet")
    df = pd.read_parquet(tmp_path / "f.parquet")
    assert df["product_id"].tolist() == ["ETH-USD", "BTC-USD", "DOGE-USD"]
    assert df["tick_count_60s"].isna().tolist() == [False, False, True]
    assert m.products_without_ticks == ["DOGE-USD"]  # named in the manifest and by the CLI
    assert m.products_without_values == []  # ETH-USD's row has values; DOGE-USD is named above


def test_products_whose_rows_all_lack_values_are_named(
    make_settings: Callable[..., Settings], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    # ETH-USD has ticks, but none before its rows: a range before the product's ticks begin
    s = seeded(make_settings)
    frame = pd.DataFrame(
        {
            "product_id": ["ETH-USD", "BTC-USD", "ETH-USD", "BTC-USD"],
            "event_timestamp": pd.to_datetime(
                [
                    "2025-12-31T23:50:00Z",
                    "2025-12-31T23:50:00Z",
                    "2025-12-31T23:55:00Z",
                    "2026-01-01T00:00:10Z",
                ]
            ),
        }
    )
    m = dataset.build(s, frame, tmp_path / "v.parquet")
    assert m.products_without_ticks == [] and m.products_without_values == ["ETH-USD"]
    spans = dataset.tick_spans(s, m.snapshot, ["ETH-USD", "NONE-USD"])
    assert list(spans) == ["ETH-USD"] and spans["ETH-USD"][0].isoformat() == "2026-01-01T00:00:00+00:00"


def test_entities_from_parquet_whatever_its_suffix(make_settings: Callable[..., Settings], tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = seeded(make_settings)
    rows = tmp_path / "rows.pq"  # was read as CSV: "'utf-8' codec can't decode byte 0x8f"
    naive = pd.Timestamp("2026-01-01T00:00:10")  # a zone-less time is UTC, as in CSV
    pd.DataFrame({"product_id": ["BTC-USD"], "event_timestamp": [naive], "label": [1]}).to_parquet(rows)
    frame = entities.file_entities(rows)
    assert frame["event_timestamp"].tolist() == [pd.Timestamp("2026-01-01T00:00:10Z")]
    dataset.build(s, frame, tmp_path / "f.parquet")
    df = pd.read_parquet(tmp_path / "f.parquet")
    assert df["label"].tolist() == [1] and df["tick_count_60s"].notna().all()


def test_an_interrupted_build_leaves_the_previous_dataset_as_it_was(
    make_settings: Callable[..., Settings], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    s, out = built_once(make_settings, tmp_path)
    before = out.read_bytes(), out.with_suffix(".manifest.json").read_bytes()

    def interrupt(done: int, total: int) -> None:  # Ctrl-C once a chunk is written
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dataset.build(
            s, dataset.Grid(T0, T0 + timedelta(seconds=300), timedelta(seconds=2)), out, progress=interrupt
        )
    assert (out.read_bytes(), out.with_suffix(".manifest.json").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == [
        "train.manifest.json",
        "train.parquet",
    ]


def test_a_build_removes_what_killed_builds_of_its_file_left_on_this_machine(
    make_settings: Callable[..., Settings], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    s, out = built_once(make_settings, tmp_path)
    exited = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    host, gone = socket.gethostname(), exited.stdout.strip()
    left = [
        tmp_path / f".train.parquet.{gone}@{host}.partial",
        tmp_path / f".train.parquet.by-time.{gone}@{host}.partial",
    ]
    kept = [
        tmp_path / f".train.parquet.{os.getppid()}@{host}.partial",  # a build still running
        tmp_path / f".train.parquet.{gone}@another-host.partial",  # a home on a shared disk
        tmp_path / f".other.parquet.{gone}@{host}.partial",  # another file's
    ]
    for path in left + kept:
        path.write_bytes(b"half a set")
    dataset.build(s, dataset.Grid(T0, T0 + timedelta(seconds=100), timedelta(seconds=1)), out)
    assert [p.exists() for p in left + kept] == [False, False, True, True, True]


def test_a_disk_that_fills_up_under_the_build_names_the_file_and_leaves_nothing_half_written(
    make_settings: Callable[..., Settings], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    s, out = built_once(make_settings, tmp_path)
    before = out.read_bytes()

    # no file may grow past 64 KB in the build, as on a disk with that little room (less, and reading
    # the lake fails first: SQLite's WAL index is 32 KB)
    big = dataset.Grid(T0, T0 + timedelta(seconds=300), timedelta(milliseconds=20))
    with files_capped_at(64 * 1024), pytest.raises(OSError) as refused:
        dataset.build(s, big, out)
    # Arrow's own error names no file: the one being written is named, for the CLI to show
    assert refused.value.filename == str(out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == [
        "train.manifest.json",
        "train.parquet",
    ]
