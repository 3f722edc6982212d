"""Purged chronological splits, walk-forward folds and the rows early stopping holds out (training/splits.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from training import splits

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_chronological_split_purges_every_boundary() -> None:
    frame = pd.DataFrame({"event_timestamp": [T0 + timedelta(seconds=s) for s in range(1000)]})
    train, val, test = splits.chronological(frame, purge=timedelta(seconds=60))
    assert train["event_timestamp"].max() + timedelta(seconds=60) < val["event_timestamp"].min()
    assert val["event_timestamp"].max() + timedelta(seconds=60) < test["event_timestamp"].min()
    assert len(test) == pytest.approx(150, abs=2) and len(train) == pytest.approx(700 - 60, abs=2)


def test_chronological_split_takes_its_fractions_of_the_rows_across_a_gap() -> None:
    # rows for 0..1999 s and 2900..3099 s: cut by time (70% and 85% of the span: 2170 and 2635 s)
    # the validation split fell in the gap and had no rows, and training refused 2,200 rows as too few
    seconds = [*range(2000), *range(2900, 3100)]
    frame = pd.DataFrame({"event_timestamp": [T0 + timedelta(seconds=s) for s in seconds]})
    train, val, test = splits.chronological(frame, purge=timedelta(seconds=60))
    assert (len(train), len(val), len(test)) == (1540 - 60, 330 - 60, 330)
    assert train["event_timestamp"].max() + timedelta(seconds=60) < val["event_timestamp"].min()
    assert val["event_timestamp"].max() + timedelta(seconds=60) < test["event_timestamp"].min()


def test_walk_forward_folds_are_purged_and_expanding() -> None:
    frame = pd.DataFrame({"event_timestamp": [T0 + timedelta(seconds=s) for s in range(1000)]})
    folds = list(splits.walk_forward(frame, 3, timedelta(seconds=30)))
    assert len(folds) == 3
    sizes = [len(tr) for tr, _ in folds]
    assert sizes == sorted(sizes)
    for tr, va in folds:
        assert tr["event_timestamp"].max() + timedelta(seconds=30) < va["event_timestamp"].min()


def test_walk_forward_folds_have_rows_across_a_gap_in_the_data() -> None:
    # rows for 0..999 s and 2000..2999 s: folds cut by time (every 600 s) had one validating on
    # 1200..1799 s, nothing, and `tickstore train --folds 4` failed on a numpy error after training
    seconds = [*range(1000), *range(2000, 3000)]
    frame = pd.DataFrame({"event_timestamp": [T0 + timedelta(seconds=s) for s in seconds]})
    folds = list(splits.walk_forward(frame, 4, timedelta(seconds=30)))
    assert [len(va) for _, va in folds] == [400, 400, 400, 400]
    validated = pd.concat([va for _, va in folds])
    assert validated.index.is_unique and len(validated) == 1600  # every row after the first chunk, once
    for tr, va in folds:
        assert tr["event_timestamp"].max() + timedelta(seconds=30) < va["event_timestamp"].min()


def feature_table(n: int, seed: int) -> pd.DataFrame:
    """A training table of ``n`` rows a second apart: an informative feature, a noise one, labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    vol = np.abs(rng.normal(0, 1, n)).cumsum() % 3 + rng.normal(0, 0.1, n)
    return pd.DataFrame(
        {
            "product_id": "A",
            "event_timestamp": [T0 + timedelta(seconds=i) for i in range(n)],
            "ret_std_60s": vol + rng.normal(0, 0.3, n),  # informative feature
            "noise": rng.normal(0, 1, n),
            "fwd_vol": vol,
            "fwd_returns": 10,
        }
    )


def test_walk_forward_cross_validation_scores_every_model_on_every_fold() -> None:
    import numpy as np

    from training.train import TrainConfig, spikes_of, walk_forward

    n = 3000
    table = feature_table(n, seed=0)
    cfg = TrainConfig(T0, T0 + timedelta(seconds=n), folds=3, horizon=timedelta(seconds=60))
    folds = walk_forward(table, cfg)
    assert len(folds) == 3 and all(set(f.pr_auc) == {"zscore", "logreg", "xgboost"} for f in folds)
    assert (
        np.nanmean([f.pr_auc["zscore"] for f in folds]) > 0.3
    )  # the informative feature is found fold after fold
    # what each fold's validation rows hold, counted from the rows themselves: 750 a fold, in time order,
    # spikes above the fold's own training rows' 95th percentile
    assert [(f.start, f.end, f.rows) for f in folds] == [
        (T0 + timedelta(seconds=s), T0 + timedelta(seconds=s + 749), 750) for s in (750, 1500, 2250)
    ]
    for k, fold in enumerate(folds, 1):
        train = table[table["event_timestamp"] < fold.start - cfg.horizon]
        assert fold.train_rows == len(train) and not fold.skipped
        val = table[table["event_timestamp"] >= fold.start][: fold.rows]
        threshold = np.percentile(train["fwd_vol"], 95)
        assert fold.spikes == int(spikes_of(val, threshold).sum()) > 0, k
        assert fold.base_rate == fold.spikes / fold.rows and 1 <= fold.episodes <= fold.spikes


def test_walk_forward_folds_too_small_to_score_give_nan() -> None:
    from training.train import TrainConfig, walk_forward

    table = pd.DataFrame(
        {
            "product_id": "A",
            "event_timestamp": [T0 + timedelta(seconds=i) for i in range(200)],
            "ret_std_60s": [float(i % 7) for i in range(200)],
            "fwd_vol": [float(i % 5) for i in range(200)],
            "fwd_returns": 10,
        }
    )
    cfg = TrainConfig(T0, T0 + timedelta(seconds=200), folds=9, horizon=timedelta(seconds=60))
    folds = walk_forward(table, cfg)  # 20 rows a chunk: under the 50 a split needs
    assert len(folds) == 9 and all(f.skipped == "under 50 rows" for f in folds)
    assert all(set(f.pr_auc) == {"zscore", "logreg", "xgboost"} for f in folds)
    assert all(v != v for f in folds for v in f.pr_auc.values())


def test_early_stopping_rows_are_the_last_training_rows_purged() -> None:
    frame = pd.DataFrame({"event_timestamp": [T0 + timedelta(seconds=s) for s in range(1000)]})
    fitted, stop = splits.early_stopping(frame, purge=timedelta(seconds=60))
    assert len(stop) == 150 and stop["event_timestamp"].min() == T0 + timedelta(seconds=850)
    assert fitted["event_timestamp"].max() + timedelta(seconds=60) < stop["event_timestamp"].min()
    assert len(fitted) == 850 - 60


def test_early_stopping_rows_grow_back_until_they_hold_enough_spikes() -> None:
    """The last 15% of the rows can hold no spike (spikes come in bursts): then as many of the last
    rows as hold `STOP_SPIKES` are held out, up to half of them."""
    import numpy as np

    frame = pd.DataFrame({"event_timestamp": [T0 + timedelta(seconds=s) for s in range(1000)]})
    spikes = np.zeros(1000, dtype=int)
    spikes[600:640] = 1  # 40 spikes, all before the last 15%
    _, stop = splits.early_stopping(frame, purge=timedelta(seconds=60), spikes=spikes)
    # the fewest last rows holding 30 of them: from row 610 on
    assert stop["event_timestamp"].min() == T0 + timedelta(seconds=610) and len(stop) == 390
    assert spikes[stop.index].sum() == splits.STOP_SPIKES
    # enough spikes in the last 15% already: those rows, as without spikes given
    spikes[900:] = 1
    assert len(splits.early_stopping(frame, purge=timedelta(0), spikes=spikes)[1]) == 150
    # too few anywhere near the end: half of the rows at most, the fit keeps the other half less the purge
    spikes[:] = 0
    spikes[:100] = 1
    fitted, stop = splits.early_stopping(frame, purge=timedelta(seconds=60), spikes=spikes)
    assert len(stop) == 500 and len(fitted) == 500 - 60
    # rows out of time order are held out by their times, the spikes read in the frame's order
    shuffled = frame.sample(frac=1, random_state=3)
    order = shuffled.index.to_numpy()
    spikes[:] = 0
    spikes[600:640] = 1
    _, stop = splits.early_stopping(shuffled, purge=timedelta(0), spikes=spikes[order])
    assert stop["event_timestamp"].min() == T0 + timedelta(seconds=610) and len(stop) == 390


def split_probabilities(frame: pd.DataFrame, horizon: timedelta) -> dict[str, Any]:
    """Each model's test probabilities, as `tickstore train` fits and scores them on ``frame``."""
    from training.train import TrainConfig, fit_and_score

    cfg = TrainConfig(T0, T0 + timedelta(seconds=len(frame)), horizon=horizon)
    seen: dict[str, Any] = {}

    def keep(model, x, y, p, cut):  # type: ignore[no-untyped-def]
        seen[model.name] = p
        return "", ""

    fit_and_score(frame, cfg, keep)
    return seen


def test_the_validation_split_tunes_no_model() -> None:
    """Validation picks the threshold and the champion, so no model may have been fitted or stopped
    on it: its rows changed, every model's test probabilities stay the same."""
    import numpy as np

    n = 4000
    table = feature_table(n, seed=1)
    rng = np.random.default_rng(1)
    horizon = timedelta(seconds=60)
    before = split_probabilities(table, horizon)
    _, val, _ = splits.chronological(table, purge=horizon)
    scrambled = table.copy()
    # the validation rows' features and labels replaced by noise: what early stopping there would follow
    scrambled.loc[val.index, ["ret_std_60s", "noise", "fwd_vol"]] = rng.normal(0, 3, (len(val), 3))
    after = split_probabilities(scrambled, horizon)
    assert set(before) == {"zscore", "logreg", "xgboost"}
    for name in before:
        assert np.array_equal(before[name], after[name]), name


def test_only_the_model_that_stops_early_sees_where_the_hold_out_falls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rule and the logistic regression fit on every training row: when XGBoost's hold-out
    grows (to half the rows, asked for more spikes than there are), only XGBoost's scores move (the
    others had lost the purge gap before it, so they moved with it)."""
    import numpy as np

    table = feature_table(4000, seed=1)
    before = split_probabilities(table, timedelta(seconds=60))
    monkeypatch.setattr(splits, "STOP_SPIKES", 10**6)
    after = split_probabilities(table, timedelta(seconds=60))
    assert np.array_equal(before["zscore"], after["zscore"])
    assert np.array_equal(before["logreg"], after["logreg"])
    assert not np.array_equal(before["xgboost"], after["xgboost"])


def test_xgboost_without_spikes_held_out_fits_every_training_row_the_purge_gap_too() -> None:
    """With nothing to stop on XGBoost grows every tree on the training rows, as the other models fit:
    all of them, not the fit and hold-out rows alone (the purge gap between them was left out)."""
    import numpy as np

    from training.models import XGBoost
    from training.train import fit_model, spikes_of

    table = feature_table(3000, seed=2)
    threshold = float(np.percentile(table["fwd_vol"], 95))
    fitted, stop = splits.early_stopping(table, purge=timedelta(seconds=300))
    calm_stop = stop[spikes_of(stop, threshold) == 0]  # held-out rows of one class
    columns = ["ret_std_60s", "noise"]
    none = table.iloc[:0]

    def probabilities(train: pd.DataFrame) -> np.ndarray:
        model = XGBoost()
        model.fit(train[columns], spikes_of(train, threshold), none[columns], spikes_of(none, threshold))
        return model.predict_proba(table[columns])

    model = XGBoost()
    fit_model(model, table, fitted, calm_stop, threshold, columns)
    assert model.trees == model.params["n_estimators"]
    every_row = probabilities(table)
    assert np.array_equal(model.predict_proba(table[columns]), every_row)
    # the purge gap's 300 rows make a difference, so the comparison above can tell
    assert not np.array_equal(every_row, probabilities(pd.concat([fitted, calm_stop])))
