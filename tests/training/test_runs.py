"""`tickstore models`' rows: the model runs `tickstore train` logged, newest first, the champion marked."""

from __future__ import annotations

import time
from collections.abc import Callable

import mlflow
from mlflow.tracking import MlflowClient

from tickstore.mlflow_store import REGISTERED_MODEL
from tickstore.settings import Settings
from training import tracking
from training.runs import FIELDS, logged_models


def log_run(
    experiment: str, model: str, labels: str, metrics: dict[str, float], trees: int | None = None
) -> str:
    """A run with the params and metrics `tickstore train` logs for a model (no model artifact)."""
    with mlflow.start_run(experiment_id=experiment, run_name=f"{labels}-{model}") as run:
        params = {
            "model": model,
            "labels": labels,
            "snapshot": 7,
            "start": "2025-12-06T06:15:00+00:00",
            "end": "2025-12-06T08:30:00+00:00",
            "horizon_s": 60.0,
        }
        mlflow.log_params(params | ({"trees": trees} if trees is not None else {}))
        mlflow.log_metrics(metrics)
    time.sleep(0.01)  # runs ordered by their start, in milliseconds
    return str(run.info.run_id)


def test_models_newest_first_with_scores_and_the_champion(make_settings: Callable[..., Settings]) -> None:
    s = make_settings()
    assert logged_models(s, 10) == []  # no store yet: none, and none created by looking
    assert not (s.home / "mlflow").exists()
    experiment = tracking.setup(s)
    assert logged_models(s, 10) == []  # a store, no run
    rule = log_run(
        experiment, "zscore", "honest", {"val_pr_auc": 0.28, "test_pr_auc": 0.04, "test_brier": 0.05}
    )
    boosted = log_run(
        experiment, "xgboost", "honest", {"val_pr_auc": float("nan"), "test_pr_auc": 0.07}, trees=28
    )
    client = MlflowClient()
    client.create_registered_model(REGISTERED_MODEL)
    version = client.create_model_version(REGISTERED_MODEL, f"runs:/{rule}/model", run_id=rule)
    client.set_registered_model_alias(REGISTERED_MODEL, "champion", version.version)

    found = logged_models(s, 10)
    assert [m.uri for m in found] == [f"runs:/{boosted}/model", f"runs:/{rule}/model"]
    newest, oldest = found
    assert (newest.model, newest.labels, newest.trees, newest.champion) == ("xgboost", "honest", 28, False)
    assert oldest.champion and oldest.trees is None and oldest.snapshot == 7
    assert (oldest.val_pr_auc, oldest.test_pr_auc, oldest.brier) == (0.28, 0.04, 0.05)
    assert newest.brier is None  # not logged: shown blank, not as 0
    assert newest.shown()[3:10] == ("2025-12-06 06:15..08:30", "60 s", 7, "n/a", "0.070", "", 28)
    assert oldest.shown()[8:11] == ("0.0500", "", "champion")
    assert newest.horizon_s == 60.0 and newest.row()[FIELDS.index("horizon_s")] == 60.0
    assert [m.uri for m in logged_models(s, 1)] == [f"runs:/{boosted}/model"]
    # a test split without spikes: its PR-AUC is n/a, as validation's is (it was shown blank)
    log_run(experiment, "logreg", "honest", {"val_pr_auc": float("nan"), "test_brier": 1e-12})
    assert logged_models(s, 1)[0].shown()[6:9] == ("n/a", "n/a", "0.0000")


def test_a_range_shows_its_end_date_only_where_it_differs() -> None:
    from training.runs import _range

    assert _range("2025-12-06T06:12:47+00:00", "2025-12-06T08:35:28+00:00") == "2025-12-06 06:12:47..08:35:28"
    assert (
        _range("2025-12-06T23:00:00+00:00", "2025-12-07T01:00:00+00:00")
        == "2025-12-06 23:00..2025-12-07 01:00"
    )
    assert (
        _range("2025-12-06T08:00:00+01:00", "2025-12-06T09:00:00+01:00") == "2025-12-06 07:00..08:00"
    )  # UTC
    assert _range(None, "2025-12-06T09:00:00+00:00") == ""  # a run logged without its range
