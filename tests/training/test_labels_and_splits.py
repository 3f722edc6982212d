"""Forward-vol label SQL (hand-checked windows) and purged chronological splits."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd
import pytest

from tickstore.lake import TICKS_DDL
from training import labels, splits

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


def test_spike_threshold_is_a_training_percentile() -> None:
    assert labels.spike_threshold(pd.Series(range(101)), 95) == pytest.approx(95.0)


def test_chronological_split_purges_every_boundary() -> None:
    frame = pd.DataFrame({"event_timestamp": [T0 + timedelta(seconds=s) for s in range(1000)]})
    train, val, test = splits.chronological(frame, purge=timedelta(seconds=60))
    assert train["event_timestamp"].max() + timedelta(seconds=60) < val["event_timestamp"].min()
    assert val["event_timestamp"].max() + timedelta(seconds=60) < test["event_timestamp"].min()
    assert len(test) == pytest.approx(150, abs=2) and len(train) == pytest.approx(700 - 60, abs=2)


def test_walk_forward_folds_are_purged_and_expanding() -> None:
    frame = pd.DataFrame({"event_timestamp": [T0 + timedelta(seconds=s) for s in range(1000)]})
    folds = list(splits.walk_forward(frame, 3, timedelta(seconds=30)))
    assert len(folds) == 3
    sizes = [len(tr) for tr, _ in folds]
    assert sizes == sorted(sizes)
    for tr, va in folds:
        assert tr["event_timestamp"].max() + timedelta(seconds=30) < va["event_timestamp"].min()


def test_walk_forward_cross_validation_scores_every_model_on_every_fold() -> None:
    import numpy as np

    from training.train import TrainConfig, walk_forward_pr_auc

    rng = np.random.default_rng(0)
    n = 3000
    vol = np.abs(rng.normal(0, 1, n)).cumsum() % 3 + rng.normal(0, 0.1, n)
    table = pd.DataFrame(
        {
            "product_id": "A",
            "event_timestamp": [T0 + timedelta(seconds=i) for i in range(n)],
            "ret_std_60s": vol + rng.normal(0, 0.3, n),  # informative feature
            "noise": rng.normal(0, 1, n),
            "fwd_vol": vol,
            "fwd_returns": 10,
        }
    )
    cfg = TrainConfig(T0, T0 + timedelta(seconds=n), folds=3, horizon=timedelta(seconds=60))
    scores = walk_forward_pr_auc(table, cfg)
    assert set(scores) == {"zscore", "logreg", "xgboost"} and all(len(v) == 3 for v in scores.values())
    assert np.nanmean(scores["zscore"]) > 0.3  # the informative feature is found fold after fold
