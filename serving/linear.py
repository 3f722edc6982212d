"""A linear sklearn pipeline (impute, scale, logistic regression) as NumPy arrays, to score a row fast.

sklearn's ``Pipeline.predict_proba`` validates its input again at each of its three steps (feature
counts, dtypes, finiteness, the namespace of the arrays): ~0.42 ms for one row, where the arithmetic
takes 5-10 us. At 500 requests a second on one core that is a fifth of the core, and the scorer
serving the logistic regression or the z-score rule fell behind there (p99 0.5-1 s, against 4-10 ms
for XGBoost's trees in NumPy: docs/decisions.md). Only what tickstore trains is compiled:
``SimpleImputer`` (missing-value indicators or not) -> ``StandardScaler`` -> binary ``LogisticRegression``,
on dense float rows. Anything else returns None and is scored by sklearn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit


@dataclass(frozen=True)
class CompiledLinear:
    """The fitted parameters of an impute -> scale -> logistic pipeline."""

    fill: np.ndarray  # float64 (features,): what a missing value becomes (the imputer's statistics)
    flagged: np.ndarray  # int (k,): the features whose missing-value indicator follows them, in order
    mean: np.ndarray | None  # float64 (features + k,), None when the scaler does not center
    scale: np.ndarray | None  # float64 (features + k,), None when the scaler does not scale
    coef_t: np.ndarray  # float64 (features + k, 1): the regression's weights, transposed as sklearn uses them
    intercept: np.ndarray  # float64 (1,)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities of the positive class for rows ``x`` (n, features), NaN for missing.

        The same operations in the same order as sklearn's steps (fill, subtract, divide, one matrix
        product, expit), so the very same float64 values: the decision threshold is one of the
        model's probabilities on the validation rows, and a value a bit off can land on its other side.
        """
        missing = np.isnan(x)
        x = np.where(missing, self.fill, x)
        if self.flagged.size:
            x = np.hstack((x, missing[:, self.flagged].astype(float)))
        if self.mean is not None:
            x -= self.mean
        if self.scale is not None:
            x /= self.scale
        return np.asarray(expit(x @ self.coef_t + self.intercept)).reshape(-1)


def compile_linear(estimator: Any) -> CompiledLinear | None:
    """The pipeline's parameters, if it is exactly what tickstore trains; else None (sklearn scores it)."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(estimator, Pipeline) or len(estimator.steps) != 3:
        return None
    imputer, scaler, regression = (step for _, step in estimator.steps)
    if not (
        type(imputer) is SimpleImputer
        and type(scaler) is StandardScaler
        and type(regression) is LogisticRegression
    ):
        return None
    fill = np.asarray(imputer.statistics_, dtype=float)
    indicator = getattr(imputer, "indicator_", None) if imputer.add_indicator else None
    flagged = np.asarray([] if indicator is None else indicator.features_, dtype=np.intp)
    n = len(fill) + len(flagged)
    if (
        (imputer.add_indicator and indicator is None)
        or not (isinstance(imputer.missing_values, float) and np.isnan(imputer.missing_values))
        # a feature without values in training has no statistic: the imputer drops its column
        # (unless told to keep it, then its statistic is 0)
        or np.isnan(fill).any()
        or len(regression.classes_) != 2
        or regression.coef_.shape != (1, n)
    ):
        return None
    return CompiledLinear(
        fill=fill,
        flagged=flagged,
        mean=np.asarray(scaler.mean_, dtype=float) if scaler.with_mean else None,
        scale=np.asarray(scaler.scale_, dtype=float) if scaler.with_std else None,
        coef_t=np.asarray(regression.coef_, dtype=float).T,
        intercept=np.asarray(regression.intercept_, dtype=float),
    )
