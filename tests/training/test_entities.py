"""`training.entities`: entity rows read from CSV and Parquet files (built into sets: test_dataset.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from training import entities


def test_spaces_after_a_csv_files_commas_are_layout_and_odd_column_names_show(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = tmp_path / "rows.csv"
    rows.write_text("product_id, event_timestamp, label\nBTC-USD, 2025-12-06T07:00:00Z, 1\n")
    frame = entities.file_entities(rows)
    assert list(frame.columns) == ["product_id", "event_timestamp", "label"]
    assert frame["product_id"].tolist() == ["BTC-USD"] and frame["label"].tolist() == [1]
    assert frame["event_timestamp"].tolist() == [pd.Timestamp("2025-12-06T07:00:00Z")]
    # a space before a comma is part of the name: the message quotes it, so it shows
    rows.write_text("product_id,event_timestamp \nBTC-USD,2025-12-06T07:00:00Z\n")
    with pytest.raises(
        ValueError, match=r"lacks column\(s\) event_timestamp \(it has product_id, 'event_timestamp '\)"
    ):
        entities.file_entities(rows)


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
    times = entities.file_entities(rows)["event_timestamp"].tolist()
    seven = pd.Timestamp("2025-12-06T07:00:00Z")
    assert times == [seven, seven, seven + pd.Timedelta("500ms"), seven, pd.Timestamp("2025-12-06", tz="UTC")]
    rows.write_text("product_id,event_timestamp\nBTC-USD,2025-12-06T07:00:00\nBTC-USD,07:00 yesterday\n")
    with pytest.raises(ValueError, match=r"'07:00 yesterday' is not \(line 3\)"):
        entities.file_entities(rows)
