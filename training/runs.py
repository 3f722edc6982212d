"""The models `tickstore train` logged, newest first: what each scored and the URI to serve it by."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from tickstore.mlflow_store import EXPERIMENT, REGISTERED_MODEL, store_exists, use_mlflow_store
from tickstore.settings import Settings

COLUMNS = [
    "started (UTC)",
    "labels",
    "model",
    "range (UTC)",
    "horizon",
    "snapshot",
    "val PR-AUC",
    "test PR-AUC",
    "Brier",
    "trees",
    "champion",
    "uri",
]


@dataclass
class LoggedModel:
    """One model run of `tickstore train`, as MLflow keeps it."""

    started: datetime
    labels: str | None  # honest or leaky
    model: str | None  # zscore, logreg or xgboost
    start: str | None  # the training range, UTC
    end: str | None
    horizon_s: float | None  # the label's: p is that of a spike within it
    snapshot: int | None
    val_pr_auc: float | None
    test_pr_auc: float | None
    brier: float | None
    trees: int | None  # XGBoost: the trees it kept
    champion: bool  # the run the `champion` alias points at
    uri: str  # what `tickstore serve --model` takes

    def row(self) -> tuple[object, ...]:
        """The row under `FIELDS` (csv and json: the fields' names, values as they are)."""
        return tuple(getattr(self, name) for name in FIELDS)

    def shown(self) -> tuple[str | int | None, ...]:
        """The row under `COLUMNS`, to read: scores to 3 digits (Brier 4), n/a where one could not be
        computed (a split without spikes), the range as `2025-12-06 06:15..08:30`."""

        def score(value: float | None, digits: int) -> str:
            return "" if value is None else "n/a" if value != value else f"{value:.{digits}f}"

        return (
            f"{self.started:%Y-%m-%d %H:%M:%S}",
            self.labels,
            self.model,
            _range(self.start, self.end),
            "" if self.horizon_s is None else f"{self.horizon_s:g} s",
            self.snapshot,
            score(self.val_pr_auc, 3),
            score(self.test_pr_auc, 3),
            score(self.brier, 4),
            "" if self.trees is None else self.trees,
            "champion" if self.champion else "",
            self.uri,
        )


FIELDS = [f.name for f in fields(LoggedModel)]


def _range(start: str | None, end: str | None) -> str:
    """A training range as `2025-12-06 06:15..08:30` (the end's date only where it differs)."""
    if start is None or end is None:
        return ""
    a, b = datetime.fromisoformat(start).astimezone(UTC), datetime.fromisoformat(end).astimezone(UTC)
    shown = "%Y-%m-%d %H:%M" + (":%S" if a.second or b.second else "")
    tail = shown.split(" ", 1)[1] if a.date() == b.date() else shown
    return f"{a:{shown}}..{b:{tail}}"


def logged_models(settings: Settings, limit: int) -> list[LoggedModel]:
    """The newest ``limit`` model runs in the tickstore experiment (none without a store yet)."""
    if not store_exists(settings):  # reading must not create a store where `train` never ran
        return []
    use_mlflow_store(settings)
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    try:
        champion = client.get_model_version_by_alias(REGISTERED_MODEL, "champion").run_id
    except Exception:  # MLflow raises its own kind for "no such model or alias"
        champion = None
    runs = client.search_runs(
        [experiment.experiment_id],
        # a train run stopped part way marks its model runs KILLED or FAILED: they have no scores
        "attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=limit,
    )
    out = []
    for run in runs:
        params, metrics = run.data.params, run.data.metrics
        snapshot, trees, horizon = params.get("snapshot"), params.get("trees"), params.get("horizon_s")
        out.append(
            LoggedModel(
                started=datetime.fromtimestamp(run.info.start_time / 1000, UTC).replace(microsecond=0),
                labels=params.get("labels"),
                model=params.get("model"),
                start=params.get("start"),
                end=params.get("end"),
                horizon_s=float(horizon) if horizon is not None else None,
                snapshot=int(snapshot) if snapshot is not None else None,
                val_pr_auc=metrics.get("val_pr_auc"),
                # `log_scores` leaves NaN test scores out: a run with a Brier and no PR-AUC had no
                # spike in its test rows (n/a, as a NaN validation PR-AUC shows), not a score unlogged
                test_pr_auc=metrics.get("test_pr_auc", math.nan if "test_brier" in metrics else None),
                brier=metrics.get("test_brier"),
                trees=int(trees) if trees is not None else None,
                champion=run.info.run_id == champion,
                uri=f"runs:/{run.info.run_id}/model",
            )
        )
    return out
