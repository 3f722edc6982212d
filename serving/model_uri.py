"""Model URIs: which one names what, why one can never be loaded, and what to serve instead."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlparse

import mlflow
from mlflow.store.artifact.artifact_repository_registry import get_registered_artifact_repositories
from mlflow.tracking import MlflowClient
from mlflow.utils.file_utils import local_file_uri_to_path

from tickstore.mlflow_store import EXPERIMENT, REGISTERED_MODEL, check_server, reason
from tickstore.text import without_passwords

HINT = (
    "Train one (`tickstore train` promotes a champion when a model beats the z-score rule beyond chance, and prints "
    "the runs:/ URIs of the rule and of its best model when none does), or serve one by its URI: "
    "`tickstore serve --model runs:/<run>/model` (or TICKSTORE_SERVE_MODEL_URI; `tickstore models` lists them)"
)


def hint() -> str:
    """What to do about a model that can't be loaded: HINT, and where no model is promoted at all, the
    runs:/ URI of the newest training run's z-score rule (MLflow pointed at tickstore's store first)."""
    client = MlflowClient()
    try:
        client.get_model_version_by_alias(REGISTERED_MODEL, "champion")
        return HINT  # there is a champion: the URI asked for is another
    except Exception:  # MLflow's "not found", or a store that can't be read: look for a run below
        pass
    try:
        experiment = mlflow.get_experiment_by_name(EXPERIMENT)
        runs = (
            client.search_runs(
                [experiment.experiment_id],
                "params.model = 'zscore' and params.labels = 'honest' and attributes.status = 'FINISHED'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            if experiment is not None
            else []
        )
    except Exception:
        return HINT
    if not runs:
        return HINT
    return (
        "No `tickstore train` run has promoted a model (none beat the z-score rule beyond chance); to serve the newest "
        f"`tickstore train` run's z-score rule: tickstore serve --model runs:/{runs[0].info.run_id}/model "
        "(every logged model, with its scores and URI: tickstore models)"
    )


ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")
RUN_URI = re.compile(r"^runs:/(?P<run_id>[^/]+)(?:/(?P<path>.*))?$")
VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")
LOGGED_URI = re.compile(r"^models:/(?P<id>[^/@]+)$")


def missing(uri: str) -> str | None:
    """Why ``uri`` can never be loaded, when MLflow says the run or model version it names does not
    exist, a finished run holds no model at its path, or the run was deleted (its model is kept only
    until `mlflow gc`); MLflow pointed at tickstore's store first.
    None when it exists, may exist later (an alias not set yet, a run still open), or MLflow can't
    be asked now.

    A scorer started on such a URI stayed up and answered 503 for ever: a runs:/ or models:/name/N
    URI names one thing, and nothing would ever make it appear, nor would a logged model's id that
    names none (models:/<id>, MLflow 3's; a registered name alone is read so). A path (or file: URI) is a model
    folder only with MLflow's MLmodel file in it, and a scheme MLflow has no store for is a typo
    (`run:/`); other stores' URIs (s3://, ...) are left to the scorer.
    """
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        check_server(mlflow.get_tracking_uri())  # down: said now, not after MLflow's minutes of retries
        if run := RUN_URI.match(uri):
            found = client.get_run(run["run_id"])
            if found.info.lifecycle_stage == "deleted":
                return f"{deleted_run(run['run_id'])}. {hint()}"
            path = (run["path"] or "").strip("/")
            if not path:  # MLflow can't load a run's root: "Not a proper runs:/ URI"
                return (
                    f"a runs:/ URI names the model's folder in its run too: {uri.rstrip('/')}/model. {hint()}"
                )
            # a run that has ended gets no new model (train logs each while its run is open), so a
            # path without one (`runs:/<id>/modle`) names nothing for good; a running one may yet
            if found.info.status != "RUNNING" and not _holds_model(uri):
                return (
                    f"run {run['run_id']} has no model at '{path}' (tickstore train logs each model at "
                    f"runs:/<run id>/model). {hint()}"
                )
        elif version := VERSION_URI.match(uri):
            client.get_model_version(version["name"], version["version"])
        elif logged := LOGGED_URI.match(uri):  # MLflow 3 reads models:/<id> as a logged model's id
            try:
                client.get_logged_model(logged["id"])
            except MlflowException as exc:
                if exc.error_code == "RESOURCE_DOES_NOT_EXIST" and _registered(client, logged["id"]):
                    return f"{reason(exc).rstrip('.')}; did you mean models:/{logged['id']}@champion?"
                raise
        elif (scheme := urlparse(uri).scheme) in ("", "file"):
            return _no_model_folder(uri, client)
        elif scheme not in get_registered_artifact_repositories():
            return _unknown_scheme(uri, scheme, client)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return f"{reason(exc).rstrip('.')}. {hint()}"
    except Exception:  # a server down or a store unreadable: the scorer retries and says why
        return None
    return None


def deleted_run(run_id: str) -> str:
    """That run ``run_id`` was deleted in MLflow, and how to bring it back (MLflow pointed at tickstore's
    store first).

    MLflow keeps a deleted run's model until `mlflow gc` removes it for good, so a scorer could start on
    one and serve it; `tickstore models` no longer lists it, and the next start after a gc fails.
    """
    store = shlex.quote(without_passwords(mlflow.get_tracking_uri()))
    return (
        f"run {run_id} was deleted in MLflow (`mlflow gc` removes its model for good): restore it with "
        f"`MLFLOW_TRACKING_URI={store} mlflow runs restore --run-id {run_id}`"
    )


def is_deleted(run_id: str) -> bool:
    """Whether MLflow holds run ``run_id`` as deleted (not yet removed by `mlflow gc`)."""
    return bool(MlflowClient().get_run(run_id).info.lifecycle_stage == "deleted")


def _holds_model(uri: str) -> bool:
    """Whether the artifact folder ``uri`` names holds an MLflow model (its MLmodel file); listed,
    not downloaded. MLflow 3 resolves a run's model name to the logged model it keeps apart."""
    listed = mlflow.artifacts.list_artifacts(artifact_uri=uri)
    return any(not entry.is_dir and entry.path.rsplit("/", 1)[-1] == "MLmodel" for entry in listed)


# the names tickstore train gives its runs: a run id pasted without its runs:/ ... /model
RUN_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
NAMING = "a model is runs:/<run id>/model, models:/<name>/<version> or models:/<name>@<alias>"


def _no_model_folder(uri: str, client: MlflowClient) -> str | None:
    """Why local path or file: URI ``uri`` is no model: no such folder, or no MLmodel file in it."""
    path = Path(local_file_uri_to_path(uri) if uri.startswith("file:") else uri)
    if (path / "MLmodel").is_file():
        return None
    if not path.exists():
        return f"no folder {path} (a path names a model's folder); {_meant(uri, client)}"
    return f"{path} holds no model (no MLmodel file, which MLflow saves with each); {_meant(uri, client)}"


def _unknown_scheme(uri: str, scheme: str, client: MlflowClient) -> str:
    """Why ``uri``, of a scheme MLflow reads no models from, is none (`run:/` for `runs:/`)."""
    return f"MLflow reads no models from {scheme}: URIs; {_meant(uri, client)}"


def _meant(uri: str, client: MlflowClient) -> str:
    """The runs:/ URI of the run whose id ``uri`` holds, as "did you mean", else how models are named
    and what to serve."""
    for run_id in RUN_ID.findall(uri):
        try:
            if client.get_run(run_id).info.lifecycle_stage == "active":
                return f"did you mean runs:/{run_id}/model?"
        except Exception:  # MLflow's "not found": another 32 hex digits
            continue
    return f"{NAMING}. {hint()}"


def _registered(client: MlflowClient, name: str) -> bool:
    """Whether MLflow's registry holds a model named ``name`` (one a models:/ URI names without its
    version or alias)."""
    try:
        client.get_registered_model(name)
    except Exception:  # MLflow's "not found"
        return False
    return True
