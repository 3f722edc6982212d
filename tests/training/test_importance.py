"""Permutation importance (training/importance.py): what a fitted model leans on, on rows it did not fit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training import importance
from training.models import LogReg, XGBoost


def _rows(seed: int, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Spikes driven by `signal` alone; `noise` is unrelated, `missing` is NULL on every other row."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {"noise": rng.normal(size=n), "signal": rng.normal(size=n), "missing": rng.normal(size=n)}
    )
    x.loc[::2, "missing"] = np.nan
    y = (x["signal"] + rng.normal(scale=0.3, size=n) > 1.5).astype(int).to_numpy()
    return x, y


def test_the_feature_the_labels_follow_comes_first_and_unrelated_ones_near_zero() -> None:
    x, y = _rows(0, 4_000)
    val_x, val_y = _rows(1, 2_000)
    for model in (LogReg(), XGBoost()):
        model.fit(x, y, x.iloc[:0], y[:0])
        found = importance.permutation(model, val_x, val_y)
        assert [i.feature for i in found][0] == "signal", (model.name, found)
        assert found[0].added > 0.1 and found[0].spread < found[0].added / 5
        assert all(abs(i.added) < 0.02 for i in found[1:]), (model.name, found)
        # the same rows, model and seed: the same figures
        assert importance.permutation(model, val_x, val_y) == found


def test_calm_rows_and_more_rows_than_it_scores_are_measured_too(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    x, y = _rows(0, 4_000)
    model = LogReg().fit(x, y, x.iloc[:0], y[:0])
    val_x, val_y = _rows(2, 3_000)
    # a validation split without a spike: log loss is defined there (PR-AUC is not), but shuffling the
    # signal among calm rows keeps them calm, so every figure is near 0: `train` says they say little
    calm = val_y == 0
    found = importance.permutation(model, val_x[calm], val_y[calm])
    assert len(found) == 3 and all(abs(i.added) < 0.01 for i in found)
    # past MAX_ROWS it scores rows spread evenly over the split
    monkeypatch.setattr(importance, "MAX_ROWS", 500)
    sampled = importance.permutation(model, val_x, val_y)
    assert sampled[0].feature == "signal" and sampled != importance.permutation(
        model, val_x.iloc[:500], val_y[:500]
    )
