"""Loading the scoring model from MLflow: by alias and by run, leaving nothing behind on disk; retries
of a fixed URI."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import sklearn as mlflow_sklearn
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression

from serving.model import ModelHolder, load
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


def test_a_fixed_uri_that_fails_to_load_at_start_is_tried_again_until_it_loads(
    make_settings: Callable[..., Settings],
) -> None:
    # a runs:/ or models:/name/N URI was tried once: a scorer started before its model was there (or
    # while the tracking server was down) stayed not ready until restarted
    from tests.serving.conftest import MODEL, register_model

    settings = make_settings(serve_reload_s=0.2, serve_model_uri=f"models:/{MODEL}/1")
    tracking.setup(settings)
    holder = ModelHolder(settings)
    assert holder.model is None and holder.error is not None and "not found" in holder.error
    holder.start()
    try:
        register_model(settings, seed=1, threshold=0.5)
        deadline = time.monotonic() + 30
        while holder.model is None:
            assert time.monotonic() < deadline, f"never loaded: {holder.error}"
            time.sleep(0.1)
        assert (holder.model.version, holder.error) == ("1", None)
        assert holder._thread is not None
        holder._thread.join(timeout=5)  # loaded: nothing more to watch for a fixed URI
        assert not holder._thread.is_alive()
    finally:
        holder.close()


@pytest.mark.parametrize("removed", ["folder", "file"])
def test_a_store_gone_under_the_scorer_is_said_once_and_the_model_kept(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture, removed: str
) -> None:
    # MLflow's SQL store logged every failing query as an ERROR with pages of traceback: ~200 a
    # minute from a scorer whose store had been removed, while it went on serving
    import logging
    import shutil
    import threading

    from tests.serving.conftest import register_model

    s = make_settings()
    version = register_model(s, seed=1, threshold=0.5)
    holder = ModelHolder(s)
    assert holder.model is not None and holder.model.version == version
    database = s.home / "mlflow" / "mlflow.db"
    if removed == "folder":
        shutil.rmtree(database.parent)
    else:  # the folder stays: SQLite, asked, made an empty database file there
        database.unlink()
    # connections already open go on reading the removed file; a gunicorn worker's new ones can't
    client = MlflowClient()
    for store in (client._tracking_client.store, client._get_registry_client().store):
        store.engine.dispose()
    caplog.clear()
    changed: list[bool] = []
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):  # as every TICKSTORE_SERVE_RELOAD_S, from the reload thread
            looking = threading.Thread(target=lambda: changed.append(holder.refresh()))
            looking.start()
            looking.join()
    assert changed == [False, False, False]
    assert holder.model is not None and holder.model.version == version  # still served
    assert not [r for r in caplog.records if r.name.startswith("mlflow.store")], caplog.text
    said = [r.getMessage() for r in caplog.records if r.name == "serving.model"]
    assert len(said) == 1, said
    # what happened, not MLflow's SQL ("no such table: registered_models") or SQLite's "unable to open"
    assert said[0] == (
        f"serving: the MLflow store {database} was removed: the model loaded before is served until it "
        "is back; `tickstore train` makes a new one, or put the file back"
    )
    assert not database.exists()  # asking made nothing
