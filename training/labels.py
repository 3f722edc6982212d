"""Forward-volatility labels from `sql/labels_fwd_vol_60s.sql`, and the spike threshold."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from tickstore.feature_sql import SQL_DIR

LABEL_SQL = SQL_DIR / "labels_fwd_vol_60s.sql"


def forward_vol(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, every: timedelta, horizon: timedelta
) -> pd.DataFrame:
    """product_id, event_timestamp, fwd_vol, fwd_returns on the grid (rows with incomplete horizons dropped)."""
    params = {
        "start": start,
        "end": end,
        "every_s": every.total_seconds(),
        "horizon_s": horizon.total_seconds(),
    }
    frame = con.execute(LABEL_SQL.read_text(), params).df()
    return frame.sort_values(["event_timestamp", "product_id"], kind="stable").reset_index(drop=True)


def spike_threshold(train_fwd_vol: pd.Series, percentile: float) -> float:
    """The fwd_vol above which a row is a spike: a percentile of the *training* split only."""
    return float(np.percentile(train_fwd_vol.to_numpy(), percentile))
