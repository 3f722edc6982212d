"""The three models: a z-score rule, logistic regression, XGBoost, behind one small interface."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit, logit
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier


class Model(Protocol):
    """A model as `tickstore train` fits it: on training rows ``x``, ``y`` and the later training rows
    ``x_stop``, ``y_stop`` held out to stop early on (a model that does not stop early fits on both:
    `tickstore train` gives it every training row as ``x`` and none held out, so where the hold-out
    falls changes nothing for it). The validation split is never given to ``fit``: it picks the
    threshold and the champion."""

    name: str
    stops_early: bool

    def fit(self, x: pd.DataFrame, y: np.ndarray, x_stop: pd.DataFrame, y_stop: np.ndarray) -> Model: ...

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray: ...


@dataclass
class ZScoreRule:
    """Baseline: how unusual the last 60 s return volatility is, z = (std - mean) / sd on training rows.

    The probability is expit(a z + b), a and b fitted to the training labels on z alone (a kept above
    0: the ordering stays z's), so it is a spike probability while PR/ROC-AUC, which depend only on
    the ordering, measure the rule itself; where no spike or no calm row is there to fit on, it is
    expit(z - 2), a squash fitted on nothing. It is an sklearn pipeline over every feature column,
    weighing its one alone, so MLflow logs it and `tickstore serve` loads and scores it like the
    logistic regression: what no model beat can be served, computed as in training.
    """

    feature: str = "ret_std_60s"
    name: str = "zscore"
    stops_early: bool = False
    pipeline: Pipeline | None = None

    def fit(self, x: pd.DataFrame, y: np.ndarray, x_stop: pd.DataFrame, y_stop: np.ndarray) -> ZScoreRule:
        # a missing 60 s volatility means under two returns in the window (or no tick for longer: the view
        # expired), so no movement was seen: it counts as 0, the calmest value, not as the mean, which
        # the validation-chosen threshold called a spike for every product gone quiet. A feature that
        # never varies scores z = 0 throughout.
        z = make_pipeline(
            SimpleImputer(strategy="constant", fill_value=0.0, keep_empty_features=True), StandardScaler()
        )
        rows = pd.concat([x, x_stop]).astype(float)
        z.fit(rows)
        # weight a on the rule's column and exactly 0 on the others: the dot product is a z
        column = np.asarray(x.columns) == self.feature
        slope, shift = _calibration(z.transform(rows)[:, column], np.concatenate([y, y_stop]))
        self.pipeline = Pipeline([*z.steps, ("squash", _squash(column * slope, shift))])
        return self

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        assert self.pipeline is not None
        return np.asarray(self.pipeline.predict_proba(x.astype(float)))[:, 1]


def _calibration(z: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The slope and intercept turning the rule's z (a column, or none) into a spike probability: a
    logistic regression of the labels on z alone. Where its slope is not above 0 (the volatility did
    not rise with spikes in these rows: on the recordings' 06:12-08:35 it fell), the slope stays 1, so
    the rule still ranks by z, and the intercept alone is fitted (the mean probability is then the
    spike share). (1, -2) where there is nothing to fit: no column, or one class only."""
    if z.shape[1] != 1 or len(np.unique(labels)) < 2:
        return 1.0, -2.0
    with warnings.catch_warnings():  # z splitting the labels cleanly: a huge slope, checked below
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = LogisticRegression(C=np.inf, max_iter=1000).fit(z, labels)  # unpenalized
    slope, shift = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    if slope > 0 and np.isfinite([slope, shift]).all():
        return slope, shift
    # the likelihood's optimum for the intercept with z as an offset: probabilities summing to the spikes
    spikes = float(np.sum(labels))
    return 1.0, float(brentq(lambda b: float(expit(z[:, 0] + b).sum()) - spikes, -1e4, 1e4))


def _squash(weights: np.ndarray, shift: float) -> LogisticRegression:
    """expit(weights . z + shift) as an sklearn classifier: a logistic regression whose weights are
    set, not fitted."""
    squash = LogisticRegression()
    squash.classes_ = np.array([0, 1])
    squash.coef_ = weights.reshape(1, -1)
    squash.intercept_ = np.array([shift])
    squash.n_features_in_ = len(weights)
    return squash


@dataclass
class LogReg:
    """Scaled, class-balanced logistic regression over every feature (NULLs imputed by the median, and
    flagged: a column per feature that had NULLs in training says which were missing), its log-odds
    moved back to the training base rate after the fit."""

    name: str = "logreg"
    stops_early: bool = False
    pipeline: Pipeline | None = None

    def fit(self, x: pd.DataFrame, y: np.ndarray, x_stop: pd.DataFrame, y_stop: np.ndarray) -> LogReg:
        # the indicators let it tell an expired view (a product gone quiet: no tick for a window's
        # length) from a typical one: imputed alone, the median read as an ordinary minute
        self.pipeline = make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True, add_indicator=True),
            StandardScaler(),
            LogisticRegression(class_weight="balanced", max_iter=2000),
        )
        labels = np.concatenate([y, y_stop])
        self.pipeline.fit(pd.concat([x, x_stop]).astype(float), labels)
        # fitted with spikes weighing as much as calm rows; its log-odds are those of that half-spike
        # world, so they are shifted back to the training base rate (a monotone shift: ranks, the
        # threshold's decisions and PR-AUC stay; p becomes a spike probability: the mean was 0.42 where 4.8%
        # of the rows were spikes, on the recordings)
        self.pipeline[-1].intercept_ = self.pipeline[-1].intercept_ - np.log(_odds_weight(labels))
        return self

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        assert self.pipeline is not None
        return self.pipeline.predict_proba(x.astype(float))[:, 1]


@dataclass
class XGBoost:
    """Gradient-boosted trees, early-stopped on the last training rows held out (NULLs handled natively),
    spikes weighted up to weigh as much as the calm rows, its margin moved back to the training base rate
    after the fit."""

    name: str = "xgboost"
    stops_early: bool = True
    params: dict[str, Any] = field(
        default_factory=lambda: {
            "n_estimators": 400,
            "max_depth": 4,
            "learning_rate": 0.05,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "n_jobs": 2,
            "random_state": 7,
            "tree_method": "hist",
        }
    )
    model: XGBClassifier | None = None

    def fit(self, x: pd.DataFrame, y: np.ndarray, x_stop: pd.DataFrame, y_stop: np.ndarray) -> XGBoost:
        if 0 < int(np.sum(y_stop)) < len(y_stop):
            weight = _odds_weight(y)
            self.model = XGBClassifier(
                **self.params, early_stopping_rounds=30, eval_metric="aucpr", scale_pos_weight=weight
            )
            self.model.fit(x.astype(float), y, eval_set=[(x_stop.astype(float), y_stop)], verbose=False)
        else:
            # held-out rows of one class have no PR-AUC: every round's was NaN, and NaN kept the first
            # tree alone. Nothing to stop on, so every tree is grown, on the held-out rows too
            y = np.concatenate([y, y_stop])
            weight = _odds_weight(y)
            self.model = XGBClassifier(**self.params, scale_pos_weight=weight)
            self.model.fit(pd.concat([x, x_stop]).astype(float), y, verbose=False)
        # the trees were grown with spikes weighted up; the margin they start from is moved down by
        # the same odds, as the logistic regression's intercept is (the trees are untouched)
        booster = self.model.get_booster()
        base = float(
            json.loads(booster.save_config())["learner"]["learner_model_param"]["base_score"].strip("[]")
        )
        booster.set_param({"base_score": float(expit(logit(base) - np.log(weight)))})
        return self

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        assert self.model is not None
        return self.model.predict_proba(x.astype(float))[:, 1]

    @property
    def trees(self) -> int:
        """The trees early stopping kept (its best round and those before it), or every tree grown
        where it had nothing to stop on."""
        assert self.model is not None
        if self.model.early_stopping_rounds is None:
            return int(self.model.get_booster().num_boosted_rounds())
        return int(self.model.best_iteration) + 1

    def importance(self, columns: list[str]) -> dict[str, float]:
        assert self.model is not None
        return dict(zip(columns, map(float, self.model.feature_importances_), strict=True))


def _odds_weight(y: np.ndarray) -> float:
    """How much a spike is weighted up to weigh as much as the calm rows: calm rows per spike (1 when
    either is missing: nothing to balance)."""
    positives = int(np.sum(y))
    negatives = len(y) - positives
    return negatives / positives if positives and negatives else 1.0


def all_models() -> list[Model]:
    return [ZScoreRule(), LogReg(), XGBoost()]
