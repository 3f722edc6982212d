"""Loading the scoring model from MLflow: by alias and by run, leaving nothing behind on disk."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import sklearn as mlflow_sklearn
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression

from serving.model import load
from tickstore.settings import Settings
from training import tracking


def test_a_model_loaded_leaves_no_download_behind(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MLflow downloaded each load to two folders of its own in /tmp that nothing removed: a scorer
    # left two for every model it loaded, and every alias move loads one
    settings = make_settings()
    rng = np.random.default_rng(3)
    x = pd.DataFrame(rng.normal(size=(200, 2)), columns=["ret_std_60s", "spread_bps_mean_60s"])
    model = LogisticRegression().fit(x, (x["ret_std_60s"] > 0).astype(int))
    with mlflow.start_run(experiment_id=tracking.setup(settings)) as run:
        mlflow.log_params({"decision_threshold": 0.5, "model": "logreg"})
        mlflow.set_tags({"features": json.dumps(list(x.columns))})
        mlflow_sklearn.log_model(
            model, name="model", skops_trusted_types=["numpy.dtype"], pip_requirements=["scikit-learn"]
        )
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", "tickstore-test-model")
    MlflowClient().set_registered_model_alias("tickstore-test-model", "champion", version.version)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where MLflow's and our temporary folders go

    by_alias = load("models:/tickstore-test-model@champion")
    by_run = load(f"runs:/{run.info.run_id}/model")

    assert (by_alias.version, by_alias.run_id, by_run.run_id) == (
        str(version.version),
        run.info.run_id,
        run.info.run_id,
    )
    row = {"ret_std_60s": 1.5, "spread_bps_mean_60s": -0.5}
    expected = model.predict_proba(pd.DataFrame([row]))[:, 1]
    np.testing.assert_allclose(by_alias.predict([row]), expected, rtol=1e-12)  # loaded whole, in memory
    np.testing.assert_allclose(by_run.predict([row]), expected, rtol=1e-12)
    assert not list(temp.iterdir())
