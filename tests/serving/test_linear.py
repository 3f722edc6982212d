"""The NumPy linear scorer gives sklearn's probabilities bit for bit, and only for what it knows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import KNNImputer, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from serving.linear import compile_linear
from training.models import LogReg, ZScoreRule


def seeded(seed: int, n: int = 3000, columns: int = 12) -> tuple[pd.DataFrame, np.ndarray]:
    """Features with NaNs (as online reads give past a TTL), one never seen in training, and a label."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, columns))
    y = ((base[:, 0] - base[:, 1] + rng.normal(size=n)) > 0).astype(int)
    x = base * rng.lognormal(size=columns) + rng.normal(size=columns) * 10  # scales and centers of their own
    x[rng.random(x.shape) < 0.15] = np.nan
    x[:, 3] = np.nan  # a view never present in the training range (sizes not recorded)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(columns - 1)] + ["ret_std_60s"])
    return frame, y


@pytest.mark.parametrize("model", [LogReg(), ZScoreRule()], ids=["logreg", "zscore"])
def test_the_compiled_pipeline_scores_as_sklearn_does(model: LogReg | ZScoreRule) -> None:
    x, y = seeded(1)
    model.fit(x[:2000], y[:2000], x[2000:2400], y[2000:2400])
    compiled = compile_linear(model.pipeline)
    assert compiled is not None
    rows = x[2400:].to_numpy()
    rows[:5] = np.nan  # every feature missing
    assert model.pipeline is not None
    expected = model.pipeline.predict_proba(rows)[:, 1]
    assert np.array_equal(compiled.predict(rows.copy()), expected)  # all at once
    # a row a request, as the scorer asks (one row's matrix product may round otherwise than many's)
    for row in rows[:300]:
        assert compiled.predict(row[None, :].copy()) == model.pipeline.predict_proba(row[None, :])[:, 1]


def test_pipelines_it_does_not_know_are_left_to_sklearn() -> None:
    x, y = seeded(2)
    x = x.drop(columns="f3").fillna(0.0)

    def compiled(*steps: object) -> object:
        return compile_linear(make_pipeline(*steps).fit(x, y))

    assert compiled(SimpleImputer(), StandardScaler(), LogisticRegression()) is not None
    assert compiled(KNNImputer(), StandardScaler(), LogisticRegression()) is None
    assert compiled(StandardScaler(), LogisticRegression()) is None
    assert compiled(SimpleImputer(missing_values=0.0), StandardScaler(), LogisticRegression()) is None
    three = pd.qcut(x["f0"], 3, labels=False)
    multiclass = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(x, three)
    assert compile_linear(multiclass) is None
    assert compile_linear(LogisticRegression().fit(x, y)) is None


@pytest.mark.parametrize(
    "scaler",
    [
        StandardScaler(with_mean=False),
        StandardScaler(with_std=False),
        StandardScaler(with_mean=False, with_std=False),
    ],
    ids=["unscaled mean", "unscaled std", "neither"],
)
def test_a_scaler_that_keeps_the_mean_or_the_scale_scores_as_sklearn_does(scaler: StandardScaler) -> None:
    x, y = seeded(3)
    x = x.drop(columns="f3")  # no values at all: the imputer would drop it (left to sklearn)
    regression = LogisticRegression(max_iter=2000)  # unscaled features converge slowly
    pipeline = make_pipeline(SimpleImputer(add_indicator=True), scaler, regression).fit(x, y)
    compiled = compile_linear(pipeline)
    assert compiled is not None
    rows = x.to_numpy()[:500]
    assert np.array_equal(compiled.predict(rows.copy()), pipeline.predict_proba(rows)[:, 1])
