"""Feature SQL (tickstore.feature_sql): fingerprints, header lines, the views ad-hoc SQL names and calls."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.tickstore_feast.conftest import T0, load, tick_rows
from tickstore import lake
from tickstore.feature_sql import (
    SQL_DIR,
    attach_views,
    column_comments,
    fingerprints,
    lookback,
    over_ticks,
    same_definition,
    time_column,
)
from tickstore.settings import Settings


def test_a_fingerprint_ignores_comments_layout_and_keyword_case_but_not_what_the_sql_computes() -> None:
    sql = (SQL_DIR / "ticks_60s.sql").read_text()
    reworded = "-- a new comment\n" + sql.replace("\n", "\n    ").replace("SELECT", "select") + ";"
    longer_gap = sql.replace("60000000", "61000000")  # returns across gaps of up to 61 s
    renamed = sql.replace("AS ret_std_60s", "AS ret_sd_60s")
    assert longer_gap != sql and renamed != sql
    same, also_same, other, other_name = fingerprints([sql, reworded, longer_gap, renamed])
    assert re.fullmatch(r"[0-9a-f]{64}:[0-9a-f]{64}", same)
    assert same != also_same and same_definition(same, also_same)
    assert not same_definition(same, other) and not same_definition(same, other_name)
    assert not same_definition(other, other_name)


def test_the_same_text_is_the_same_definition_whatever_the_parser_made_of_it() -> None:
    sql = (SQL_DIR / "ticks_10s.sql").read_text()
    (mine,) = fingerprints([sql])
    tree, text = mine.split(":")
    # another DuckDB release may serialize its trees otherwise: the unchanged file still matches
    assert same_definition(f"{'0' * 64}:{text}", mine)
    assert not same_definition(f"{'0' * 64}:{'1' * 64}", mine)
    # text DuckDB can't parse has no tree part, and matches only itself
    broken, also_broken, other = fingerprints(["SELECT nothing FROM", "SELECT nothing FROM", "SELECT x FROM"])
    assert broken.startswith(":") and same_definition(broken, also_broken)
    assert not same_definition(broken, other)


def test_lookback_and_time_column_are_read_from_the_header_only() -> None:
    text = "-- v: x\n-- time column: ts (when)\n--   lookback: no, a continuation\n-- lookback: 2.5 s (why)\nSELECT 1\n"
    assert lookback(text) == timedelta(seconds=2.5) and time_column(text) == "ts"
    # a line after the SQL has begun is no header
    assert lookback("SELECT 1\n-- lookback: 60 s\n") is None
    assert time_column("SELECT 1") == "event_time"
    assert lookback((SQL_DIR / "ticks_300s.sql").read_text()) == timedelta(seconds=300)
    assert lookback((SQL_DIR / "tick_clock.sql").read_text()) == timedelta(0)
    # comment markers written without a space, and header lines indented, are the header's too
    assert lookback("--lookback: 5 s\nSELECT 1") == timedelta(seconds=5)
    indented = "  -- time column: ts\n    -- lookback: 7 s\nSELECT 1"
    assert lookback(indented) == timedelta(seconds=7) and time_column(indented) == "ts"
    # written otherwise, it is refused rather than read as none (the view would lose its reach)
    with pytest.raises(
        ValueError, match=r"'-- lookback: 1 min' gives no seconds: write it as '-- lookback: 60 s'"
    ):
        lookback("-- lookback: 1 min\nSELECT 1")


def test_column_comments_are_read_from_the_outer_select_only() -> None:
    text = (
        "-- v: x\n"
        "WITH t AS (\n"
        "    SELECT\n"
        "        price,  -- a CTE's column, not the view's\n"
        "        spread AS s  -- nor this\n"
        "    FROM ticks\n"
        ")\n"
        "SELECT\n"
        "    product_id,\n"
        "    avg(s) OVER w AS spread_mean,   -- mean spread -- in price units\n"
        "    count(*) AS n,\n"
        "    last,    -- the last one\n"
        "    max(price) AS top  -- the highest price\n"
        "FROM t\n"
        "-- trailing AS nothing -- after the FROM\n"
    )
    assert column_comments(text) == {
        "spread_mean": "mean spread -- in price units",
        "last": "the last one",
        "top": "the highest price",
    }
    assert column_comments("-- no SQL at all") == {}
    # a CTE written at the left margin too: the view's columns are the last SELECT's
    flush = "WITH t AS (\nSELECT\n    price AS p  -- the CTE's\nFROM ticks\n)\nSELECT\n    p AS top  -- the view's\nFROM t\n"
    assert column_comments(flush) == {"top": "the view's"}
    assert column_comments((SQL_DIR / "tick_clock.sql").read_text()) == {
        "event_time_us": "the tick's event time, microseconds since the Unix epoch"
    }


def _stream(seed: int) -> list[tuple[str, float, float]]:
    """Two products over ~20 minutes: bursts sharing a time, gaps longer than every window, and
    ticks placed so that a range starting at 600 s needs ticks from before 600 - lookback (a window's
    first return is taken from the tick before it)."""
    rng = np.random.default_rng(seed)
    rows = []
    for product in ("BTC-USD", "ETH-USD"):
        t = 0.0
        while t < 1200:
            t += float(rng.choice([0.0, 0.5, 3.0, 40.0, 400.0], p=[0.25, 0.4, 0.25, 0.07, 0.03]))
            rows.append((product, round(t, 3), 100.0 + float(rng.normal(0, 1))))
    rows += [("SOL-USD", s, 20.0 + s / 100) for s in (480.0, 485.0, 530.0, 550.0, 590.0, 600.0, 600.0, 610.0)]
    return rows


def _scans(node: Any) -> Iterator[Any]:
    """The filters of each scan of the lake's ticks in an EXPLAIN (FORMAT json) plan."""
    if isinstance(node, list):
        for child in node:
            yield from _scans(child)
    elif isinstance(node, dict):
        if node.get("name", "").endswith("_SCAN") and node.get("extra_info", {}).get("Table") == "ticks":
            yield node["extra_info"].get("Filters")
        yield from _scans(node.get("children", []))


@pytest.mark.parametrize("view", ["ticks_10s", "ticks_60s", "ticks_300s", "tick_clock"])
def test_a_view_called_with_a_time_range_gives_the_rows_of_its_whole_history(
    view: str, make_settings: Callable[..., Settings]
) -> None:
    s = make_settings()
    load(s, tick_rows(_stream(7)))
    con = lake.connect(s, create=False, read_only=True)
    try:
        ranges: list[tuple[float | None, float | None]] = [
            (600.0, 900.0),
            (600.0, None),
            (0.0, 30.0),
            (1000.5, 1000.5),
            (250.0, 1300.0),
            (None, 300.0),  # NULL leaves an end open
            (None, None),
        ]
        for since, until in ranges:
            lo, hi = (None if t is None else (T0 + timedelta(seconds=t)).isoformat() for t in (since, until))
            called = (
                f"SELECT * FROM {view}("
                + (f"'{lo}'" if lo else "NULL")
                + (f", until := '{hi}'" if hi else "")
                + ")"
            )
            filtered = f"SELECT * FROM {view} WHERE event_time >= '{lo or '-infinity'}'" + (
                f" AND event_time < '{hi}'" if hi else ""
            )
            assert attach_views(con, called + filtered) == [view]
            order = " ORDER BY ALL"
            got, expected = (con.execute(q + order).df() for q in (called, filtered))
            assert len(expected) == len(got) and (len(got) > 0 or since == until), (since, until)
            pd.testing.assert_frame_equal(got, expected, rtol=1e-9, check_exact=False)
        # the lake is read from the range's reach on, not computed whole and filtered after
        plan = con.execute(
            f"EXPLAIN (FORMAT json) SELECT * FROM {view}('{T0 + timedelta(seconds=1000)}')"
        ).fetchall()[0][1]
        scans = list(_scans(json.loads(plan)))
        assert scans and all("event_time>=" in str(filters) for filters in scans), scans
    finally:
        con.close()


def test_over_ticks_reads_both_ends_of_its_range_under_a_body_ending_in_a_comment(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings()
    load(s, tick_rows([("BTC-USD", t, 100.0) for t in (9.999999, 10.0, 15.0, 20.0, 20.000001)]))
    con = lake.connect(s, create=False, read_only=True)
    try:
        lo, hi = (f"TIMESTAMPTZ '{(T0 + timedelta(seconds=t)).isoformat()}'" for t in (10, 20))
        body = "SELECT event_time FROM ticks  -- a comment on the body's last line"
        got = con.execute(f"SELECT count(*) FROM ({over_ticks(body, lo, hi)})").fetchone()  # noqa: S608
        assert got == (3,)  # 10, 15 and 20 s: both ends included
    finally:
        con.close()


def test_only_the_views_a_query_names_are_attached_and_a_lake_table_of_that_name_wins(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings()
    load(s, tick_rows([("BTC-USD", t, 100.0) for t in (1.0, 2.0)]))
    con = lake.connect(s)
    try:
        # a name that only contains a view's is not that view
        assert attach_views(con, "SELECT 1 AS ticks_60s_v2") == []
        assert attach_views(con, "SELECT * FROM ticks_60s") == ["ticks_60s"]
        con.execute("CREATE TABLE tick_clock AS SELECT 'kept' AS mine")  # a table of the user's, in the lake
        assert attach_views(con, "SELECT * FROM tick_clock") == []
        assert con.execute("SELECT * FROM tick_clock").fetchall() == [("kept",)]
    finally:
        con.close()
