"""`training.entities`: entity rows read from CSV and Parquet files (built into sets: test_dataset.py)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
        ValueError,
        match=r"lacks column\(s\) event_timestamp \(it has product_id, 'event_timestamp '\): "
        r"rename 'event_timestamp ' to event_timestamp$",
    ):
        entities.file_entities(rows)


def test_a_tsv_or_a_csv_split_at_semicolons_reads_as_a_csv(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Excel writes semicolons where a comma is the decimal mark: "lacks column(s) event_timestamp,
    # product_id (it has product_id;event_timestamp)"
    for name, sep in (("rows.csv", ";"), ("rows.tsv", "\t"), ("rows.psv", "|")):
        rows = tmp_path / name
        rows.write_text(
            sep.join(["product_id", "event_timestamp", "x"])
            + "\n"
            + sep.join(["BTC-USD", "2025-12-06T07:00:00Z", "1,5"])
            + "\n"
        )
        frame = entities.file_entities(rows)
        assert frame.to_dict("list") == {
            "product_id": ["BTC-USD"],
            "event_timestamp": [pd.Timestamp("2025-12-06T07:00:00Z")],
            "x": ["1,5"],
        }, name


def test_a_missing_column_named_otherwise_is_named_with_the_rename(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = tmp_path / "rows.csv"
    rows.write_text("Symbol,timestamp,label\nBTC-USD,2025-12-06T07:00:00Z,1\n")
    with pytest.raises(
        ValueError,
        match=r"\(it has Symbol, timestamp, label\): rename timestamp to event_timestamp and Symbol to product_id$",
    ):
        entities.file_entities(rows)
    # two columns either could be: no guess
    rows.write_text("product_id,time,ts\nBTC-USD,2025-12-06T07:00:00Z,1\n")
    with pytest.raises(
        ValueError, match=r"lacks column\(s\) event_timestamp \(it has product_id, time, ts\)$"
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


def test_a_time_pandas_cannot_hold_is_refused_naming_its_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "product_id,event_timestamp\nBTC-USD,2025-12-06T07:00:00Z\nBTC-USD,99999-01-01T00:00:00Z\n"
    )
    # it was pandas' "Out of bounds nanosecond timestamp: 99999-01-01 00:00:00", naming no file or line
    with pytest.raises(
        ValueError, match=r"of the years 1678-2261 .*'99999-01-01T00:00:00Z' is not \(line 3\)"
    ):
        entities.file_entities(rows)


def test_a_trailing_comma_on_each_line_is_layout_and_a_value_past_the_header_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = tmp_path / "rows.csv"
    # each line one field longer than the header: pandas took the products for an index (a traceback)
    rows.write_text(
        "product_id,event_timestamp\nBTC-USD,2025-12-06T07:00:00Z,\nETH-USD,2025-12-06T08:00:00Z,\n"
    )
    frame = entities.file_entities(rows)
    assert frame["product_id"].tolist() == ["BTC-USD", "ETH-USD"]
    assert frame["event_timestamp"].tolist() == [
        pd.Timestamp("2025-12-06T07:00Z"),
        pd.Timestamp("2025-12-06T08:00Z"),
    ]
    rows.write_text(
        "product_id,event_timestamp\nBTC-USD,2025-12-06T07:00:00Z,\nETH-USD,2025-12-06T08:00:00Z,1\n"
    )
    with pytest.raises(
        ValueError, match="line 3 has 3 fields where the header names 2: name the extra column"
    ):
        entities.file_entities(rows)


CELL = st.one_of(
    st.sampled_from(
        ["BTC-USD", "2025-12-06T07:00:00Z", "2025-12-06", "99999-01-01", "0001-01-01", "1e9", ""]
    ),
    st.sampled_from(["infinity", "NaN", "epoch", '"a,b"', "\u00e9", "07:00", "-1", "true"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8),
)


@settings(max_examples=150, deadline=None)
@given(
    header=st.lists(st.sampled_from(["product_id", "event_timestamp", "label", ""]), min_size=1, max_size=3),
    lines=st.lists(st.lists(CELL, min_size=0, max_size=4), max_size=4),
    gzip_it=st.booleans(),
)
def test_any_csv_gives_entity_rows_or_a_value_error_saying_why(
    header: list[str], lines: list[list[str]], gzip_it: bool
) -> None:
    text = "\n".join([",".join(header), *(",".join(cells) for cells in lines)]) + "\n"
    data = gzip.compress(text.encode()) if gzip_it else text.encode()
    try:  # piped in (`--entities -`), as the CLI reads stdin: no file on disk per example
        frame = entities.file_entities(Path("rows.csv"), data)
    except ValueError as exc:  # the CLI prints it as the error; anything else would be a traceback
        assert str(exc), text
        return
    assert len(frame) and frame["event_timestamp"].notna().all()
    assert str(frame["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert frame["product_id"].map(lambda p: isinstance(p, str) and p.strip() != "").all()
