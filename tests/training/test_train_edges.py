"""`tickstore train`'s edges that need no lake: drift that can't be compared, folds and splits
without spikes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tickstore.settings import Settings
from training import tracking
from training.train import TrainConfig, _drift

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_drift_rows_that_cannot_be_compared_are_said_with_the_run_not_fatal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # the drift reports come after every model is fitted and logged: rows too short for a feature's
    # blocks leave a tag saying so, where an error would have failed the whole run at its end
    s = Settings(home=tmp_path / "home")
    experiment = tracking.setup(s)
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "product_id": "A",
            "event_timestamp": pd.date_range(START, periods=400, freq="10s"),
            "m300": rng.normal(size=400),
            "label": 0,
        }
    )
    with mlflow.start_run(experiment_id=experiment) as run:
        pass
    cfg = TrainConfig(START, START + timedelta(hours=1), every=timedelta(seconds=10))
    assert _drift(table, cfg, run.info.run_id, {"m300": 60}) == {}  # 4 or fewer blocks of 60 rows
    tags = MlflowClient().get_run(run.info.run_id).data.tags
    for name in ("train_vs_test", "early_vs_late"):
        assert tags[f"drift_{name}"].startswith(
            "not compared: the ranges are too short to tell any feature's drift"
        )


def test_a_percentile_leaving_no_spike_is_said_and_a_fold_without_one_is_skipped() -> None:
    from training.train import fit_and_score, walk_forward

    rng = np.random.default_rng(0)
    n = 3000
    times = pd.date_range("2026-01-01", periods=n, freq="1s", tz="UTC")
    # flat for the first half: no row there is above any percentile of it
    fwd_vol = np.where(np.arange(n) < n // 2, 1.0, 1.0 + rng.exponential(size=n))
    table = pd.DataFrame(
        {
            "product_id": "BTC-USD",
            "event_timestamp": times,
            "ret_std_60s": fwd_vol + rng.normal(scale=0.5, size=n),
            "spread_mean_60s": rng.normal(size=n),
            "fwd_vol": fwd_vol,
        }
    )
    cfg = TrainConfig(times[0], times[-1], horizon=timedelta(seconds=60), folds=4)
    # the first folds train on the flat half: scikit-learn's "needs samples of at least 2 classes"
    # ended the whole run, after its models were logged
    folds = walk_forward(table, cfg)
    assert [f.skipped for f in folds][:2] == ["no spike in its training rows"] * 2
    assert not folds[-1].skipped and all(0 <= p <= 1 for p in folds[-1].pr_auc.values())
    with pytest.raises(
        ValueError, match=r"no spikes to learn: of the [\d,]+ training rows none is above the 95th"
    ):
        fit_and_score(table.assign(fwd_vol=1.0), cfg, lambda *_: ("", ""))
