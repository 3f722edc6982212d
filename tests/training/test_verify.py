"""`training.verify`: a training set rebuilt from its manifest, the same bytes or where it differs (the
command: tests/cli/test_dataset.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.tickstore_feast.conftest import T0, load, tick_rows
from tests.training.helpers import seeded
from tickstore.settings import Settings
from training import dataset, verify


def built(make_settings: Callable[..., Settings], out: Path) -> tuple[Settings, dataset.Manifest]:
    """A seeded lake and a set of its first 100 s every 2 s built at ``out``."""
    s = seeded(make_settings)
    grid = dataset.Grid(T0, T0 + timedelta(seconds=100), timedelta(seconds=2))
    return s, dataset.build(s, grid, out)


def rewrite(path: Path, table: pa.Table, column: str, values: list[object]) -> None:
    """Write ``table`` to ``path`` with ``column`` holding ``values`` (its type kept): a set edited."""
    at = table.column_names.index(column)
    pq.write_table(table.set_column(at, table.field(at), pa.array(values, table.field(at).type)), path)


def test_a_set_is_reproduced_at_its_snapshot_while_new_ticks_arrive(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    sets = tmp_path / "sets"
    s, first = built(make_settings, sets / "grid.parquet")
    # entity rows of a file: out of time order, with a column of their own
    rows = pd.DataFrame(
        {
            "product_id": ["ETH-USD", "BTC-USD", "BTC-USD", "NO-SUCH"],
            "event_timestamp": [T0 + timedelta(seconds=s) for s in (90, 30, 60.5, 10)],
            "label": [1, 0, 1, 0],
        }
    )
    dataset.build(s, rows, sets / "rows.parquet")
    load(s, tick_rows([("BTC-USD", 20.05 + i, 300.0) for i in range(50)]))  # new ticks inside both
    for name in ("grid", "rows"):
        report = verify.verify(s, sets / f"{name}.parquet")
        assert report.identical and not report.changed and not report.removed and not report.differences
        assert report.manifest.snapshot == first.snapshot
        assert report.as_built is True and not report.edited
        assert report.manifest.sha256 == dataset.file_sha256(sets / f"{name}.parquet")
    # the rebuild leaves nothing beside the set but the set and its manifest
    assert sorted(p.name for p in sets.iterdir()) == [
        "grid.manifest.json",
        "grid.parquet",
        "rows.manifest.json",
        "rows.parquet",
    ]
    # and a set built now, at the newer snapshot, is another: the check can tell
    again = dataset.build(s, rows, tmp_path / "now.parquet")
    assert (tmp_path / "now.parquet").read_bytes() != (sets / "rows.parquet").read_bytes()
    assert again.snapshot > first.snapshot


def test_a_value_changed_since_is_named_by_column_and_row(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    out = tmp_path / "train.parquet"
    s, _ = built(make_settings, out)
    table = pq.read_table(out)
    values = table.column("tick_count_60s").to_pylist()
    at = next(i for i, v in enumerate(values) if v)
    values[at] += 1
    rewrite(out, table, "tick_count_60s", values)
    report = verify.verify(s, out)
    assert not report.identical and not report.changed
    assert report.edited and report.as_built  # the file was changed; its rows rebuild to what was built
    row = table.slice(at, 1).to_pylist()[0]
    assert report.differences == [
        f"tick_count_60s: 1 of {table.num_rows:,} rows differ, first row {at + 1:,} "
        f"({row['product_id']} at {pd.Timestamp(row['event_timestamp'])}): "
        f"{values[at]} in the file, {values[at] - 1} rebuilt"
    ]


def test_a_key_edited_in_the_file_shows_though_its_features_rebuild_the_same(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    out = tmp_path / "train.parquet"
    s, _ = built(make_settings, out)
    table = pq.read_table(out)
    # a row's time moved 1 us, its features kept: rebuilt from the file's rows they come out the same,
    # so comparing values alone saw nothing
    times = table.column("event_timestamp").to_pylist()
    times[3] += timedelta(microseconds=1)
    rewrite(out, table, "event_timestamp", times)
    report = verify.verify(s, out)
    assert report.edited and report.as_built is False and not report.identical
    assert (
        len(report.differences) == 1 and "what changed is a product or time of a row" in report.differences[0]
    )

    # a set whose manifest records no SHA-256 (built before it did): the edit goes unseen, as it did
    manifest_path = out.with_suffix(".manifest.json")
    manifest = json.loads(manifest_path.read_text())
    del manifest["sha256"]
    manifest_path.write_text(json.dumps(manifest))
    report = verify.verify(s, out)
    assert report.identical and report.as_built is None and not report.edited and not report.differences


def test_a_view_whose_sql_changed_since_comes_with_its_diff_and_a_removed_one_stops_the_rebuild(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    out = tmp_path / "train.parquet"
    s, _ = built(make_settings, out)
    manifest_path = out.with_suffix(".manifest.json")
    manifest = json.loads(manifest_path.read_text())
    # a set that another SQL computed: its manifest holds that SQL and its fingerprint
    then = manifest["sql"]["ticks_60s"].replace("avg(spread) OVER w", "median(spread) OVER w")
    manifest["sql"]["ticks_60s"] = then
    manifest["sql_fingerprint"]["ticks_60s"] = "0:0"
    manifest_path.write_text(json.dumps(manifest))
    report = verify.verify(s, out)
    assert list(report.changed) == ["ticks_60s"] and not report.removed
    diff = report.changed["ticks_60s"].splitlines()
    assert diff[:2] == ["--- ticks_60s as it computed the dataset", "+++ ticks_60s in feature_repo/ now"]
    assert [line.split()[:2] for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")] == [
        ["-", "median(spread)"],
        ["+", "avg(spread)"],
    ]
    assert report.identical  # the values were computed by the SQL of now: the bytes say so too

    manifest["sql_fingerprint"]["ticks_gone"] = "0:0"
    manifest_path.write_text(json.dumps(manifest))
    report = verify.verify(s, out)
    assert report.removed == ["ticks_gone"] and not report.identical and not report.differences


def test_comparing_tables_names_columns_rows_and_metadata() -> None:
    a = pa.table({"product_id": ["A", "B"], "x": [1.0, None], "n": [1, 2]})
    assert verify.compare(a, a.drop_columns(["n"]).append_column("m", pa.array([1, 2]))) == [
        "column n: in the file, not rebuilt",
        "column m: rebuilt, not in the file",
    ]
    assert verify.compare(a, a.set_column(2, "n", pa.array([1.0, 2.0]))) == [
        "column n: int64 in the file, double rebuilt"
    ]
    assert verify.compare(a, a.slice(0, 1)) == ["2 rows in the file, 1 rebuilt"]
    assert verify.compare(a, a.select(["x", "product_id", "n"])) == ["the columns' order differs"]
    # a NULL equals a NULL; a float column says how far apart its values are
    b = a.set_column(1, "x", pa.array([1.5, None]))
    assert verify.compare(a, b) == [
        "x: 1 of 2 rows differ, first row 1: 1.0 in the file, 1.5 rebuilt (largest difference 0.5)"
    ]
    assert verify.compare(a, a.replace_schema_metadata({"k": "v"})) == [
        "every value is the same; the Parquet files' own metadata differ (another writer?)"
    ]


def test_a_file_without_a_readable_manifest_is_refused_with_why(tmp_path: Path) -> None:
    out = tmp_path / "mine.parquet"
    pq.write_table(pa.table({"product_id": ["A"]}), out)
    with pytest.raises(ValueError, match=r"no manifest beside it \(mine.manifest.json\)"):
        verify.read_manifest(out)
    out.with_suffix(".manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="is no dataset manifest tickstore can read"):
        verify.read_manifest(out)
    out.with_suffix(".manifest.json").write_text("[1, 2]")  # JSON, but no object
    with pytest.raises(ValueError, match="is no dataset manifest tickstore can read"):
        verify.read_manifest(out)
    out.with_suffix(".manifest.json").write_text('{"path": "x"}')  # fields every manifest has, missing
    with pytest.raises(ValueError, match="is no dataset manifest tickstore can read"):
        verify.read_manifest(out)
    with pytest.raises(ValueError, match="no dataset at"):
        verify.read_manifest(tmp_path / "absent.parquet")


def test_a_file_cut_short_is_named_as_no_parquet_file(tmp_path: Path) -> None:
    out = tmp_path / "cut.parquet"
    pq.write_table(pa.table({"product_id": ["A"] * 1000, "x": list(range(1000))}), out)
    out.write_bytes(out.read_bytes()[:300])  # a copy cut off part way: no footer
    manifest = dataset.Manifest(str(out), "volatility_model", [], 0, 1000, "file", {}, {}, 0.0)
    # it was pyarrow's "Parquet magic bytes not found in footer", naming no file
    with pytest.raises(ValueError, match=r"cut.parquet is no Parquet file: Parquet magic bytes"):
        verify.verify(Settings(home=tmp_path / "home"), out, manifest=manifest)
