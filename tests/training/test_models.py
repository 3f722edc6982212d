"""The z-score rule as a model: what it scores, that the scorer serves it as training scored it, and
that without a champion the scorer names it; the logistic regression's missing values."""

from __future__ import annotations

from collections.abc import Callable

import mlflow
import numpy as np
import pandas as pd
from scipy.special import expit

from serving.model import load
from serving.model_uri import HINT, hint
from tickstore.settings import Settings
from training import tracking
from training.models import LogReg, XGBoost, ZScoreRule
from training.tracking import log_model


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"spread_bps_mean_60s": rng.normal(size=n), "ret_std_60s": rng.lognormal(size=n)})
    x.loc[x.index[::17], "ret_std_60s"] = np.nan  # a window with fewer than two returns
    return x


def test_the_rule_squashes_the_z_score_of_its_feature_alone() -> None:
    x, stop = frame(400, 1), frame(100, 2)
    rule = ZScoreRule().fit(x, np.zeros(400), stop, np.zeros(100))
    new = frame(50, 3)
    p = rule.predict_proba(new)
    # the mean and sd of the training rows, the ones held out for early stopping included; a missing
    # value (no movement seen in the window) counts as 0 there and scores below every seen volatility
    seen = pd.concat([x, stop])["ret_std_60s"].fillna(0.0)
    mean, sd = seen.mean(), seen.std(ddof=0)
    expected = expit((new["ret_std_60s"].fillna(0.0) - mean) / sd - 2.0)
    np.testing.assert_allclose(p, expected, rtol=1e-12)
    assert abs(p[0] - expit(-mean / sd - 2.0)) < 1e-15  # row 0 is missing
    missing = new["ret_std_60s"].isna().to_numpy()
    assert p[missing].max() < p[~missing].min()  # lognormal volatilities: all above 0
    moved = new.assign(spread_bps_mean_60s=new["spread_bps_mean_60s"] * 100)
    assert (rule.predict_proba(moved) == p).all()  # another column changes nothing


def test_the_logistic_regression_tells_a_missing_view_from_a_typical_one() -> None:
    # a missing volatility (the view expired: no tick for a minute) comes before calm minutes here, a
    # median one before a spike half the time; imputed by the median alone, both scored the same
    rng = np.random.default_rng(4)
    x = frame(2000, 5)
    missing = x["ret_std_60s"].isna().to_numpy()
    y = np.where(missing, 0, x["ret_std_60s"] > x["ret_std_60s"].median()).astype(int)
    y[rng.random(2000) < 0.05] ^= 1
    model = LogReg().fit(x[:1600], y[:1600], x[1600:], y[1600:])
    median = x["ret_std_60s"].median()
    rows = pd.DataFrame({"spread_bps_mean_60s": [0.0, 0.0], "ret_std_60s": [np.nan, median]})
    p_missing, p_median = model.predict_proba(rows)
    assert p_missing < p_median / 2, (p_missing, p_median)


def test_the_learners_give_spike_probabilities_at_the_training_base_rate() -> None:
    # fitted class-balanced, the learners gave a mean probability of 0.20 (logistic regression) and
    # 0.38 (XGBoost) on these rows, where 7.5% are spikes
    rng = np.random.default_rng(6)
    x = frame(4000, 7)
    y = (x["ret_std_60s"].fillna(0.0) * np.exp(rng.normal(0, 0.5, 4000)) > 4.5).astype(int).to_numpy()
    assert 0.03 < y.mean() < 0.08
    for model in (LogReg(), XGBoost(), ZScoreRule()):
        model.fit(x[:3200], y[:3200], x[3200:], y[3200:])
        p = model.predict_proba(x)
        assert abs(p.mean() / y.mean() - 1) < 0.3, (model.name, p.mean(), y.mean())
        spikes = y == 1
        assert p[spikes].mean() > 2 * p[~spikes].mean(), model.name  # and still tells them apart
    # the rule's probability still orders rows by its volatility alone (expit(z - 2): 0.14 on average)
    by_volatility = p[np.argsort(x["ret_std_60s"].fillna(0.0).to_numpy(), kind="stable")]
    assert (np.diff(by_volatility) >= 0).all()


def test_a_rule_whose_volatility_falls_before_spikes_keeps_its_ordering_and_fits_its_level() -> None:
    # spikes after the calmest rows (as on the recordings' 06:12-08:35): a fitted slope would reverse
    # the rule; it keeps z's, and only the level is fitted, to the spike share of the training rows
    x = frame(2000, 8)
    y = (x["ret_std_60s"].fillna(0.0) < 0.3).astype(int).to_numpy()
    rule = ZScoreRule().fit(x[:1600], y[:1600], x[1600:], y[1600:])
    p = rule.predict_proba(x)
    assert abs(p.mean() - y.mean()) < 1e-9
    by_volatility = p[np.argsort(x["ret_std_60s"].fillna(0.0).to_numpy(), kind="stable")]
    assert (np.diff(by_volatility) >= 0).all()


def test_xgboost_with_no_spike_held_out_grows_every_tree_on_every_row() -> None:
    # held-out rows of one class have no PR-AUC: each round's was NaN, and NaN kept the first tree,
    # whose few distinct scores the scorer would have served
    rng = np.random.default_rng(9)
    x = frame(3000, 10)
    y = (x["ret_std_60s"].fillna(0.0) * np.exp(rng.normal(0, 0.5, 3000)) > 4.5).astype(int).to_numpy()
    calm = np.zeros(500, dtype=int)
    model = XGBoost().fit(x, y, frame(500, 11), calm)
    assert model.trees == model.params["n_estimators"]
    assert len(np.unique(model.predict_proba(x))) > 100
    # the held-out rows are trained on: their calm rows weigh in the base rate the margin moves back to
    p = model.predict_proba(pd.concat([x, frame(500, 11)]))
    assert abs(p.mean() / (y.sum() / 3500) - 1) < 0.3
    # with both classes held out, it stops early as before
    stopped = XGBoost().fit(x[:2500], y[:2500], x[2500:], y[2500:])
    assert stopped.trees < stopped.params["n_estimators"]


def test_the_served_rule_scores_as_in_training(make_settings: Callable[..., Settings]) -> None:
    s = make_settings()
    x, stop = frame(400, 1), frame(100, 2)
    rule = ZScoreRule().fit(x, np.zeros(400), stop, np.zeros(100))
    experiment = tracking.setup(s)
    assert hint() == HINT  # no run yet: train one
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.set_tags({"features": '["spread_bps_mean_60s", "ret_std_60s"]'})
        mlflow.log_params({"decision_threshold": 0.2, "model": "zscore", "labels": "honest"})
        logged = log_model(rule, x)
        assert logged.startswith("models:/")
    served = load(f"runs:/{run.info.run_id}/model")  # in its MLflow flavor, without tickstore's training code
    new = frame(50, 3)
    rows = [{k: (None if v != v else v) for k, v in row.items()} for row in new.to_dict("records")]
    assert (served.predict(rows) == rule.predict_proba(new)).all()  # bit for bit
    assert served.threshold == 0.2 and served.compiled is not None

    # without a champion, what to do names the newest run's rule; with one, the URI asked for is wrong
    assert f"tickstore serve --model runs:/{run.info.run_id}/model" in hint() and "tickstore models" in hint()
    tracking.promote(logged)
    assert hint() == HINT
