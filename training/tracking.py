"""MLflow, local by default (a SQLite backend and artifacts under TICKSTORE_HOME/mlflow): plots, models, the registry."""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import average_precision_score, confusion_matrix, precision_recall_curve  # noqa: E402

from tickstore import stopping  # noqa: E402
from tickstore.mlflow_store import EXPERIMENT, REGISTERED_MODEL, use_mlflow_store  # noqa: E402
from tickstore.settings import Settings  # noqa: E402
from training.importance import Importance  # noqa: E402
from training.models import LogReg, Model, XGBoost, ZScoreRule  # noqa: E402
from training.report import Fold  # noqa: E402

if TYPE_CHECKING:  # only named: training.drift imports Feast (through training.dataset), ~3 s
    from training.drift import DriftResult


def setup(settings: Settings) -> str:
    """Point MLflow at the tickstore store and experiment; returns the experiment id."""
    use_mlflow_store(settings)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return str(experiment.experiment_id)
    artifacts = (settings.home / "mlflow" / "artifacts").resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    return str(mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts.as_uri()))


def curves(y: np.ndarray, p: np.ndarray, threshold: float, title: str, out: Path) -> list[Path]:
    """PR curve, calibration curve and confusion matrix as PNGs in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    if len(np.unique(y)) < 2:  # curves are undefined without both classes
        return files
    precision, recall, _ = precision_recall_curve(y, p)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(recall, precision, label=f"PR-AUC {average_precision_score(y, p):.3f}")
    # where the model runs: the threshold picked on validation, applied to these rows
    decided = p >= threshold
    hits = int((decided & (y == 1)).sum())
    ax.plot(
        hits / max(int(y.sum()), 1),
        hits / max(int(decided.sum()), 1),
        "o",
        color="C3",
        label=f"at threshold {threshold:.3f}",
    )
    ax.axhline(y.mean(), linestyle="--", color="grey", label=f"base rate {y.mean():.3f}")
    ax.set(xlabel="recall", ylabel="precision", title=f"PR curve: {title}")
    # a fixed place, where a PR curve rarely runs (high recall, high precision): "best" searched the
    # curve's thousands of points, and matplotlib warned it was slow
    ax.legend(loc="upper right")
    files.append(out / "pr_curve.png")
    fig.savefig(files[-1], dpi=100, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="quantile")
    ax.plot(prob_pred, prob_true, marker="o")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="predicted probability", ylabel="observed spike rate", title=f"Calibration: {title}")
    files.append(out / "calibration.png")
    fig.savefig(files[-1], dpi=100, bbox_inches="tight")
    plt.close(fig)

    matrix = confusion_matrix(y, (p >= threshold).astype(int), labels=[0, 1])
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, f"{v:,}", ha="center", va="center")
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["calm", "spike"],
        yticklabels=["calm", "spike"],
        xlabel="predicted",
        ylabel="actual",
        title=f"Confusion at {threshold:.3f}",
    )
    files.append(out / "confusion_matrix.png")
    fig.savefig(files[-1], dpi=100, bbox_inches="tight")
    plt.close(fig)
    return files


def log_walk_forward(run_id: str, folds: list[Fold]) -> None:
    """The walk-forward folds' base rates and PR-AUCs (by fold, and each model's mean) and their plot,
    into the run ``run_id``."""
    with stopping.held(), mlflow.start_run(run_id=run_id):
        for number, fold in enumerate(folds, 1):  # MLflow's UI plots a metric by step
            mlflow.log_metric("walk_forward_base_rate", fold.base_rate, step=number)
            for name, value in fold.pr_auc.items():
                mlflow.log_metric(f"walk_forward_pr_auc_{name}", value, step=number)
        for name in folds[0].pr_auc:
            values = [fold.pr_auc[name] for fold in folds]
            if any(v == v for v in values):
                mlflow.log_metric(f"walk_forward_pr_auc_mean_{name}", float(np.nanmean(values)))
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.log_artifact(str(walk_forward_plot(folds, Path(tmp))), "plots")


def log_drift(run_id: str, results: Mapping[str, DriftResult | str] | None) -> dict[str, float]:
    """The drift reports' files, shares and untested features into the run ``run_id``, their shares
    returned; None: none were made (`tickstore train --no-drift-reports`), which the run says, so that
    no one looks there for them."""
    shares = {}
    with stopping.held(), mlflow.start_run(run_id=run_id):
        if results is None:
            mlflow.set_tag("drift", "not made: tickstore train --no-drift-reports")
        for name, result in (results or {}).items():
            if isinstance(result, str):
                # rows that can't tell drift (too short for every feature's blocks, nothing varies)
                # are said so with the run; the models are fitted and logged by then
                mlflow.set_tag(f"drift_{name}", f"not compared: {result}")
                continue
            if result.untested:
                mlflow.set_tag(f"drift_{name}_untested", ", ".join(result.untested))
            mlflow.log_artifact(str(result.html), "drift")
            mlflow.log_artifact(str(result.json), "drift")
            mlflow.log_metric(f"drift_share_{name}", result.share)
            shares[name] = result.share
    return shares


def walk_forward_plot(folds: list[Fold], out: Path) -> Path:
    """Each model's PR-AUC fold by fold beside the fold's base rate (PR-AUC's chance level) as a PNG
    in ``out``; a fold without spikes has no PR-AUC, and no point."""
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(1, len(folds) + 1)
    ax.bar(x, [f.base_rate for f in folds], color="lightgrey", label="base rate (chance)")
    for name in folds[0].pr_auc if folds else []:
        ax.plot(x, [f.pr_auc[name] for f in folds], marker="o", label=name)
    ax.set_xticks(
        x,
        [f"{k}\n{f.start:%m-%d %H:%M}" if f.rows else str(k) for k, f in enumerate(folds, 1)],
        fontsize=8,
    )
    ax.set(
        xlabel="fold (validation from)",
        ylabel="PR-AUC",
        ylim=(0, 1),
        title="Walk-forward PR-AUC, each fold trained on the rows before it",
    )
    ax.legend(fontsize=8)
    path = out / "walk_forward.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def importance_plot(found: list[Importance], title: str, out: Path, top: int = 15) -> Path:
    """The ``top`` features a model leans on most (validation log loss added when each is shuffled,
    with the spread over the shuffles) as a PNG in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    shown = found[:top][::-1]  # the most important at the top
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(shown) + 1.2))
    ax.barh([i.feature for i in shown], [i.added for i in shown], xerr=[i.spread for i in shown], color="C0")
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set(xlabel="validation log loss added when the feature is shuffled", title=f"What {title} leans on")
    ax.tick_params(axis="y", labelsize=8)
    path = out / "permutation_importance.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def log_importance(run_id: str, found: list[Importance], title: str) -> None:
    """A model's permutation importances into its run: every feature's figures as JSON, the top ones drawn."""
    if not found:
        return
    with stopping.held(), mlflow.start_run(run_id=run_id), tempfile.TemporaryDirectory() as tmp:
        mlflow.log_dict(
            {i.feature: {"log_loss_added": i.added, "spread": i.spread} for i in found},
            "permutation_importance.json",
        )
        mlflow.log_artifact(str(importance_plot(found, title, Path(tmp))), "plots")


def abandon(run_ids: list[str], *, interrupted: bool) -> str:
    """Mark the model runs of a `tickstore train` that stopped part way KILLED (interrupted) or FAILED;
    returns what was done, to be said ("" when no run was logged: nothing to say).

    Each model's run ends FINISHED once its model is logged; its scores come after the three are fitted.
    """
    if not run_ids:
        return ""
    status = "KILLED" if interrupted else "FAILED"
    try:
        with stopping.held():  # a second Ctrl-C is taken once they are marked
            client = MlflowClient()
            for run_id in run_ids:
                client.set_terminated(run_id, status)
    except Exception as exc:  # noqa: BLE001 - the store itself may be what failed: said, not raised
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"the model runs logged so far could not be marked {status} in MLflow ({first})"
    return f"the {len(run_ids)} model run(s) logged so far are marked {status} in MLflow"


def promote(model_uri: str) -> str:
    """Register a logged model (``models:/m-...``) and point the `champion` alias at the new version."""
    with stopping.held():  # a version registered without its alias would serve nothing
        version = mlflow.register_model(model_uri, REGISTERED_MODEL)
        MlflowClient().set_registered_model_alias(REGISTERED_MODEL, "champion", version.version)
    return str(version.version)


def _pinned(*packages: str) -> list[str]:
    """The model's pip requirements, pinned to this environment's versions.

    Left to itself MLflow infers them by loading the model in a subprocess: ~3 s a model (6 of a
    training run's 49 s), and it listed whatever that process had imported (pytest, dask, rich).
    """
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in packages]


def log_model(model: Model, x: pd.DataFrame) -> str:
    """Log the fitted model in a flavor MLflow loads without tickstore's code (serving never imports training).

    Returns the logged model's URI.
    """
    example = x.head(5).astype(float)
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold missing values: here that is the predicted class
        # label of the output schema, which is never missing; the inputs are floats
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        return _log_flavor(model, example)


def _log_flavor(model: Model, example: pd.DataFrame) -> str:
    if isinstance(model, (LogReg, ZScoreRule)):
        import mlflow.sklearn

        info = mlflow.sklearn.log_model(  # type: ignore[attr-defined]
            model.pipeline,
            name="model",
            input_example=example,
            skops_trusted_types=["numpy.dtype"],
            pip_requirements=_pinned("numpy", "pandas", "scikit-learn", "scipy", "skops"),
        )
        return str(info.model_uri)
    if isinstance(model, XGBoost):
        import mlflow.xgboost

        info = mlflow.xgboost.log_model(  # type: ignore[attr-defined]
            model.model,
            name="model",
            input_example=example,
            pip_requirements=_pinned("numpy", "pandas", "scikit-learn", "scipy", "xgboost"),
        )
        return str(info.model_uri)
    raise TypeError(f"no MLflow flavor for {model.name}")


def log_model_run(  # noqa: PLR0913 - the run's parts, each its own kind
    experiment: str,
    kind: str,
    params: dict[str, object],
    manifest: dict[str, Any],
    logged: list[str],
    model: Model,
    x: pd.DataFrame,
    y: np.ndarray,
    p: np.ndarray,
    cut: float,
) -> tuple[str, str]:
    """Log one model's run (``kind``: honest or leaky labels), noted in ``logged`` as it starts: its
    parameters, test curves, the training set's manifest and feature SQL, the model. Returns the run's
    id and the logged model's URI."""
    with stopping.held(), mlflow.start_run(experiment_id=experiment, run_name=f"{kind}-{model.name}") as run:
        logged.append(run.info.run_id)
        mlflow.log_params({**params, "model": model.name, "decision_threshold": cut})
        mlflow.set_tags({"features": json.dumps(list(x.columns))})
        with tempfile.TemporaryDirectory() as tmp:
            for png in curves(y, p, cut, f"{kind} {model.name}", Path(tmp)):
                mlflow.log_artifact(str(png), "plots")
            (Path(tmp) / "manifest.json").write_text(json.dumps(manifest, indent=2))
            mlflow.log_artifact(str(Path(tmp) / "manifest.json"), "dataset")
            # the feature SQL as it computed the training set: what to restore should the scorer
            # refuse the model for SQL changed since (feature_definitions_changed)
            (Path(tmp) / "sql").mkdir()
            for view, text in manifest["sql"].items():
                (Path(tmp) / "sql" / f"{view}.sql").write_text(text)
            mlflow.log_artifacts(str(Path(tmp) / "sql"), "sql")
        if isinstance(model, XGBoost):
            mlflow.log_dict(model.importance(list(x.columns)), "feature_importance.json")
            mlflow.log_param("trees", model.trees)
        return str(run.info.run_id), log_model(model, x)


def log_scores(
    run_id: str,
    val_pr_auc: float,
    beats_rule: float,
    test: dict[str, float],
    threshold: float,
    spikes: dict[str, int],
) -> None:
    """A model's validation and test scores (NaN ones left out), its labels' spike threshold and
    spike counts, into its run."""
    with stopping.held(), mlflow.start_run(run_id=run_id):
        mlflow.log_params(
            {"spike_threshold_fwd_vol": threshold, **{f"spikes_{k}": v for k, v in spikes.items()}}
        )
        mlflow.log_metrics(
            {
                "val_pr_auc": val_pr_auc,
                **({"val_beats_rule_share": beats_rule} if beats_rule == beats_rule else {}),
                **{f"test_{k}": v for k, v in test.items() if v == v},
            }
        )
