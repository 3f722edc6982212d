"""Forward-volatility labels from `sql/labels_fwd_vol_60s.sql`, and the spike threshold."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from tickstore.feature_sql import SQL_DIR
from training.dataset import MAX_GRID_ROWS

LABEL_SQL = SQL_DIR / "labels_fwd_vol_60s.sql"


def forward_vol(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, every: timedelta, horizon: timedelta
) -> pd.DataFrame:
    """product_id, event_timestamp, fwd_vol, fwd_returns on the grid (rows with incomplete horizons
    dropped); ValueError for a grid of more than MAX_GRID_ROWS points near the ticks."""
    points = grid_points(con, start, end, every, horizon)
    if points > MAX_GRID_ROWS:
        # the grid and its labels are DataFrames before training: a year of ticks every second is ~10 GB
        raise ValueError(
            f"labels every {every.total_seconds():g} s over the ticks of [{start}, {end}) are {points:,} rows, "
            f"more than {MAX_GRID_ROWS:,} in one training set: raise --every, or train on a shorter range"
        )
    params = {
        "start": start,
        "end": end,
        "every_s": every.total_seconds(),
        "horizon_s": horizon.total_seconds(),
    }
    frame = con.execute(LABEL_SQL.read_text(), params).df()
    return frame.sort_values(["event_timestamp", "product_id"], kind="stable").reset_index(drop=True)


def grid_points(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, every: timedelta, horizon: timedelta
) -> int:
    """How many points of the label grid the SQL computes: each product's, from its first tick less the
    horizon to its last tick (within [start, end)), one more at most where a span starts off the grid."""
    # in SQL, not Python: a time near year 9999 plus the horizon is past Python's datetime
    (points,) = con.execute(
        """
        SELECT coalesce(sum((epoch_us(hi) - epoch_us(lo)) // ($every_s * 1e6)::BIGINT + 1), 0)::BIGINT
        FROM (
            SELECT
                greatest($start::TIMESTAMPTZ, min(event_time) - to_seconds($horizon_s::DOUBLE)) AS lo,
                least($end::TIMESTAMPTZ, max(event_time)) AS hi
            FROM ticks  -- the ticks the label SQL reads
            WHERE event_time >= $start AND event_time < $end::TIMESTAMPTZ + to_seconds($horizon_s::DOUBLE) * 2
            GROUP BY product_id
        )
        WHERE lo < hi
        """,
        {"start": start, "end": end, "every_s": every.total_seconds(), "horizon_s": horizon.total_seconds()},
    ).fetchone() or (0,)
    return int(points)


def spike_threshold(train_fwd_vol: pd.Series, percentile: float) -> float:
    """The fwd_vol above which a row is a spike: a percentile of the *training* split only."""
    return float(np.percentile(train_fwd_vol.to_numpy(), percentile))
