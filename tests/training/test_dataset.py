"""`tickstore dataset build`: grids and files of entity rows, manifests, byte-identical rebuilds."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.conftest import files_capped_at
from tests.tickstore_feast.conftest import T0, load, tick_rows
from tickstore.feature_sql import SQL_DIR, fingerprints
from tickstore.settings import Settings
from training import dataset


def seeded(make_settings: Callable[..., Settings]) -> Settings:
    s = make_settings()
    rows = [("BTC-USD", i * 0.7, 100 + (i % 13) / 10) for i in range(400)]
    rows += [("ETH-USD", i * 1.3, 10 + (i % 7) / 100) for i in range(200)]
    load(s, tick_rows(rows))
    return s


def built_once(make_settings: Callable[..., Settings], folder: Path) -> tuple[Settings, Path]:
    """A seeded lake, and a dataset of its first 100 s built at ``folder/train.parquet``."""
    s = seeded(make_settings)
    out = folder / "train.parquet"
    dataset.build(s, dataset.Grid(T0, T0 + timedelta(seconds=100), timedelta(seconds=1)), out)
    return s, out


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


def test_rebuild_as_of_the_recorded_snapshot_is_byte_identical_while_ticks_arrive(
    make_settings: Callable[..., Settings], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    s = seeded(make_settings)
    grid = dataset.Grid(T0, T0 + timedelta(seconds=300), timedelta(seconds=2))
    first = dataset.build(s, grid, tmp_path / "a.parquet")
    load(s, tick_rows([("BTC-USD", 100.05 + i, 200.0) for i in range(50)]))  # new ticks inside the range
    again = dataset.build(s, grid, tmp_path / "b.parquet", as_of=first.snapshot)
    assert again.snapshot == first.snapshot
    latest = dataset.build(s, grid, tmp_path / "c.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert (tmp_path / "a.parquet").read_bytes() != (tmp_path / "c.parquet").read_bytes()
    assert latest.snapshot > first.snapshot


def test_as_of_a_time_reads_the_lake_as_its_newest_snapshot_by_then(
    make_settings: Callable[..., Settings], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    import time
    from datetime import UTC, datetime

    from click.testing import CliRunner

    from cli.main import main
    from tests.cli.helpers import env_for
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
    from click.testing import CliRunner

    from cli.main import main
    from tests.cli.helpers import env_for

    s = seeded(make_settings)
    grid = ["--every", "1", "--start", "2026-01-01T00:00:00", "--end", "2026-01-01T00:01:40"]
    asked = "ticks_60s:ret_std_60s, ticks_10s,ticks_60s:ret_std_60s"  # spaces and a repeat, as typed
    for name, extra in (("some", ["--features", asked]), ("all", [])):
        run = CliRunner().invoke(
            main,
            ["dataset", "build", *grid, "--out", str(tmp_path / f"{name}.parquet"), *extra],
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

    from click.testing import CliRunner
    from feast import FeatureService, FeatureView

    from cli.main import main
    from tests.cli.helpers import env_for
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


def test_entities_from_a_csv_file(make_settings: Callable[..., Settings], tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = seeded(make_settings)
    rows = tmp_path / "rows.csv"
    pd.DataFrame(
        {"product_id": ["ETH-USD", "BTC-USD", "DOGE-USD"], "event_timestamp": ["2026-01-01T00:00:10Z"] * 3}
    ).to_csv(rows, index=False)
    m = dataset.build(s, dataset.file_entities(rows), tmp_path / "f.parquet")
    df = pd.read_parquet(tmp_path / "f.parquet")
    assert df["product_id"].tolist() == ["ETH-USD", "BTC-USD", "DOGE-USD"]
    assert df["tick_count_60s"].isna().tolist() == [False, False, True]
    assert m.products_without_ticks == ["DOGE-USD"]  # named in the manifest and by the CLI


def test_entities_piped_in_as_csv_gzip_or_parquet(make_settings: Callable[..., Settings], tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`--entities -` reads stdin (`tickstore sql --format csv ... |`): the same set as from a file."""
    import gzip

    from click.testing import CliRunner

    from cli.main import main
    from tests.cli.helpers import env_for

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
        args = ["dataset", "build", "--entities", entities, "--out", str(out), "--features", "ticks_60s"]
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


def test_entity_times_without_an_offset_are_utc_beside_rows_with_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "product_id,event_timestamp\n"
        "BTC-USD,2025-12-06 08:00:00+01:00\n"
        "BTC-USD,2025-12-06T07:00:00\n"  # pandas' ISO 8601 parser read this as +01:00 too: 06:00 UTC
        "ETH-USD,2025-12-06T07:00:00.5\n"
        "ETH-USD,2025-12-06T02:00:00-05:00\n"
        "ETH-USD,2025-12-06\n"
    )
    times = dataset.file_entities(rows)["event_timestamp"].tolist()
    seven = pd.Timestamp("2025-12-06T07:00:00Z")
    assert times == [seven, seven, seven + pd.Timedelta("500ms"), seven, pd.Timestamp("2025-12-06", tz="UTC")]
    rows.write_text("product_id,event_timestamp\nBTC-USD,2025-12-06T07:00:00\nBTC-USD,07:00 yesterday\n")
    with pytest.raises(ValueError, match=r"'07:00 yesterday' is not \(line 3\)"):
        dataset.file_entities(rows)


def test_entities_from_parquet_whatever_its_suffix(make_settings: Callable[..., Settings], tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = seeded(make_settings)
    rows = tmp_path / "rows.pq"  # was read as CSV: "'utf-8' codec can't decode byte 0x8f"
    naive = pd.Timestamp("2026-01-01T00:00:10")  # a zone-less time is UTC, as in CSV
    pd.DataFrame({"product_id": ["BTC-USD"], "event_timestamp": [naive], "label": [1]}).to_parquet(rows)
    frame = dataset.file_entities(rows)
    assert frame["event_timestamp"].tolist() == [pd.Timestamp("2026-01-01T00:00:10Z")]
    dataset.build(s, frame, tmp_path / "f.parquet")
    df = pd.read_parquet(tmp_path / "f.parquet")
    assert df["label"].tolist() == [1] and df["tick_count_60s"].notna().all()


def test_mistakes_give_one_line_errors_and_write_nothing(
    make_settings: Callable[..., Settings], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from cli.main import main
    from tests.cli.helpers import env_for

    s = seeded(make_settings)
    (tmp_path / "cols.csv").write_text("product,ts\nBTC-USD,2026-01-01T00:00:10Z\n")
    (tmp_path / "times.csv").write_text("product_id,event_timestamp\nBTC-USD,yesterday\n")
    (tmp_path / "empty.csv").write_text("product_id,event_timestamp\n")
    # a blank cell was an entity row of product None, or of time NaT, with NULL features
    (tmp_path / "blank.csv").write_text(
        "product_id,event_timestamp\nBTC-USD,2026-01-01T00:00:10Z\n,2026-01-01T00:00:10Z\n"
    )
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
        "holds no entity rows": ["--entities", tmp_path / "empty.csv"],
        "1 entity row(s) with no product_id (line 3)": ["--entities", tmp_path / "blank.csv"],
        "2 entity row(s) with no event_timestamp (line 2, 3)": ["--entities", tmp_path / "notime.csv"],
        "is neither Parquet nor readable CSV": ["--entities", tmp_path / "binary.csv"],
        "csv.parquet is not Parquet (a Parquet file starts with the bytes PAR1)": [
            "--entities",
            tmp_path / "csv.parquet",
        ],
        "Invalid value for '--every': 0.0 is not in the range x>0": ["--every", "0", *grid[2:]],
        "the range is empty": [
            "--every",
            "1",
            "--start",
            "2026-01-01T00:01:00",
            "--end",
            "2026-01-01T00:00:00",
        ],
        "no ticks in [2030-01-01": ["--every", "1", "--start", "2030-01-01T00:00:00", "--end", "2030-01-02"],
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
    from click.testing import CliRunner

    from cli.main import main
    from tests.cli.helpers import env_for

    s = seeded(make_settings)
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "product_id,event_timestamp\nbtc-usd,2026-01-01T00:00:10Z\nBTC-USD,2026-01-01T00:00:10Z\n"
    )
    args = ["dataset", "build", "--entities", str(rows), "--out", str(tmp_path / "o.parquet")]
    run = CliRunner().invoke(main, args, env=env_for(s))
    assert run.exit_code == 0, run.output
    out = " ".join(run.output.split())
    assert "wrote 2 rows x 27 features" in out
    assert "no ticks at snapshot" in out and "for btc-usd: every feature of their rows is NULL" in out
    assert "(products with ticks: BTC-USD, ETH-USD; names are case-sensitive)" in out
    # the NULL summary is about features, never the entity columns (it said "most NULL: product_id
    # 0.0%, event_timestamp 0.0%, ..." for a set without a NULL)
    rows.write_text("product_id,event_timestamp\nBTC-USD,2026-01-01T00:01:40Z\n")
    run = CliRunner().invoke(main, args, env=env_for(s))
    assert run.exit_code == 0, run.output
    out = " ".join(run.output.split())
    assert "wrote 1 row x 27 features" in out and "no NULL feature values" in out, out
    assert "most NULL" not in out and "warning" not in out


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
