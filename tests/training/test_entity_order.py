"""`training.entity_order`: entity rows out of time order are built a time-ordered chunk at a time and
written back in their own order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from feast import FeatureStore

from tests.tickstore_feast.conftest import T0
from tests.training.helpers import seeded
from tickstore.settings import Settings
from training import dataset, entity_order


def shuffled_rows(s: Settings) -> pd.DataFrame:
    """Entity rows every 2 s over the seeded lake's first 300 s, shuffled, each labelled with its place."""
    grid = dataset.grid_entities(s, dataset.Grid(T0, T0 + timedelta(seconds=300), timedelta(seconds=2)), 2)
    rows = grid.sample(frac=1.0, random_state=7).reset_index(drop=True)
    return rows.assign(label=np.arange(len(rows)))


def test_rows_out_of_time_order_are_built_by_time_and_written_in_their_own_order(
    make_settings: Callable[..., Settings], tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    s = seeded(make_settings)
    rows = shuffled_rows(s)
    stages: list[str] = []
    whole = dataset.build(s, rows, tmp_path / "whole.parquet", stage=stages.append)  # one chunk: as given
    assert stages == []
    spans: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    real = FeatureStore.get_historical_features

    def watched(self: FeatureStore, *args: Any, **kwargs: Any) -> Any:  # notes each chunk's time span
        times = kwargs["entity_df"]["event_timestamp"]
        spans.append((times.min(), times.max()))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(FeatureStore, "get_historical_features", watched)
    monkeypatch.setattr(dataset, "CHUNK_ROWS", 64)
    chunked = dataset.build(s, rows, tmp_path / "chunked.parquet", stage=stages.append)
    assert stages == [entity_order.RESTORING]  # shown once the chunks are read (the CLI's bar says it)

    # 300 rows in 5 chunks, each a stretch of time of its own (shuffled, each spanned nearly all 300 s)
    assert len(spans) == 5 and all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    one, five = pq.read_table(tmp_path / "whole.parquet"), pq.read_table(tmp_path / "chunked.parquet")
    assert five.column("label").to_pylist() == list(range(len(rows)))  # the entity rows' own order
    assert five.schema == one.schema and entity_order.PLACE not in five.column_names
    # the same features, but for the last bits of some: each chunk's windows run over the ticks its rows
    # span, and DuckDB sums a window from segment-tree nodes that depend on where those ticks start
    pd.testing.assert_frame_equal(five.to_pandas(), one.to_pandas(), check_exact=False, rtol=1e-9, atol=1e-15)
    assert five.column("tick_count_60s").null_count < len(rows)  # features, not NULLs throughout
    assert chunked.null_fraction == whole.null_fraction and entity_order.PLACE not in chunked.null_fraction
    groups = pq.ParquetFile(tmp_path / "chunked.parquet").metadata  # written a chunk a row group
    assert [groups.row_group(i).num_rows for i in range(groups.num_row_groups)] == [64, 64, 64, 64, 44]
    # a rebuild gives the same bytes, and nothing is left beside the dataset
    dataset.build(s, rows, tmp_path / "again.parquet", as_of=chunked.snapshot)
    assert (tmp_path / "again.parquet").read_bytes() == (tmp_path / "chunked.parquet").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == [
        f"{name}.{ext}" for name in ("again", "chunked", "whole") for ext in ("manifest.json", "parquet")
    ]


def test_an_interrupted_out_of_order_build_leaves_nothing_behind(
    make_settings: Callable[..., Settings], tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    s = seeded(make_settings)
    monkeypatch.setattr(dataset, "CHUNK_ROWS", 64)

    def interrupt(done: int, total: int) -> None:  # Ctrl-C once the second chunk is written
        if done > 64:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dataset.build(s, shuffled_rows(s), tmp_path / "train.parquet", progress=interrupt)
    assert [p.name for p in tmp_path.iterdir() if p.name != "home"] == []


def test_rows_in_time_order_or_in_one_chunk_are_built_as_given() -> None:
    times = pd.Series(
        pd.to_datetime(["2026-01-01T00:00:02Z", "2026-01-01T00:00:01Z", "2026-01-01T00:00:03Z"])
    )
    rows = pd.DataFrame({"product_id": ["A", "B", "A"], "event_timestamp": times})
    assert entity_order.time_order(rows, chunk_rows=3) is None  # one chunk
    assert entity_order.time_order(rows.sort_values("event_timestamp"), chunk_rows=2) is None
    assert entity_order.time_order(rows, chunk_rows=2).tolist() == [1, 0, 2]  # type: ignore[union-attr]
    assert entity_order.in_time_order(rows, np.array([1, 0, 2]))[entity_order.PLACE].tolist() == [1, 0, 2]
    with pytest.raises(ValueError, match="uses itself: rename it"):
        entity_order.in_time_order(rows.assign(**{entity_order.PLACE: 0}), np.array([1, 0, 2]))
