"""The NumPy tree walker scores exactly as XGBoost does, and the loader uses it for XGBoost models."""

from __future__ import annotations

import json
from dataclasses import replace

import mlflow
import numpy as np
import pandas as pd
import pytest
from xgboost import XGBClassifier, XGBRegressor

from serving.model import load
from serving.trees import compile_xgboost
from tickstore.settings import Settings
from training import tracking
from training.metrics import best_f1_threshold
from training.models import XGBoost


def seeded(seed: int, n: int = 3000, columns: int = 12) -> tuple[pd.DataFrame, np.ndarray]:
    """Features with NaNs (as online reads give past a TTL) and a label that needs interactions."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, columns))
    y = ((x[:, 0] + x[:, 1] * x[:, 2] + 0.5 * rng.normal(size=n)) > 0.7).astype(int)
    x[rng.random(x.shape) < 0.15] = np.nan
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(columns)]), y


def edge_rows(model: XGBClassifier, columns: int) -> np.ndarray:
    """Rows sitting exactly on split thresholds, and just below them in float32."""
    trees = json.loads(model.get_booster().save_raw("json"))["learner"]["gradient_booster"]["model"]
    rows = []
    for tree in trees["trees"][:20]:
        for i, child in enumerate(tree["left_children"]):
            if child != -1:
                at = np.zeros(columns)
                at[tree["split_indices"][i]] = tree["split_conditions"][i]
                below = at.copy()
                below[tree["split_indices"][i]] = np.nextafter(
                    np.float32(tree["split_conditions"][i]), np.float32(-np.inf)
                )
                rows += [at, below]
    return np.array(rows)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_compiled_trees_equal_xgboost_on_the_model_training_trains(seed: int) -> None:
    x, y = seeded(seed)
    cut = int(len(x) * 0.8)
    model = XGBoost().fit(x[:cut], y[:cut], x[cut:], y[cut:]).model
    assert model is not None and model.n_estimators is not None
    assert model.best_iteration < model.n_estimators - 1  # early-stopped
    trees = compile_xgboost(model)
    assert trees is not None and len(trees.roots) == model.best_iteration + 1

    probe = np.vstack([x.to_numpy(), edge_rows(model, x.shape[1]), np.full((1, x.shape[1]), np.nan)])
    expected = model.predict_proba(probe)[:, 1]
    assert np.array_equal(trees.predict(probe), expected)  # bit for bit, see the next test


def test_the_base_margin_and_sigmoid_are_xgboosts_for_any_base_score() -> None:
    """tickstore's models start from the training base rate, not 0.5: the walker's log-odds of it
    (float64 `log` rounded) and its sigmoid (float64 `exp` rounded) were each a last bit off XGBoost's
    for some values, which compute with the C library's float32 `logf` and `expf`."""
    import xgboost as xgb

    from serving.trees import _base_margin

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2)).astype(np.float32)
    # one tree of zero leaves (eta 0): XGBoost's margin is its base margin, its probability the sigmoid
    booster = xgb.train(
        {"eta": 0.0, "max_depth": 1, "objective": "binary:logistic"},
        xgb.DMatrix(x, label=np.arange(64) % 2),
        1,
    )
    scores = np.concatenate([rng.uniform(1e-4, 1 - 1e-4, 1000), np.exp(rng.uniform(-11.5, -0.7, 1000))])
    margins, probabilities = [], []
    for score in scores:
        booster.set_param({"base_score": float(score)})
        stored = json.loads(booster.save_config())["learner"]["learner_model_param"]["base_score"]
        margin = booster.inplace_predict(x[:1], predict_type="margin")[0]
        assert _base_margin(float(stored.strip("[]"))) == margin, score
        margins.append(margin)
        probabilities.append(booster.inplace_predict(x[:1])[0])
    walker = compile_xgboost(XGBClassifier(n_estimators=1).fit(x, np.arange(64) % 2))
    assert walker is not None
    as_walked = replace(walker, base_margin=np.float32(0.0), leaf=np.zeros_like(walker.leaf))
    for margin, p in zip(margins, probabilities, strict=True):  # the sigmoid alone, at each margin
        assert replace(as_walked, base_margin=margin).predict(x[:1])[0] == p, margin


@pytest.mark.parametrize("seed", [7, 10])
def test_compiled_trees_decide_as_training_did_at_the_threshold_chosen_on_validation(seed: int) -> None:
    """The threshold is one of XGBoost's validation probabilities, which many rows share: a walker
    1e-7 off (float32 summed pairwise, NumPy's float32 exp) served them the other decision."""
    x, y = seeded(seed, columns=3)
    x = x.round(0)  # coarse features (a quiet market's tick counts and spreads): rows share leaves
    train, val = slice(0, 2000), slice(2000, 2500)
    model = XGBoost().fit(x[train], y[train], x[val], y[val]).model
    assert model is not None
    trees = compile_xgboost(model)
    assert trees is not None
    p_val = model.predict_proba(x[val])[:, 1]
    cut = best_f1_threshold(y[val], p_val)
    rows = x.to_numpy()
    expected = model.predict_proba(rows)[:, 1] >= cut
    on_the_cut = int((model.predict_proba(rows)[:, 1] == np.float32(cut)).sum())
    assert on_the_cut > 0  # the case at stake: rows exactly at the threshold
    assert np.array_equal(trees.predict(rows) >= cut, expected)


def test_a_deep_model_without_early_stopping_compiles_every_tree() -> None:
    x, y = seeded(4)
    model = XGBClassifier(n_estimators=150, max_depth=7, base_score=0.3, n_jobs=1).fit(x, y)
    trees = compile_xgboost(model)
    assert trees is not None and len(trees.roots) == 150 and trees.depth == 7
    assert np.array_equal(trees.predict(x.to_numpy()), model.predict_proba(x)[:, 1])


def test_trees_of_every_depth_and_margins_past_the_sigmoids_clamp_score_as_xgboost() -> None:
    x, y = seeded(4)
    # with a split gain required, the last trees are single leaves: the walk goes as deep as the deepest
    shallow_last = XGBClassifier(n_estimators=40, max_depth=6, gamma=0.5, n_jobs=1).fit(x, y)
    # a learning rate of 300: margins of hundreds, where XGBoost's sigmoid clamps exp's argument at 88.7
    extreme = XGBClassifier(n_estimators=3, learning_rate=300, n_jobs=1).fit(x, y)
    for model in (shallow_last, extreme):
        trees = compile_xgboost(model)
        assert trees is not None
        assert np.array_equal(trees.predict(x.to_numpy()), model.predict_proba(x)[:, 1])
    assert extreme.predict_proba(x)[:, 1].min() < 1e-38  # the clamp's smallest probability was reached


def test_models_it_cannot_walk_are_left_to_xgboost() -> None:
    x, y = seeded(5, n=300)
    assert compile_xgboost(XGBRegressor(n_estimators=5).fit(x, y.astype(float))) is None
    three = XGBClassifier(n_estimators=5).fit(x, np.arange(len(x)) % 3)
    assert compile_xgboost(three) is None
    zero_is_missing = XGBClassifier(n_estimators=5, missing=0.0).fit(x.fillna(0.0), y)
    assert compile_xgboost(zero_is_missing) is None
    with_category = x.assign(venue=pd.Categorical(np.arange(len(x)) % 4))
    categorical = XGBClassifier(n_estimators=5, enable_categorical=True, tree_method="hist").fit(
        with_category, y
    )
    assert compile_xgboost(categorical) is None
    # base scores this close to 0 or 1 XGBoost clamps to a margin of its own
    for base_score in (1e-6, 1 - 1e-6):
        assert compile_xgboost(XGBClassifier(n_estimators=5, base_score=base_score).fit(x, y)) is None


def test_the_loader_scores_an_mlflow_xgboost_model_through_the_compiled_trees(
    make_settings,
) -> None:
    settings: Settings = make_settings()
    x, y = seeded(6)
    model = XGBoost().fit(x[:2400], y[:2400], x[2400:], y[2400:]).model
    assert model is not None
    with mlflow.start_run(experiment_id=tracking.setup(settings)) as run:
        mlflow.log_params({"decision_threshold": 0.4})
        mlflow.set_tags({"features": json.dumps(list(x.columns))})
        mlflow.xgboost.log_model(model, name="model", pip_requirements=["xgboost"])  # type: ignore[attr-defined]

    loaded = load(f"runs:/{run.info.run_id}/model")
    assert loaded.compiled is not None
    rows = [
        {c: (None if np.isnan(v) else v) for c, v in zip(x.columns, r, strict=True)}
        for r in x.to_numpy()[:200]
    ]
    assert np.array_equal(loaded.predict(rows), model.predict_proba(x[:200])[:, 1])
