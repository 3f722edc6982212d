"""Data tests for sql/labels_fwd_vol_60s.sql (hand-checked windows, a property test against the
labels' definition) and the spike threshold."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tickstore.lake import TICKS_DDL
from training import labels

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ticks_con(rows: list[tuple[str, float, float]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(TICKS_DDL)
    for i, (product, sec, mid) in enumerate(rows):
        con.execute(
            "INSERT INTO ticks (product_id, event_time, sequence, tick_id, best_bid, best_ask) VALUES (?, ?, ?, ?, ?, ?)",
            [product, T0 + timedelta(seconds=sec), i, i, mid - 0.5, mid + 0.5],
        )
    return con


def test_forward_vol_uses_only_ticks_strictly_after_t() -> None:
    mids = {0: 100.0, 10: 101.0, 20: 103.0, 30: 102.0, 70: 104.0, 200: 100.0}
    con = ticks_con([("A", s, m) for s, m in mids.items()])
    got = labels.forward_vol(
        con, T0, T0 + timedelta(seconds=11), timedelta(seconds=10), timedelta(seconds=60)
    )
    by_t = {int((r.event_timestamp - T0).total_seconds()): r for r in got.itertuples()}
    # t = 0: ticks in (0, 60] are 10, 20, 30; returns between them: 10->20, 20->30 (0->10 starts at t: excluded)
    r1, r2 = math.log(103 / 101), math.log(102 / 103)
    assert by_t[0].fwd_vol == pytest.approx(math.sqrt(r1 * r1 + r2 * r2)) and by_t[0].fwd_returns == 2
    # t = 10: (10, 70] holds 20, 30, 70: returns 20->30 and 30->70 (10->20 starts at t: excluded)
    r3 = math.log(104 / 102)
    assert by_t[10].fwd_vol == pytest.approx(math.sqrt(r2 * r2 + r3 * r3))


def test_incomplete_horizons_are_dropped() -> None:
    con = ticks_con([("A", s, 100.0 + s / 10) for s in range(0, 100, 5)])  # data ends at 95 s
    got = labels.forward_vol(con, T0, T0 + timedelta(seconds=60), timedelta(seconds=5), timedelta(seconds=60))
    last = (got["event_timestamp"].max() - T0).total_seconds()
    assert last == 35  # 35 + 60 = 95 is the last tick; 40 + 60 is past the data


def test_ties_at_t_and_at_the_horizon_edge() -> None:
    # two ticks at t = 10 (neither is after t), two at t + 60 = 70 (both inside the horizon)
    rows = [("A", 0, 100.0), ("A", 10, 101.0), ("A", 10, 102.0), ("A", 30, 103.0), ("A", 70, 104.0)]
    rows += [("A", 70, 105.0), ("A", 71, 106.0), ("A", 200, 100.0)]
    got = labels.forward_vol(
        ticks_con(rows),
        T0 + timedelta(seconds=10),
        T0 + timedelta(seconds=11),
        timedelta(seconds=10),
        timedelta(seconds=60),
    )
    # returns in (10, 70]: 30 -> 70, 70 -> 70 (the pair at 10 -> 30 starts at t: excluded); 71 is past t + 60
    r1, r2 = math.log(104 / 103), math.log(105 / 104)
    assert got["fwd_returns"].tolist() == [2]
    assert got["fwd_vol"][0] == pytest.approx(math.sqrt(r1 * r1 + r2 * r2), rel=1e-12)


def test_a_flat_stretch_after_a_busy_one_has_exactly_zero_volatility() -> None:
    # Running sums of DOUBLE squares from DuckDB's window were not monotone (a prefix is added from
    # segment-tree nodes): after a busy stretch, 60 s of unchanged mids gave -8e-22 (sqrt raised) or
    # 3e-11. Several random walks, since which ones showed it depends on where the nodes fall.
    for seed in range(8):
        rng = random.Random(seed)
        mids, mid = [], 90_000.0
        for _ in range(rng.randint(500, 3000)):
            mid = round(mid + rng.gauss(0, 5), 2)
            mids.append(mid)
        flat_from = len(mids) / 2  # seconds: ticks every 0.5 s
        mids += [mid] * 300 + [mid + 1]
        frame = pd.DataFrame({"i": range(len(mids)), "sec": [i / 2 for i in range(len(mids))], "mid": mids})
        frame.loc[frame.index[-1], "sec"] = flat_from + 400  # the last move is past every horizon below
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute(TICKS_DDL)
        con.execute(
            """INSERT INTO ticks (product_id, event_time, sequence, tick_id, best_bid, best_ask)
               SELECT 'A', ?::TIMESTAMPTZ + to_microseconds((sec * 1e6)::BIGINT), i, i,
                      mid - 0.005, mid + 0.005
               FROM frame""",
            [T0],
        )
        got = labels.forward_vol(
            con, T0, T0 + timedelta(seconds=flat_from + 80), timedelta(seconds=5), timedelta(seconds=60)
        )
        flat = got[got["event_timestamp"] >= T0 + timedelta(seconds=flat_from)]
        assert len(flat) >= 16 and (flat["fwd_returns"] >= 2).all()
        assert flat["fwd_vol"].tolist() == [0.0] * len(flat), seed


@st.composite
def label_streams(draw: st.DrawFn) -> list[tuple[str, float, float]]:
    """Ticks of two products on a half-second clock: ties, bursts, gaps longer than the horizon."""
    n = draw(st.integers(2, 80))
    return [
        (draw(st.sampled_from("AB")), draw(st.integers(0, 500)) / 2, 100.0 + draw(st.integers(-50, 50)) / 10)
        for _ in range(n)
    ]


def reference_labels(
    rows: list[tuple[str, float, float]], start: float, end: float, every: float, horizon: float
) -> dict[tuple[str, float], tuple[int, float]]:
    """The labels by their definition: every return whose two ticks both lie in (t, t + horizon]."""
    out = {}
    for product in sorted({p for p, _, _ in rows}):
        # the ticks the SQL reads, in its order (time, then insertion: sequence = tick_id = index)
        ticks = sorted((sec, i, mid) for i, (p, sec, mid) in enumerate(rows) if p == product)
        ticks = [(sec, mid) for sec, _, mid in ticks if start <= sec < end + 2 * horizon]
        if not ticks:
            continue
        pairs = [(a[0], b[0], math.log(b[1] / a[1])) for a, b in itertools.pairwise(ticks)]
        k, t = 0, start
        while t < end:  # every point of the grid, however far from the ticks
            if t + horizon <= ticks[-1][0]:
                inside = [r for prev, at, r in pairs if prev > t and at <= t + horizon]
                if len(inside) >= 2:
                    out[(product, t)] = (len(inside), math.sqrt(sum(r * r for r in inside)))
            k += 1
            t = start + k * every
    return out


@hsettings(max_examples=40, deadline=None)
# three ticks tied at 100 s: the grid's point 100 s - the horizon (40 s) has the two returns between
# them in its horizon (40, 100], the earliest point of a product's grid with a label
@example(
    rows=[("A", 100.0, 100.0), ("A", 100.0, 100.5), ("A", 100.0, 101.0)],
    start=0,
    span=1000.0,
    every=2.5,
    horizon=60.0,
)
@given(
    rows=label_streams(),
    start=st.integers(0, 100),
    span=st.sampled_from([150.0, 1000.0]),  # ticks lie in [0, 250]: the grid runs on past them
    every=st.sampled_from([0.5, 2.5, 3.75]),
    horizon=st.sampled_from([5.0, 20.0, 60.0]),
)
def test_labels_equal_their_definition_on_random_streams(
    rows: list[tuple[str, float, float]], start: int, span: float, every: float, horizon: float
) -> None:
    end = start + span
    got = labels.forward_vol(
        ticks_con(rows),
        T0 + timedelta(seconds=start),
        T0 + timedelta(seconds=end),
        timedelta(seconds=every),
        timedelta(seconds=horizon),
    )
    have = {
        (r.product_id, (r.event_timestamp - T0).total_seconds()): (r.fwd_returns, r.fwd_vol)
        for r in got.itertuples()
    }
    want = reference_labels(rows, float(start), end, every, horizon)
    assert have.keys() == want.keys()
    for key, (count, vol) in want.items():
        assert have[key][0] == count, key
        assert have[key][1] == pytest.approx(vol, rel=1e-9, abs=1e-15), key


def test_spike_threshold_is_a_training_percentile() -> None:
    assert labels.spike_threshold(pd.Series(range(101)), 95) == pytest.approx(95.0)
    # between two values, interpolated (NumPy's linear percentile), not either of them
    assert labels.spike_threshold(pd.Series([0.0, 1.0]), 95) == pytest.approx(0.95)


def test_a_range_far_wider_than_the_ticks_is_a_grid_over_them_and_a_too_fine_grid_is_refused() -> None:
    """A range of two centuries over ticks of 100-200 s gives the labels the range around them does
    (the grid was every point of the range: 6.3 billion at 1 s, no answer in 5 minutes), and a grid
    of more than MAX_GRID_ROWS points near the ticks is refused before any is made."""
    con = ticks_con([("A", 100.0, 100.0), ("A", 100.0, 100.5), ("A", 130.0, 101.0), ("A", 200.0, 100.0)])
    second, minute, century = timedelta(seconds=1), timedelta(seconds=60), timedelta(days=36_500)
    # from 100 s less the horizon (40 s) to the last tick (200 s)
    assert labels.grid_points(con, T0 - century, T0 + century, second, minute) == 161
    assert labels.grid_points(con, T0 + timedelta(seconds=150), T0 + century, second, minute) == 51
    assert labels.grid_points(con, T0 + timedelta(seconds=201), T0 + century, second, minute) == 0
    wide = labels.forward_vol(con, T0 - century, T0 + century, second, minute)
    near = labels.forward_vol(con, T0, T0 + timedelta(seconds=300), second, minute)
    assert len(near) == 30 and wide.equals(near)  # t in [70, 100): the returns ending at 100 and 130 s
    with pytest.raises(ValueError, match=r"are 160,000,001 rows, more than 50,000,000 .*raise --every"):
        labels.forward_vol(con, T0 - century, T0 + century, timedelta(microseconds=1), minute)
