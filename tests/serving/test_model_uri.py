"""Model URIs checked before a scorer starts: what names nothing for good, and what may yet name a model."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from serving.model_uri import missing
from tests.serving.conftest import MODEL, register_model
from tickstore.settings import Settings
from training import tracking


def test_a_uri_naming_nothing_is_said_to_and_one_naming_something_is_not(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    version = register_model(settings, seed=1, threshold=0.5)
    run_id = MlflowClient().get_model_version(MODEL, version).run_id
    assert missing(f"runs:/{run_id}/model") is None
    assert missing(f"models:/{MODEL}/{version}") is None
    assert missing(f"models:/{MODEL}@champion") is None
    assert missing("models:/tickstore-volatility@not-yet") is None  # an alias may be set later
    # MLflow 3 reads models:/<id> as a logged model's id: a registered name alone found none, for ever
    logged = MlflowClient().get_model_version(MODEL, version).source  # models:/m-<id>, where it was logged
    assert logged.startswith("models:/m-") and missing(logged) is None
    said = missing(f"models:/{MODEL}")
    assert said == f"Logged model with ID '{MODEL}' not found; did you mean models:/{MODEL}@champion?", said
    said = missing("models:/m-0123abc")
    assert said is not None and said.startswith("Logged model with ID 'm-0123abc' not found. "), said
    said = missing("runs:/0123abc/model")
    assert said is not None and said.startswith("Run with id=0123abc not found. ")
    said = missing(f"models:/{MODEL}/{int(version) + 1}")
    assert said is not None and f"version={int(version) + 1}) not found" in said
    # a run that exists, at a path holding no model: retried for ever before, as if it might appear
    for path in ("modle", "model/MLmodel", "dataset"):
        said = missing(f"runs:/{run_id}/{path}")
        assert said is not None and said.startswith(f"run {run_id} has no model at '{path}' ("), path
    said = missing(f"runs:/{run_id}")  # MLflow's "Not a proper runs:/ URI"
    assert said is not None and said.startswith(
        f"a runs:/ URI names the model's folder in its run too: runs:/{run_id}/model."
    )
    with mlflow.start_run(experiment_id=tracking.setup(settings)) as running:  # a model may yet come
        assert missing(f"runs:/{running.info.run_id}/model") is None
    # deleted in MLflow: its model stays loadable until `mlflow gc`, and a scorer started on it served it
    MlflowClient().delete_run(run_id)
    said = missing(f"runs:/{run_id}/model")
    assert said is not None and said.startswith(
        f"run {run_id} was deleted in MLflow (`mlflow gc` removes its model for good): restore it with "
        f"`MLFLOW_TRACKING_URI={shlex.quote(mlflow.get_tracking_uri())} mlflow runs restore --run-id {run_id}`. "
    )
    MlflowClient().restore_run(run_id)
    assert missing(f"runs:/{run_id}/model") is None


def test_a_path_or_scheme_naming_no_model_is_said_to_with_the_runs_uri_meant(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # only runs:/ and models:/ were checked: `serve --model <run id>` (or `run:/<id>/model`) started
    # a scorer that warned and answered 503 for ever
    version = register_model(make_settings(), seed=1, threshold=0.5)
    run_id = MlflowClient().get_model_version(MODEL, version).run_id
    folder = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=str(tmp_path)))
    assert (folder / "MLmodel").is_file()
    assert missing(str(folder)) is None  # a model's own folder, as a path and as a file: URI
    assert missing(folder.as_uri()) is None
    assert missing("s3://bucket/model") is None  # another store's: left to the scorer

    meant = f"did you mean runs:/{run_id}/model?"
    assert missing(run_id) == f"no folder {run_id} (a path names a model's folder); {meant}"
    assert missing(f"run:/{run_id}/model") == f"MLflow reads no models from run: URIs; {meant}"
    said = missing(str(tmp_path / "nothing"))
    assert said is not None and said.startswith(
        f"no folder {tmp_path / 'nothing'} (a path names a model's folder); a model is runs:/<run id>/model, "
    )
    said = missing(tmp_path.as_uri())  # a folder, but no model's
    assert said is not None and said.startswith(f"{tmp_path} holds no model (no MLmodel file")
    said = missing("0" * 32)  # 32 hex digits, but no run's
    assert said is not None and "did you mean" not in said and "a model is runs:/" in said
