"""`tickstore dataset build` (cli/dataset.py): --as-of times, --features, full feature names, entity
rows piped in, and one-line errors for every mistake."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from cli.main import main
from tests.cli.helpers import env_for, stderr_on_a_terminal, tickstore
from tests.tickstore_feast.conftest import T0, load, tick_rows
from tests.training.helpers import seeded
from tickstore.feature_sql import SQL_DIR
from tickstore.settings import Settings
from training import dataset


def test_as_of_a_time_reads_the_lake_as_its_newest_snapshot_by_then(
    make_settings: Callable[..., Settings], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    import time
    from datetime import UTC, datetime

    from tickstore import lake

    s = seeded(make_settings)
    con = lake.connect(s, create=False)
    first = lake.current_snapshot(con)
    con.close()
    time.sleep(0.01)
    then = datetime.now(UTC)  # after the first load, before the second
    load(s, tick_rows([("BTC-USD", 0.35 + i * 0.7, 120.0) for i in range(50)]))  # inside the grid
    grid = ["--every", "1", "--start", "2026-01-01T00:00:00", "--end", "2026-01-01T00:05:00"]
    outputs = {}
    for as_of in (then.isoformat(), str(first), None):
        out = tmp_path / f"{len(outputs)}.parquet"
        args = ["dataset", "build", *grid, "--out", str(out)] + (["--as-of", as_of] if as_of else [])
        run = CliRunner().invoke(main, args, env=env_for(s))
        assert run.exit_code == 0, run.output
        outputs[as_of] = (run.output, out.read_bytes())
    by_time, by_id, latest = outputs.values()
    assert f"snapshot {first}" in by_time[0] and f"(lake snapshot {first};" in by_time[0]
    assert by_time[1] == by_id[1] != latest[1]  # the lake as it was then, not as it is


def test_features_named_one_by_one_instead_of_a_service(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """--features: a view's feature, or a whole view, each once; the values the service gives them."""

    s = seeded(make_settings)
    grid = ["--start", "2026-01-01T00:00:00", "--end", "2026-01-01T00:01:40"]
    asked = "ticks_60s:ret_std_60s, ticks_10s,ticks_60s : ret_std_60s"  # spaces and a repeat, as typed
    # the same grid, the step spelt two ways: the frames below compare equal
    for name, every, extra in (("some", "1000ms", ["--features", asked]), ("all", "1", [])):
        run = CliRunner().invoke(
            main,
            ["dataset", "build", "--every", every, *grid, "--out", str(tmp_path / f"{name}.parquet"), *extra],
            env=env_for(s),
        )
        assert run.exit_code == 0, run.output
    some = pd.read_parquet(tmp_path / "some.parquet")
    ten = [f"{f}_10s" for f in ("ret_mean", "ret_std", "realized_var", "spread_mean", "spread_bps_mean")]
    ten += [f"{f}_10s" for f in ("trade_intensity", "imbalance_mean", "price_range", "tick_count")]
    assert sorted(some.columns) == sorted(["product_id", "event_timestamp", "ret_std_60s", *ten])
    every = pd.read_parquet(tmp_path / "all.parquet")
    pd.testing.assert_frame_equal(some, every[list(some.columns)])
    assert some["ret_std_60s"].notna().sum() > 100
    manifest = json.loads((tmp_path / "some.manifest.json").read_text())
    assert manifest["feature_service"] is None and manifest["features"][0] == "ticks_60s:ret_std_60s"
    assert len(manifest["features"]) == 10 and set(manifest["sql"]) == {"ticks_10s", "ticks_60s"}


def test_views_sharing_feature_names_are_refused_unless_full_feature_names(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service over two views with equal feature names (a user's copy of a view): refused before
    anything is written, naming the option; with it, the columns are <view>__<feature>."""
    from types import ModuleType

    from feast import FeatureService, FeatureView

    from tickstore_feast import DuckDBSource, repo

    s = seeded(make_settings)
    d = repo.definitions()
    user = ModuleType("features_b")  # a second file in feature_repo/, as a user would add one
    user.ticks_60s_b = FeatureView(
        name="ticks_60s_b",
        entities=[d.product],
        ttl=d.ticks_60s.ttl,
        schema=d.ticks_60s.schema,
        source=DuckDBSource(name="ticks_60s_b", sql_file=SQL_DIR / "ticks_60s.sql", lookback=d.ticks_60s.ttl),
    )
    user.both = FeatureService(name="both", features=[d.ticks_60s, user.ticks_60s_b])
    modules = repo.repo_modules()
    monkeypatch.setattr(repo, "repo_modules", lambda: [*modules, user])
    out = tmp_path / "both.parquet"
    args = ["dataset", "build", "--every", "1", "--service", "both", "--out", str(out)]
    args += ["--start", "2026-01-01T00:00:00", "--end", "2026-01-01T00:01:40"]
    refused = CliRunner().invoke(main, args, env=env_for(s))
    said = " ".join(refused.output.split())
    assert refused.exit_code == 1 and "ret_mean_60s in ticks_60s, ticks_60s_b" in said, refused.output
    assert "--full-feature-names" in said and not out.exists()
    built = CliRunner().invoke(main, [*args, "--full-feature-names"], env=env_for(s))
    assert built.exit_code == 0, built.output
    table = pq.read_table(out).to_pandas()
    names = [f.name for f in d.ticks_60s.features]
    assert sorted(c for c in table.columns if "__" in c) == sorted(
        f"{v}__{n}" for v in ("ticks_60s", "ticks_60s_b") for n in names
    )
    pd.testing.assert_frame_equal(  # one SQL, two views: the same values under both names
        table[[f"ticks_60s__{n}" for n in names]].set_axis(names, axis=1),
        table[[f"ticks_60s_b__{n}" for n in names]].set_axis(names, axis=1),
    )
    assert table["ticks_60s__tick_count_60s"].notna().sum() > 100  # features, not NULLs alone
    assert json.loads(out.with_suffix(".manifest.json").read_text())["full_feature_names"] is True


def test_entities_piped_in_as_csv_gzip_or_parquet(make_settings: Callable[..., Settings], tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`--entities -` reads stdin (`tickstore sql --format csv ... |`): the same set as from a file."""
    import gzip

    s = seeded(make_settings)
    csv = "product_id,event_timestamp,label\n" + "".join(
        f"BTC-USD,2026-01-01T00:{m:02d}:{sec:02d}+00:00,{sec % 2}\n"
        for m in range(2)
        for sec in range(0, 60, 7)
    )
    (tmp_path / "rows.csv").write_text(csv)
    pd.read_csv(tmp_path / "rows.csv").to_parquet(tmp_path / "rows.parquet")
    built = {}
    for name, entities, piped in (
        ("file", str(tmp_path / "rows.csv"), None),
        ("csv", "-", csv.encode()),
        ("gzip", "-", gzip.compress(csv.encode())),
        ("parquet", "-", (tmp_path / "rows.parquet").read_bytes()),
    ):
        out = tmp_path / f"{name}.parquet"
        short = name == "csv"  # -o is --out
        args = [
            "dataset",
            "build",
            "--entities",
            entities,
            "-o" if short else "--out",
            str(out),
            "--features",
            "ticks_60s",
        ]
        run = CliRunner().invoke(main, args, input=piped, env=env_for(s))
        assert run.exit_code == 0, (name, run.output)
        built[name] = pd.read_parquet(out)
    assert len(built["file"]) == 18 and built["file"]["tick_count_60s"].notna().all()
    for name in ("csv", "gzip", "parquet"):
        pd.testing.assert_frame_equal(built[name], built["file"], check_dtype=name != "parquet")
    empty = CliRunner().invoke(
        main,
        ["dataset", "build", "--entities", "-", "--out", str(tmp_path / "e.parquet")],
        input=b"",
        env=env_for(s),
    )
    assert empty.exit_code == 2 and "stdin is neither Parquet nor readable CSV" in empty.output, empty.output
    # from a terminal, nothing piped in: it said nothing and waited for rows to be typed
    terminal, other_end = os.openpty()
    try:
        typed = tickstore(
            s,
            "dataset",
            "build",
            "--entities",
            "-",
            "--out",
            str(tmp_path / "t.parquet"),
            check=False,
            stdin=other_end,
        )
    finally:
        os.close(terminal)
        os.close(other_end)
    assert typed.returncode == 2 and "--entities - reads the rows from a pipe" in typed.stderr, typed.stderr


def test_in_a_terminal_the_progress_bar_shows_what_it_does_as_text(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """The console reads no markup, so rich's style prefix "[progress.description]" was printed as text
    before the description of every progress bar (this one, `ingest replay` / `simulate` / `coinbase`
    / `rejected`): `cli.context.progress_bar` now gives the description a column of its own."""
    s = seeded(make_settings)
    grid = ["--every", "1", "--start", "2026-01-01T00:00:00", "--end", "2026-01-01T00:05:00"]
    shown, run = stderr_on_a_terminal(s, "dataset", "build", *grid, "--out", str(tmp_path / "t.parquet"))
    assert run.returncode == 0, shown
    assert "point-in-time join" in shown and "rows" in shown, shown  # the bar was drawn
    assert "[progress" not in shown, shown


def test_mistakes_give_one_line_errors_and_write_nothing(
    make_settings: Callable[..., Settings], tmp_path
) -> None:  # type: ignore[no-untyped-def]

    s = seeded(make_settings)
    (tmp_path / "cols.csv").write_text("product,ts\nBTC-USD,2026-01-01T00:00:10Z\n")
    (tmp_path / "times.csv").write_text("product_id,event_timestamp\nBTC-USD,yesterday\n")
    (tmp_path / "empty.csv").write_text("product_id,event_timestamp\n")
    # a blank cell was an entity row of product None, or of time NaT, with NULL features
    (tmp_path / "blank.csv").write_text(
        "product_id,event_timestamp\nBTC-USD,2026-01-01T00:00:10Z\n,2026-01-01T00:00:10Z\n"
    )
    (tmp_path / "epoch.csv").write_text("product_id,event_timestamp\nBTC-USD,1767225610\n")
    (tmp_path / "notime.csv").write_text("product_id,event_timestamp\nBTC-USD,\nBTC-USD, \n")
    (tmp_path / "binary.csv").write_bytes(b"\x8f\x00\xff" * 40)
    (tmp_path / "csv.parquet").write_text("product_id,event_timestamp\nBTC-USD,2026-01-01T00:00:10Z\n")
    grid = ["--every", "1", "--start", "2026-01-01T00:00:00", "--end", "2026-01-01T00:01:00"]
    earlier = tmp_path / "earlier.parquet"
    dataset.build(s, dataset.Grid(T0, T0 + timedelta(seconds=10), timedelta(seconds=1)), earlier)
    cases = {
        "lacks column(s) event_timestamp, product_id (it has product, ts)": [
            "--entities",
            tmp_path / "cols.csv",
        ],
        "event_timestamp must be ISO 8601 times": ["--entities", tmp_path / "times.csv"],
        "event_timestamp holds numbers (1767225610 in line 2), not times": [
            "--entities",
            tmp_path / "epoch.csv",
        ],
        "holds no entity rows": ["--entities", tmp_path / "empty.csv"],
        "1 entity row(s) with no product_id (line 3)": ["--entities", tmp_path / "blank.csv"],
        "2 entity row(s) with no event_timestamp (line 2, 3)": ["--entities", tmp_path / "notime.csv"],
        "is neither Parquet nor readable CSV": ["--entities", tmp_path / "binary.csv"],
        "csv.parquet is not Parquet (a Parquet file starts with the bytes PAR1)": [
            "--entities",
            tmp_path / "csv.parquet",
        ],
        "Invalid value for '--every': '0': give a duration above 0": ["--every", "0", *grid[2:]],
        "Invalid value for '--every': '10x' is not a duration: seconds (10, 2.5) or a number with a unit": [
            "--every",
            "10x",
            *grid[2:],
        ],
        "the range is empty": [
            "--every",
            "1",
            "--start",
            "2026-01-01T00:01:00",
            "--end",
            "2026-01-01T00:00:00",
        ],
        "no ticks in [2030-01-01 00:00:00+00:00, 2030-01-02 00:00:00+00:00) at lake snapshot 2, so no products to build the grid for (the lake's ticks run from 2026-01-01 00:00:00 to": [
            "--every",
            "1",
            "--start",
            "2030-01-01T00:00:00",
            "--end",
            "2030-01-02",
        ],
        # a year every second was built as one 63M-row DataFrame before anything was joined
        "is 63,072,000 entity rows, more than 50,000,000 in one set": [
            "--every",
            "1",
            "--start",
            "2026-01-01",
            "--end",
            "2027-01-01",
        ],
        # it wrote Parquet into train.csv
        "written as Parquet: name it never.parquet, not never.csv": [*grid, "--out", tmp_path / "never.csv"],
        "no feature service 'nope' (known: volatility_model)": [*grid, "--service", "nope"],
        "no feature view 'tick_60s' (known: tick_clock, ticks_10s, ticks_300s, ticks_60s)": [
            *grid,
            "--features",
            "tick_60s:ret_std_60s",
        ],
        "feature view ticks_60s has no feature 'vol_60s' (it has: ret_mean_60s, ret_std_60s,": [
            *grid,
            "--features",
            "ticks_10s,ticks_60s:vol_60s",
        ],
        "give either --service NAME or --features LIST, not both": [
            *grid,
            "--service",
            "volatility_model",
            "--features",
            "ticks_10s",
        ],
        "--features names no feature": [*grid, "--features", " , "],
        # an earlier training set as the rows: Arrow failed on the twice-named column, a traceback
        "the entity rows already have column(s) named as features this build adds (ret_mean_10s,": [
            "--entities",
            earlier,
        ],
        "No snapshot found at version 999": [*grid, "--as-of", "999"],
        # snapshot 0 (the empty lake) was a CatalogException traceback, a BIGINT's overflow DuckDB's cast error
        "snapshot 0 is from before the lake's ticks table was made: pick a later one": [
            *grid,
            "--as-of",
            "0",
        ],
        f"no snapshot {2**63} in the lake (the lake has snapshots 0 to": [*grid, "--as-of", str(2**63)],
        "the lake has no snapshot at or before 2000-01-01T00:00:00+00:00": [*grid, "--as-of", "2000-01-01"],
        "'noon' is neither a snapshot id (42) nor an ISO 8601 time": [*grid, "--as-of", "noon"],
    }
    for message, args in cases.items():
        out = tmp_path / "never.parquet"
        args = args if "--out" in args else [*args, "--out", out]
        run = CliRunner().invoke(main, ["dataset", "build", *map(str, args)], env=env_for(s))
        # a ClickException or UsageError (exit 1 or 2), not an exception escaping as a traceback
        assert run.exit_code in (1, 2) and isinstance(run.exception, SystemExit), (message, run.exception)
        assert message in " ".join(run.output.split()), (message, run.output)
        assert not out.exists() and not out.with_suffix(".csv").exists()


def test_the_cli_names_products_without_ticks_and_counts_only_feature_nulls(
    make_settings: Callable[..., Settings], tmp_path
) -> None:  # type: ignore[no-untyped-def]

    s = seeded(make_settings)
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "product_id,event_timestamp\nbtc-usd,2026-01-01T00:00:10Z\nBTC-USD,2026-01-01T00:00:10Z\n"
        "BTC-USD ,2026-01-01T00:00:10Z\n"  # a space before the comma is the product's: no tick has it
    )
    args = ["dataset", "build", "--entities", str(rows), "--out", str(tmp_path / "o.parquet")]
    run = CliRunner().invoke(main, args, env=env_for(s))
    assert run.exit_code == 0, run.output
    out = " ".join(run.output.split())
    assert "wrote 3 rows x 27 features" in out
    assert (
        "no ticks at snapshot" in out
        and "for 'BTC-USD ', btc-usd: every feature of their rows is NULL" in out
    )
    assert "(products with ticks: BTC-USD, ETH-USD; names are exact: case and spaces count)" in out
    # the NULL summary is about features, never the entity columns (it said "most NULL: product_id
    # 0.0%, event_timestamp 0.0%, ..." for a set without a NULL)
    rows.write_text("product_id,event_timestamp\nBTC-USD,2026-01-01T00:01:40Z\n")
    run = CliRunner().invoke(main, args, env=env_for(s))
    assert run.exit_code == 0, run.output
    out = " ".join(run.output.split())
    assert "wrote 1 row x 27 features" in out and "no NULL feature values" in out, out
    assert "most NULL" not in out and "warning" not in out
    # a product with ticks, none of them before its rows: said, with where its ticks are
    rows.write_text(
        "product_id,event_timestamp\nETH-USD,2025-12-31T23:00:00Z\nBTC-USD,2026-01-01T00:01:40Z\n"
    )
    out = " ".join(CliRunner().invoke(main, args, env=env_for(s)).output.split())
    assert (
        "warning: none of the rows of ETH-USD has a feature value: no tick of it lies within a view's TTL "
        "before any of them (its ticks run from 2026-01-01 00:00:00 to 2026-01-01 00:04:18 UTC)"
    ) in out
