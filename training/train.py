"""`tickstore train`: honest forward labels, purged splits, three models, MLflow, a comparison table."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from tickstore import lake, stopping
from tickstore.settings import Settings
from training import dataset, importance, labels, splits, tracking
from training.drift import row_blocks
from training.drift_jobs import run_apart
from training.metrics import beats_share, best_f1_threshold, block_rows, episodes, pr_auc, score
from training.models import Model, XGBoost, all_models
from training.parquet import read_parquet
from training.report import Fold, ModelResult, TrainReport, promotable

LEAKY_MAX_ROWS = 60_000
MIN_SPLIT_ROWS = 50
# rows closer than this share ticks through their features (ticks_300s, the widest window in sql/)
FEATURE_MEMORY = timedelta(minutes=5)
META = {"product_id", "event_timestamp", "fwd_vol", "fwd_returns", "label"}


@dataclass(frozen=True)
class TrainConfig:
    """What to train on and how."""

    start: datetime
    end: datetime
    every: timedelta = timedelta(seconds=1)
    horizon: timedelta = timedelta(seconds=60)
    percentile: float = 95.0
    feature_service: str = "volatility_model"
    as_of: int | None = None
    leaky_labels: bool = False  # also train on shift(-1) labels, to show what that mistake reports
    folds: int = 0  # > 0: also walk-forward cross-validation with this many purged folds
    drift_reports: bool = True  # Evidently's two reports, ~half of a short run's time

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"the range is empty: end {self.end} is not after start {self.start}")
        if self.every <= timedelta(0) or self.horizon <= timedelta(0):
            raise ValueError("the label step (--every) and the horizon (--horizon) must be positive")
        if not 0 < self.percentile < 100:
            raise ValueError(f"the spike percentile must be between 0 and 100, not {self.percentile}")
        if self.folds < 0:
            raise ValueError("folds must be 0 (none) or more")


def set_name(cfg: TrainConfig, snapshot: int) -> str:
    """The training set's file name, from all that decides its rows and columns.

    Named by the snapshot alone, a run over another range of the same snapshot replaced it: the
    earlier run's manifest in MLflow then named a file holding other rows (and two runs at once could
    read each other's). The same config and snapshot give the same bytes, so they share one file.
    """
    # the year padded by hand: strftime's %Y writes year 1 as "1"
    span = f"{cfg.start.year:04d}{cfg.start:%m%dT%H%M%S}_{cfg.end.year:04d}{cfg.end:%m%dT%H%M%S}"
    step = f"every{cfg.every.total_seconds():g}s_h{cfg.horizon.total_seconds():g}s"
    return f"train_{snapshot}_{span}_{step}_{cfg.feature_service}.parquet"


def honest_table(
    settings: Settings, cfg: TrainConfig, snapshot: int, out_dir: Path
) -> tuple[pd.DataFrame, Path]:
    """Forward-vol labels on the grid joined to point-in-time features (one row per label)."""
    con = lake.connect(settings, snapshot=snapshot, create=False)
    try:
        lab = labels.forward_vol(con, cfg.start, cfg.end, cfg.every, cfg.horizon)
    finally:
        con.close()
    if lab.empty:
        where = lake.tick_span(settings, snapshot)
        # a label needs a tick at or after t + horizon: a horizon past the lake's last tick leaves none
        raise ValueError(
            f"no labels in [{cfg.start}, {cfg.end}) at lake snapshot {snapshot} ({where}); a label at t "
            f"needs ticks through t + the horizon ({cfg.horizon.total_seconds():g} s)"
        )
    path = out_dir / set_name(cfg, snapshot)
    dataset.build(
        settings,
        lab[["product_id", "event_timestamp"]],
        path,
        feature_service=cfg.feature_service,
        as_of=snapshot,
    )
    features = read_parquet(path)
    # the dataset keeps entity-row order, so labels line up row for row
    table = pd.concat([features.reset_index(drop=True), lab[["fwd_vol", "fwd_returns"]]], axis=1)
    return table, path


def leaky_table(settings: Settings, cfg: TrainConfig, snapshot: int) -> pd.DataFrame:
    """The mistake being demonstrated: per-tick rows, label = the *next tick's* 60 s volatility
    (`shift(-1)` on overlapping windows), which is almost the current feature."""
    con = lake.connect(settings, snapshot=snapshot, create=False)
    try:
        sql = (Path(labels.LABEL_SQL).parent / "ticks_60s.sql").read_text()
        frame = con.execute(
            f"SELECT * FROM ({sql}) WHERE event_time >= $s AND event_time < $e ORDER BY product_id, event_time",  # noqa: S608
            {"s": cfg.start, "e": cfg.end},
        ).df()
    finally:
        con.close()
    frame = frame.rename(columns={"event_time": "event_timestamp"})
    frame["fwd_vol"] = frame.groupby("product_id")["ret_std_60s"].shift(-1)
    return (
        frame.dropna(subset=["fwd_vol"]).sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    )


def _span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    return f"{seconds / 60:g} min" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g} s"


def spikes_of(rows: pd.DataFrame, threshold: float) -> np.ndarray:
    """1 for each row whose forward volatility is above ``threshold``, else 0."""
    return (rows["fwd_vol"] > threshold).to_numpy().astype(int)


def fit_model(
    model: Model,
    train: pd.DataFrame,
    fitted: pd.DataFrame,
    stop: pd.DataFrame,
    threshold: float,
    columns: list[str],
) -> None:
    """Fit ``model`` on the training rows: split into ``fitted`` and ``stop`` (`splits.early_stopping`)
    for one that stops early, all of them for the others (the purge gap between the two included),
    and for one that would stop early on held-out rows of one class, where there is nothing to stop on."""
    y_stop = spikes_of(stop, threshold)
    if model.stops_early and 0 < int(y_stop.sum()) < len(y_stop):
        model.fit(fitted[columns], spikes_of(fitted, threshold), stop[columns], y_stop)
    else:
        none = train.iloc[:0]
        model.fit(train[columns], spikes_of(train, threshold), none[columns], spikes_of(none, threshold))


def fit_and_score(
    table: pd.DataFrame,
    cfg: TrainConfig,
    on_model: Callable[[Model, pd.DataFrame, np.ndarray, np.ndarray, float], tuple[str, str]],
    step: Callable[[str], None] = lambda _: None,
) -> tuple[list[ModelResult], float, dict[str, int], dict[str, int]]:
    """Split, label at the training percentile, fit every model, score on test; ``step`` is told which
    model is at work.

    Returns the results, the spike threshold, and the rows and spikes per split.
    """
    train, val, test = splits.chronological(table, purge=cfg.horizon)
    if min(len(train), len(val), len(test)) < MIN_SPLIT_ROWS:
        times = table["event_timestamp"]
        # over the exchange recording (4 bursts in 42 hours) the range already held every tick: say
        # where the rows are, so a user can tell a short range from sparse data
        span = (
            f"; the {len(table):,} labeled rows run from {times.min():%Y-%m-%d %H:%M:%S} to {times.max():%Y-%m-%d %H:%M:%S} UTC"
            if len(table)
            else ""
        )
        unpurged = splits.chronological(table, purge=timedelta(0))
        if min(map(len, unpurged)) >= MIN_SPLIT_ROWS:
            # the rows are there, but the horizon purged before each boundary takes a short split's
            # all: more rows a second would not help
            fix = (
                f"the {_span(cfg.horizon)} before each split boundary is dropped (the horizon, so no label "
                f"sees the next split), and 15% of these rows span less: use a range with ticks over "
                f"several times the horizon, or a shorter --horizon"
            )
        else:
            fix = f"use a range with more ticks, or a smaller --every (now {cfg.every.total_seconds():g} s)"
        raise ValueError(
            f"too few labeled rows to train: {len(train)} train, {len(val)} validation, {len(test)} test "
            f"(each needs {MIN_SPLIT_ROWS}){span}; {fix}"
        )
    threshold = labels.spike_threshold(train["fwd_vol"], cfg.percentile)
    y = {name: spikes_of(part, threshold) for name, part in (("train", train), ("val", val), ("test", test))}
    if not 0 < int(y["train"].sum()) < len(train):
        # a model can't learn one class: scikit-learn's "needs samples of at least 2 classes" said so
        said = "none is above" if y["train"].sum() == 0 else "every one is above"
        raise ValueError(
            f"no spikes to learn: of the {len(train):,} training rows {said} the {cfg.percentile:.10g}th "
            f"percentile of their forward volatility ({threshold:.3g}, the highest {train['fwd_vol'].max():.3g}); "
            "use a --percentile nearer the default 95 (one row in 20 a spike)"
        )
    columns = [c for c in table.columns if c not in META]
    fitted, stop = splits.early_stopping(train, purge=cfg.horizon, spikes=y["train"])
    # validation and test rows are resampled in stretches long enough to hold what links neighbouring
    # rows: a label's horizon, the widest feature window
    memory = max(cfg.horizon, FEATURE_MEMORY)
    block, val_block = block_rows(test["event_timestamp"], memory), block_rows(val["event_timestamp"], memory)
    results = []
    p_rule = None
    models = all_models()
    for number, model in enumerate(models, 1):  # the z-score rule first: the others are compared with it
        step(f"{model.name} ({number} of {len(models)}): fitting, scoring, logging to MLflow")
        fit_model(model, train, fitted, stop, threshold, columns)
        p_val = model.predict_proba(val[columns])
        cut = best_f1_threshold(y["val"], p_val)
        p_test = model.predict_proba(test[columns])
        result = ModelResult(model.name, pr_auc(y["val"], p_val), score(y["test"], p_test, cut, block))
        if p_rule is None:
            p_rule = p_val
        else:
            result.beats_rule = beats_share(y["val"], p_val, p_rule, val_block)
        if isinstance(model, XGBoost):
            result.trees = model.trees
        result.importance = importance.permutation(model, val[columns], y["val"])
        result.run_id, result.model_uri = on_model(model, test[columns], y["test"], p_test, cut)
        results.append(result)
    rows = {"train": len(train), "validation": len(val), "test": len(test), "early_stopping": len(stop)}
    spikes = {"train": int(y["train"].sum()), "validation": int(y["val"].sum()), "test": int(y["test"].sum())}
    spikes["early_stopping"] = int(spikes_of(stop, threshold).sum())  # the last training rows, held out
    # how many separate stretches the spikes come in: the evidence a split holds (`metrics.episodes`)
    for name, part, key in (("train", train, "train"), ("validation", val, "val"), ("test", test, "test")):
        spikes[f"{name}_episodes"] = episodes(part["event_timestamp"][y[key] == 1], memory)
    return results, threshold, rows, spikes


def train(
    settings: Settings,
    cfg: TrainConfig,
    log: Callable[[str], None] = print,
    step: Callable[[str], None] = lambda _: None,
) -> TrainReport:
    """Train and compare the three models; register the best as `champion` if it beats the z-score rule.
    ``log`` is given what to print; ``step``, what is at work (a progress line's text).

    A run that stops part way (Ctrl-C, an error) marks the model runs it logged KILLED or FAILED in
    MLflow: they lack scores, and `tickstore models` lists finished runs only.
    """
    logged: list[str] = []
    try:
        return _train(settings, cfg, log, step, logged)
    except BaseException as exc:
        # Ctrl-C or SIGTERM (`stopping.Terminated`) in a DuckDB query comes as RuntimeError("Query
        # interrupted") from the KeyboardInterrupt
        stop = isinstance(exc, KeyboardInterrupt) or isinstance(exc.__cause__, KeyboardInterrupt)
        if said := tracking.abandon(logged, interrupted=stop):
            log(said)
        raise


def _train(
    settings: Settings,
    cfg: TrainConfig,
    log: Callable[[str], None],
    step: Callable[[str], None],
    logged: list[str],
) -> TrainReport:
    """`train`, noting each model run in ``logged`` as it starts."""
    step("MLflow: opening the tracking store")  # ~2 s on a new store: its tables are made
    experiment = tracking.setup(settings)  # first: an MLflow server that is down fails before any work
    con = lake.connect(settings, create=False)
    snapshot = cfg.as_of if cfg.as_of is not None else lake.current_snapshot(con)
    con.close()
    out_dir = settings.home / "datasets"
    step(f"training set: labels and point-in-time features at lake snapshot {snapshot}")
    table, manifest_path = honest_table(settings, cfg, snapshot, out_dir)
    log(
        f"training set: {len(table):,} rows x {len(table.columns) - 4} features (lake snapshot {snapshot}), "
        f"{manifest_path}"
    )
    if cfg.folds and len(table) // (cfg.folds + 1) < MIN_SPLIT_ROWS:
        # every fold would be skipped, after a loop over them all (a million folds on 1,733 rows gave
        # no answer in 5 minutes)
        most = len(table) // MIN_SPLIT_ROWS - 1
        raise ValueError(
            f"--folds {cfg.folds}: {len(table):,} labeled rows cut into {cfg.folds + 1:,} parts leave each fold "
            f"under the {MIN_SPLIT_ROWS} rows it needs: "
            + (f"use at most --folds {most}" if most > 0 else "use a longer range, or a smaller --every")
        )
    manifest = json.loads(manifest_path.with_suffix(".manifest.json").read_text())
    label_params = {
        "horizon_s": cfg.horizon.total_seconds(),
        "every_s": cfg.every.total_seconds(),
        "percentile": cfg.percentile,
        "start": cfg.start.isoformat(),
        "end": cfg.end.isoformat(),
    }
    label_sql = labels.LABEL_SQL.read_text()

    def tracked(kind: str) -> Callable[[Model, pd.DataFrame, np.ndarray, np.ndarray, float], tuple[str, str]]:
        params = {
            **label_params,
            "labels": kind,
            "snapshot": snapshot,
            "feature_service": cfg.feature_service,
            "label_sql_sha256": dataset.sha256(label_sql),
            **{f"sql_sha256_{k}": v for k, v in manifest["sql_sha256"].items()},
            # the scorer compares these with the views it serves (serving/features.py)
            **{f"sql_fingerprint_{k}": v for k, v in manifest["sql_fingerprint"].items()},
        }
        return partial(tracking.log_model_run, experiment, kind, params, manifest, logged)

    results, threshold, rows, spikes = fit_and_score(
        table, cfg, tracked("honest"), lambda text: step(f"honest labels: {text}")
    )
    for r in results:
        tracking.log_scores(r.run_id, r.validation_pr_auc, r.beats_rule, r.test.as_dict(), threshold, spikes)
        tracking.log_importance(r.run_id, r.importance, f"honest {r.name}")
    report = TrainReport(snapshot=snapshot, threshold=threshold, rows=rows, results=results, spikes=spikes)
    if cfg.drift_reports:
        step("drift reports: Evidently, train vs test and early vs late, side by side")
        report.drift_share = _drift(table, cfg, results[0].run_id, row_blocks(manifest, cfg.every))
    else:
        tracking.log_drift(results[0].run_id, None)
    if cfg.folds > 0:
        step(f"walk-forward cross-validation: {cfg.folds} folds")
        report.walk_forward = walk_forward(table, cfg)
        tracking.log_walk_forward(results[0].run_id, report.walk_forward)
    if cfg.leaky_labels:
        step("leaky labels: per-tick rows, the next tick's volatility")
        leaky, leaky_threshold, _, leaky_spikes = fit_and_score(
            leaky_table(settings, cfg, snapshot),
            cfg,
            tracked("leaky"),
            lambda text: step(f"leaky labels: {text}"),
        )
        for r in leaky:  # the mistake's scores, beside the honest ones
            tracking.log_scores(
                r.run_id, r.validation_pr_auc, r.beats_rule, r.test.as_dict(), leaky_threshold, leaky_spikes
            )
            tracking.log_importance(r.run_id, r.importance, f"leaky {r.name}")
        report.leaky = leaky
    stopping.check()  # a stop that something swallowed still promotes nothing
    best = promotable(report)  # last: a run that stops before its end promotes nothing
    if best is not None:
        report.champion = best.name
        report.champion_version = tracking.promote(best.model_uri)
    return report


def walk_forward(table: pd.DataFrame, cfg: TrainConfig) -> list[Fold]:
    """Every model scored on each purged walk-forward fold (spike threshold and XGBoost's early
    stopping from the fold's own training rows), with what each fold's validation rows hold."""
    columns = [c for c in table.columns if c not in META]
    memory = max(cfg.horizon, FEATURE_MEMORY)
    folds = []
    for train_part, val_part in splits.walk_forward(table, cfg.folds, cfg.horizon):
        times = val_part["event_timestamp"]
        fold = Fold(times.min(), times.max(), len(train_part), len(val_part), 0, 0)
        folds.append(fold)
        if min(len(train_part), len(val_part)) < MIN_SPLIT_ROWS:  # more folds than the rows bear
            fold.skipped = f"under {MIN_SPLIT_ROWS} rows"
            fold.pr_auc = {model.name: float("nan") for model in all_models()}
            continue
        threshold = labels.spike_threshold(train_part["fwd_vol"], cfg.percentile)
        y_train = spikes_of(train_part, threshold)
        if not 0 < int(y_train.sum()) < len(y_train):  # an early, quiet fold at a high --percentile
            fold.skipped = "no spike in its training rows"
            fold.pr_auc = {model.name: float("nan") for model in all_models()}
            continue
        fitted, stop = splits.early_stopping(train_part, purge=cfg.horizon, spikes=y_train)
        y_val = spikes_of(val_part, threshold)
        fold.spikes, fold.episodes = int(y_val.sum()), episodes(times[y_val == 1], memory)
        for model in all_models():
            # XGBoost early-stops on the fold's last training rows, as in the main split
            fit_model(model, train_part, fitted, stop, threshold, columns)
            fold.pr_auc[model.name] = pr_auc(y_val, model.predict_proba(val_part[columns]))
    return folds


def _drift(table: pd.DataFrame, cfg: TrainConfig, run_id: str, blocks: dict[str, int]) -> dict[str, float]:
    """Evidently drift + quality reports, train vs test and first half vs second half, logged with
    the run ``run_id`` (each feature tested in ``blocks`` of rows: `training.drift.row_blocks`)."""
    train, _, test = splits.chronological(table, purge=cfg.horizon)
    half = len(table) // 2
    pairs = (("train_vs_test", train, test), ("early_vs_late", table[:half], table[half:]))
    with tempfile.TemporaryDirectory() as tmp:
        # one process a report, side by side (training/drift_jobs.py)
        results = run_apart(
            {name: (ref, cur, Path(tmp), name, blocks) for name, ref, cur in pairs}, Path(tmp)
        )
        return tracking.log_drift(run_id, results)
