"""Data tests for sql/ticks_{10,60,300}s.sql: small hand-made ticks, hand-checked window edges."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from tests.conftest import REPO
from tests.sql.helpers import simulated_ticks
from tickstore.lake import TICKS_DDL

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ticks_con(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB whose ticks table holds rows of (product, seconds after T0, bid, ask,
    bid_size, ask_size, price)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(TICKS_DDL)
    for i, (product, sec, bid, ask, bsz, asz, price) in enumerate(rows):
        con.execute(
            "INSERT INTO ticks (product_id, event_time, sequence, tick_id, best_bid, best_ask, best_bid_size,"
            " best_ask_size, price) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [product, T0 + timedelta(seconds=sec), i, i, bid, ask, bsz, asz, price],
        )
    return con


def run(window: int, rows: list[tuple]) -> dict[tuple[str, int], dict]:
    """Run sql/ticks_<window>s.sql over rows of (product, seconds after T0, bid, ask, bid_size, ask_size, price)."""
    con = ticks_con(rows)
    rel = con.sql((REPO / "sql" / f"ticks_{window}s.sql").read_text())
    out: dict[tuple[str, int], dict] = {}
    for row in rel.fetchall():
        r = dict(zip(rel.columns, row, strict=True))
        key = (r["product_id"], round((r["event_time"] - T0).total_seconds() * 1e6))
        out.setdefault(key, r)  # peers have equal values (checked below)
    return out


def us(seconds: float) -> int:
    return round(seconds * 1e6)


@pytest.mark.parametrize("w", [10, 60, 300])
def test_window_edges_exactly_w_apart_gap_and_single_tick(w: int) -> None:
    mids = [100.0, 101.0, 102.0, 99.0]
    rows = [
        ("A", 0, mids[0] - 0.5, mids[0] + 0.5, 1.0, 3.0, 100.0),
        ("A", w, mids[1] - 0.5, mids[1] + 0.5, 2.0, 2.0, 101.0),  # exactly w after: both in its window
        ("A", w + 0.000001, mids[2] - 1.0, mids[2] + 1.0, 3.0, 1.0, 103.0),  # the first has just left
        ("A", 5 * w, mids[3] - 0.5, mids[3] + 0.5, None, None, 99.0),  # after a gap > w: alone
    ]
    f = run(w, rows)
    a0, a1, a2, a3 = (f[("A", us(s))] for s in (0, w, w + 0.000001, 5 * w))

    # one-tick window: no return, count 1, zero range
    assert a0[f"tick_count_{w}s"] == 1 and a0[f"ret_mean_{w}s"] is None and a0[f"price_range_{w}s"] == 0
    assert a0[f"imbalance_mean_{w}s"] == pytest.approx((1 - 3) / 4)

    # exactly w apart: both ends included
    r1 = math.log(mids[1] / mids[0])
    assert a1[f"tick_count_{w}s"] == 2
    assert a1[f"ret_mean_{w}s"] == pytest.approx(r1) and a1[f"ret_std_{w}s"] is None  # one return only
    assert a1[f"realized_var_{w}s"] == pytest.approx(r1 * r1)
    assert a1[f"price_range_{w}s"] == pytest.approx(1.0)
    assert a1[f"trade_intensity_{w}s"] == pytest.approx(2 / w)
    assert a1[f"spread_mean_{w}s"] == pytest.approx(1.0)
    assert a1[f"spread_bps_mean_{w}s"] == pytest.approx((1 / mids[0] + 1 / mids[1]) / 2 * 1e4)

    # 1 us later the first tick is out: ticks 1 and 2, both returns inside
    r2 = math.log(mids[2] / mids[1])
    assert a2[f"tick_count_{w}s"] == 2
    assert a2[f"ret_mean_{w}s"] == pytest.approx((r1 + r2) / 2)
    assert a2[f"ret_std_{w}s"] == pytest.approx(abs(r1 - r2) / math.sqrt(2))
    assert a2[f"realized_var_{w}s"] == pytest.approx(r1 * r1 + r2 * r2)
    assert a2[f"spread_mean_{w}s"] == pytest.approx(1.5)
    assert a2[f"imbalance_mean_{w}s"] == pytest.approx(((2 - 2) / 4 + (3 - 1) / 4) / 2)
    assert a2[f"price_range_{w}s"] == pytest.approx(2.0)

    # after a gap longer than the window: alone, no stale return, sizes missing -> NULL imbalance
    assert a3[f"tick_count_{w}s"] == 1 and a3[f"ret_mean_{w}s"] is None and a3[f"realized_var_{w}s"] is None
    assert a3[f"imbalance_mean_{w}s"] is None


def test_bursts_with_identical_timestamps_are_one_window_and_products_never_mix() -> None:
    rows = [
        ("A", 1, 99.5, 100.5, 1.0, 1.0, 100.0),
        ("A", 2, 100.5, 101.5, 1.0, 1.0, 101.0),
        ("A", 2, 101.5, 102.5, 1.0, 1.0, 102.0),  # burst: same timestamp
        ("A", 2, 102.5, 103.5, 1.0, 1.0, 103.0),
        ("B", 2, 9.5, 10.5, 1.0, 1.0, 10.0),  # another product at the same time
    ]
    f = run(10, rows)
    burst = f[("A", us(2))]
    assert burst["tick_count_10s"] == 4  # every peer, whichever of them is the current row
    rets = [math.log(101 / 100), math.log(102 / 101), math.log(103 / 102)]
    assert burst["ret_mean_10s"] == pytest.approx(sum(rets) / 3)
    assert burst["price_range_10s"] == pytest.approx(3.0)
    assert f[("B", us(2))]["tick_count_10s"] == 1


def test_peers_get_identical_rows() -> None:
    rows = [("A", 1, 99.5, 100.5, 1.0, 2.0, 100.0)] + [
        ("A", 3, 100.0 + i, 101.0 + i, 1.0, 1.0, 100.0 + i) for i in range(3)
    ]
    con = ticks_con(rows)
    sql = (REPO / "sql" / "ticks_60s.sql").read_text()
    distinct = con.sql(
        f"SELECT count(*) FROM (SELECT DISTINCT * EXCLUDE (product_id) FROM ({sql}) WHERE event_time = $t)",
        params={"t": T0 + timedelta(seconds=3)},
    ).fetchone()
    assert distinct == (1,)


@pytest.mark.parametrize("w", [10, 60, 300])
def test_equals_the_plain_range_window_formulation_on_random_ticks(w: int) -> None:
    """The ROWS-with-offsets frame must select exactly the RANGE frame's rows (checked on 20k ticks)."""
    con = simulated_ticks(seed=w)
    ours = (REPO / "sql" / f"ticks_{w}s.sql").read_text()
    reference = f"""
        SELECT product_id, event_time,
               count(*) OVER r AS n, sum(ret * ret) OVER r AS rv, stddev_samp(ret) OVER r AS sd,
               avg(imbalance) OVER r AS imb, max(price) OVER r - min(price) OVER r AS rng
        FROM (
            SELECT *, (best_bid_size::DOUBLE - best_ask_size::DOUBLE) / nullif(best_bid_size::DOUBLE + best_ask_size::DOUBLE, 0) AS imbalance,
                   CASE WHEN event_time - lag(event_time) OVER p <= INTERVAL {w} SECOND
                        THEN ln(best_bid::DOUBLE + best_ask::DOUBLE) - ln(lag(best_bid::DOUBLE + best_ask::DOUBLE) OVER p) END AS ret
            FROM ticks WINDOW p AS (PARTITION BY product_id ORDER BY event_time, sequence, tick_id))
        WINDOW r AS (PARTITION BY product_id ORDER BY event_time RANGE BETWEEN INTERVAL {w} SECOND PRECEDING AND CURRENT ROW)
    """
    bad = con.sql(f"""
        WITH a AS (SELECT DISTINCT * FROM ({ours})), b AS (SELECT DISTINCT * FROM ({reference}))
        SELECT count(*) FILTER (a.tick_count_{w}s <> b.n
                  OR abs(coalesce(a.realized_var_{w}s, 0) - coalesce(b.rv, 0)) > 1e-12 + 1e-9 * abs(coalesce(b.rv, 0))
                  OR abs(coalesce(a.ret_std_{w}s, 0) - coalesce(b.sd, 0)) > 1e-12
                  OR (a.imbalance_mean_{w}s IS NULL) <> (b.imb IS NULL)
                  OR abs(coalesce(a.imbalance_mean_{w}s, 0) - coalesce(b.imb, 0)) > 1e-12
                  OR abs(a.price_range_{w}s - b.rng) > 1e-9),
               count(*)
        FROM a JOIN b USING (product_id, event_time)
    """).fetchone()
    assert bad is not None and bad[0] == 0 and bad[1] > 15_000
