"""`tickstore train` end to end on simulated ticks: models, MLflow runs and artifacts, champion, determinism."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from ingest import simulate
from tests.tickstore_feast.conftest import load
from tickstore.settings import Settings
from training import tracking
from training.parquet import read_parquet
from training.train import TrainConfig, honest_table, train

START = datetime(2026, 1, 1, tzinfo=UTC)
STEPS: list[str] = []  # what the fixture's first train said was at work, in order


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    s = Settings(home=tmp_path_factory.mktemp("train") / "home")
    # ~10 h of three products, so every split holds volatile regimes (and spikes)
    load(s, simulate.tick_table(simulate.SimConfig(n_ticks=400_000, start=START.timestamp(), seed=3)))
    cfg = TrainConfig(START, START + timedelta(hours=9), every=timedelta(seconds=10), leaky_labels=True)
    first = train(s, cfg, log=lambda _: None, step=STEPS.append)
    again = train(s, cfg, log=lambda _: None)
    return s, cfg, first, again


@pytest.mark.slow
def test_three_models_with_finite_test_metrics_on_purged_splits(trained) -> None:  # type: ignore[no-untyped-def]
    _, _, report, _ = trained
    assert [r.name for r in report.results] == ["zscore", "logreg", "xgboost"]
    assert all(r.run_id and r.model_uri.startswith("models:/") for r in report.results)  # the rule too
    for r in report.results:
        assert 0 <= r.test.pr_auc <= 1 and r.test.pr_auc_low <= r.test.pr_auc <= r.test.pr_auc_high
        assert 0 < r.test.base_rate < 1 and math.isfinite(r.test.brier)
    assert report.rows["train"] > report.rows["validation"] > 0 and report.rows["test"] > 0
    # spikes are the rows above the training split's 95th percentile: ~5% of train, counted per split
    assert 0.04 * report.rows["train"] < report.spikes["train"] <= 0.05 * report.rows["train"] + 1
    assert report.spikes["test"] == round(report.results[0].test.base_rate * report.rows["test"])


@pytest.mark.slow
def test_train_says_what_is_at_work_step_by_step(trained) -> None:  # type: ignore[no-untyped-def]
    _, _, report, _ = trained
    models = [f"{name} ({n} of 3): fitting, scoring, logging to MLflow" for n, name in enumerate(
        ["zscore", "logreg", "xgboost"], 1)]  # fmt: skip
    assert STEPS == [
        "MLflow: opening the tracking store",
        f"training set: labels and point-in-time features at lake snapshot {report.snapshot}",
        *(f"honest labels: {m}" for m in models),
        "drift reports: Evidently, train vs test and early vs late, side by side",
        "leaky labels: per-tick rows, the next tick's volatility",
        *(f"leaky labels: {m}" for m in models),
    ]


@pytest.mark.slow
def test_same_snapshot_and_config_give_identical_metrics(trained) -> None:  # type: ignore[no-untyped-def]
    _, _, first, again = trained
    assert again.snapshot == first.snapshot and again.threshold == first.threshold
    assert [r.test for r in again.results] == [r.test for r in first.results]


@pytest.mark.slow
def test_leaky_labels_look_far_better_than_honest_ones(trained) -> None:  # type: ignore[no-untyped-def]
    s, _, report, _ = trained
    # shift(-1) labels are the next tick's 60 s volatility: almost the feature itself. (ROC-AUC, not
    # PR-AUC: the simulated test hours can be calm, and PR-AUC over a handful of spikes is noise.)
    honest = {r.name: r.test.roc_auc for r in report.results}
    leaky = {r.name: r.test.roc_auc for r in report.leaky}
    assert leaky["zscore"] > 0.97 and leaky["zscore"] > honest["zscore"]
    # and MLflow has them beside the honest runs' (the leaky runs had params and plots, no metrics)
    tracking.setup(s)
    for r in report.leaky:
        run = MlflowClient().get_run(r.run_id)
        assert run.data.tags["mlflow.runName"] == f"leaky-{r.name}"
        assert run.data.metrics["test_roc_auc"] == r.test.roc_auc
        assert run.data.metrics["test_pr_auc"] == r.test.pr_auc


@pytest.mark.slow
def test_runs_params_artifacts_and_champion_in_mlflow(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    s, _, report, again = trained
    tracking.setup(s)
    client = MlflowClient()
    run = client.get_run(report.results[2].run_id)
    assert run.data.params["snapshot"] == str(report.snapshot) and "sql_sha256_ticks_60s" in run.data.params
    assert re.fullmatch(r"[0-9a-f]{64}:[0-9a-f]{64}", run.data.params["sql_fingerprint_ticks_60s"])
    sql = {a.path for a in client.list_artifacts(run.info.run_id, "sql")}
    assert sql == {"sql/ticks_10s.sql", "sql/ticks_60s.sql", "sql/ticks_300s.sql"}
    assert run.data.params["spikes_validation"] == str(report.spikes["validation"])
    # the trees XGBoost kept, and the held-out training rows it stopped on (the last of them, purged)
    assert run.data.params["trees"] == str(report.results[2].trees) and report.results[2].trees >= 1
    assert [r.trees for r in report.results[:2]] == [None, None]
    # the last 15% of the training rows, or more where they hold under 30 spikes (half at most)
    assert 0.15 * report.rows["train"] <= report.rows["early_stopping"] <= 0.5 * report.rows["train"]
    assert (
        report.spikes["early_stopping"] >= 30 or report.rows["early_stopping"] > 0.49 * report.rows["train"]
    )
    assert run.data.params["spikes_early_stopping"] == str(report.spikes["early_stopping"])
    assert "test_pr_auc" in run.data.metrics and "val_pr_auc" in run.data.metrics
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {
        "plots/pr_curve.png",
        "plots/calibration.png",
        "plots/confusion_matrix.png",
        "plots/permutation_importance.png",
    }
    # every feature by the validation log loss its shuffle adds, as the report holds them
    logged = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/permutation_importance.json")
    found = report.results[2].importance
    assert list(logged) == [i.feature for i in found] and len(found) == 27
    assert logged[found[0].feature] == {"log_loss_added": found[0].added, "spread": found[0].spread}
    assert (
        found[0].added > 5 * found[0].spread > 0
    )  # XGBoost leans on something, beyond what a shuffle can do
    # the z-score rule reads its one feature alone: shuffling any other changes nothing
    rule = report.results[0].importance
    assert rule[0].feature == "ret_std_60s" and rule[0].added > 0
    assert all(i.added == 0 for i in rule[1:])
    # the two Evidently reports (made in processes of their own) on the first run
    first = client.get_run(report.results[0].run_id)
    drift = {a.path for a in client.list_artifacts(first.info.run_id, "drift")}
    pairs = ("train_vs_test", "early_vs_late")
    assert drift == {f"drift/{name}.{kind}" for name in pairs for kind in ("html", "json")}
    for name in pairs:
        assert first.data.metrics[f"drift_share_{name}"] == report.drift_share[name]
        assert 0 <= report.drift_share[name] <= 1
    zscore = report.results[0].validation_pr_auc
    assert math.isnan(report.results[0].beats_rule)  # the rule is not compared with itself
    assert all(0 <= r.beats_rule <= 1 for r in report.results[1:])
    assert run.data.metrics["val_beats_rule_share"] == report.results[2].beats_rule
    if report.champion:
        best = next(r for r in report.results if r.name == report.champion)
        # ahead of the rule, in at least 95% of the block resamples of the validation rows, whose
        # spikes come in 5 separate episodes at least
        assert best.validation_pr_auc > zscore and best.beats_rule >= 0.95
        assert report.spikes["validation_episodes"] >= 5
        # into the test's folder: MLflow's own temporary one is never removed
        model = mlflow.pyfunc.load_model(
            f"models:/{tracking.REGISTERED_MODEL}@champion", dst_path=str(tmp_path)
        )
        assert model is not None
        # registered from the logged model itself, and still traced to its run (serving reads its tags);
        # the alias is the second training's, which ran last
        latest = next(r for r in again.results if r.name == again.champion)
        version = client.get_model_version_by_alias(tracking.REGISTERED_MODEL, "champion")
        assert version.run_id == latest.run_id and version.source.startswith("models:/m-")
    else:
        best = report.best_trained()
        assert best is not None and (
            best.validation_pr_auc <= zscore
            or best.beats_rule < 0.95
            or report.spikes["validation_episodes"] < 5
        )
    assert run.data.params["spikes_validation_episodes"] == str(report.spikes["validation_episodes"])


@pytest.mark.slow
def test_cli_train_takes_minute_times_and_folds(trained) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from cli.main import main
    from tests.cli.helpers import env_for

    s, _, _, _ = trained
    # times without seconds, as `tickstore --help` writes them
    args = [
        "train",
        "--start",
        "2026-01-01T00:00",
        "--end",
        "2026-01-01T03:00",
        "--every",
        "10",
        "--folds",
        "2",
    ]
    run = CliRunner().invoke(main, args, env=env_for(s))
    assert run.exit_code == 0, run.output
    # the folds as a table: a row each, with its spikes and chance level beside every model's PR-AUC
    assert "walk-forward PR-AUC: 2 purged folds, each trained on the rows before it" in run.output
    header = next(line for line in run.output.splitlines() if "validation (UTC)" in line)
    assert [c.strip() for c in header.split("┃")[1:-1]] == [
        "fold", "validation (UTC)", "train rows", "rows", "spikes", "base rate", "zscore", "logreg", "xgboost"
    ]  # fmt: skip
    folds = [line for line in run.output.splitlines() if re.match(r"│ +[12] │ 2026-01-01 ", line)]
    assert len(folds) == 2
    assert re.search(
        r"above the z-score rule's PR-AUC: logreg in \d of \d, xgboost in \d of \d folds", run.output
    )
    # and in MLflow fold by fold (its UI plots a metric by step), on the run's first model run
    (logged,) = mlflow.search_runs(
        search_all_experiments=True, filter_string="metrics.walk_forward_base_rate >= 0", output_format="list"
    )
    for metric in ("walk_forward_base_rate", "walk_forward_pr_auc_zscore", "walk_forward_pr_auc_xgboost"):
        assert [m.step for m in MlflowClient().get_metric_history(logged.info.run_id, metric)] == [1, 2]
    # and drawn: PR-AUC by fold beside the base rate
    plots = [a.path for a in MlflowClient().list_artifacts(logged.info.run_id, "plots")]
    assert "plots/walk_forward.png" in plots
    # what each trained model leans on most, its top three features by the log loss their shuffle adds
    leans = " ".join(run.output.split())
    assert re.search(
        r"leaned on most \(validation log loss added when a feature is shuffled; .*\): "
        r"logreg (\w+ [+-]\d\.\d{3}, ){2}\w+ [+-]\d\.\d{3}; xgboost (\w+ [+-]\d\.\d{3}, ){2}\w+ [+-]\d\.\d{3}",
        leans,
    ), leans
    # the drift shares of the run's two reports, at a glance
    assert re.search(
        r"features drifted \(block K-S test, .*\): train vs test \d+%, early vs late \d+%", run.output
    )
    # where the plots are: the report names MLflow's UI on this home's store
    assert f"plots, reports and models: mlflow ui --backend-store-uri {s.mlflow_tracking_uri()}" in " ".join(
        run.output.split()
    )


def _drift_workers_of(parent: int) -> bool:
    """Whether `training.drift_jobs` workers of process ``parent`` run (from /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid == parent and b"training.drift_jobs" in (stat.parent / "cmdline").read_bytes():
                return True
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
    return False


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "code", "said"), [(signal.SIGINT, 1, "stopped"), (signal.SIGTERM, 143, "terminated (SIGTERM)")]
)
def test_ctrl_c_or_kill_marks_the_runs_logged_so_far_killed_and_promotes_nothing(  # type: ignore[no-untyped-def]
    trained, sig: signal.Signals, code: int, said: str
) -> None:
    from tests.cli.helpers import env_for
    from training.runs import logged_models

    s, _, _, _ = trained
    before = {
        run.info.run_id for run in mlflow.search_runs(search_all_experiments=True, output_format="list")
    }
    args = ["train", "--start", "2026-01-01T00:00", "--end", "2026-01-01T03:00", "--every", "10"]
    # a session of its own, so that its group can be signalled as a terminal's Ctrl-C signals it; and
    # SIGINT as a terminal's foreground process has it: a job started in the background by a script
    # (CI's, say) inherits it ignored, and Python then never raises KeyboardInterrupt. Set by the child
    # itself: a preexec_fn makes Python fork this whole test process, which CI's machine refused (ENOMEM)
    as_foreground = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    proc = subprocess.Popen(
        [sys.executable, "-c", as_foreground + "from cli.main import main; main()", *args],
        env=env_for(s), text=True, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not _drift_workers_of(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    # the three models are logged and the drift reports' workers starting up (each printed a
    # KeyboardInterrupt traceback); one landing in a finalizer, as it did at times while the scores
    # were logged, is tests/core/test_stopping.py's
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # as a terminal does
    else:
        os.kill(proc.pid, sig)  # as `kill` does (SIGTERM ended it, runs left RUNNING, until stop 57)
    new = {r.info.run_id for r in mlflow.search_runs(search_all_experiments=True, output_format="list")}
    new -= before
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, (out, err)
    assert f"{said}: nothing promoted" in err and "Traceback" not in err, err
    assert "the 3 model run(s) logged so far are marked KILLED in MLflow" in " ".join(err.split()), err
    # they ended FINISHED, and `tickstore models` listed them without scores
    client = MlflowClient()
    assert len(new) == 3 and {client.get_run(run_id).info.status for run_id in new} == {"KILLED"}
    assert not new & {m.uri.split("/")[1] for m in logged_models(s, 100)}


@pytest.mark.slow
def test_training_sets_of_other_rows_keep_their_own_files(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # named by the snapshot alone, the second set replaced the first: its run's manifest named other rows
    s, cfg, report, _ = trained
    nine, nine_path = honest_table(s, cfg, report.snapshot, tmp_path)
    one, one_path = honest_table(s, replace(cfg, end=START + timedelta(hours=1)), report.snapshot, tmp_path)
    assert one_path != nine_path and len(one) < len(nine)
    assert len(read_parquet(nine_path)) == len(nine)
    hourly = replace(cfg, every=timedelta(hours=1))
    assert honest_table(s, hourly, report.snapshot, tmp_path)[1] not in (one_path, nine_path)
    assert honest_table(s, cfg, report.snapshot, tmp_path)[1] == nine_path  # the same rows: the same file
    span = "20260101T000000_20260101T090000"
    assert nine_path.name == f"train_{report.snapshot}_{span}_every10s_h60s_volatility_model.parquet"


def test_too_few_rows_says_where_the_rows_are_and_the_step(trained) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from cli.main import main
    from tests.cli.helpers import env_for

    s, _, _, _ = trained
    args = ["train", "--start", "2026-01-01T00:00", "--end", "2026-01-01T01:00", "--every", "60"]
    run = CliRunner().invoke(main, args, env=env_for(s))
    said = " ".join(run.output.split())
    assert run.exit_code != 0 and "too few labeled rows to train" in said, run.output
    # a range that already held every tick (a sparse recording) was told to be "longer"
    assert "labeled rows run from 2026-01-01 00:0" in said and "to 2026-01-01 00:5" in said, said
    assert "or a smaller --every (now 60 s)" in said, said
    # enough rows, but too short a range: the horizon purged before each boundary empties a split,
    # and more rows a second would not help
    args = ["train", "--start", "2026-01-01T00:00", "--end", "2026-01-01T00:05", "--every", "1"]
    run = CliRunner().invoke(main, args, env=env_for(s))
    said = " ".join(run.output.split())
    assert run.exit_code != 0 and " 0 validation" in said, said
    assert "the 1 min before each split boundary is dropped" in said and "--every" not in said, said
    # a range without ticks says where they are
    args = ["train", "--start", "2030-01-01T00:00", "--end", "2030-01-01T01:00"]
    run = CliRunner().invoke(main, args, env=env_for(s))
    said = " ".join(run.output.split())
    assert (
        run.exit_code != 0 and "no labels in [2030-01-01 00:00:00+00:00, 2030-01-01 01:00:00+00:00)" in said
    )
    assert "(the lake's ticks run from 2026-01-01 00:00:" in said, said
    # a horizon past the lake's last tick leaves no label either: the error says what a label needs
    args = ["train", "--start", "2026-01-01T00:00", "--end", "2026-01-01T00:30", "--horizon", "1d"]
    said = " ".join(CliRunner().invoke(main, args, env=env_for(s)).output.split())
    assert "no labels in" in said and "needs ticks through t + the horizon (86400 s)" in said, said
    # a range of millennia is labeled where the ticks are (it was every second of it: no answer in 5
    # minutes), and more folds than the rows bear are refused before any model is fitted (a million looped)
    args = ["train", "--start", "0001-01-01", "--end", "9999-12-31", "--every", "60", "--folds", "1000000"]
    said = " ".join(CliRunner().invoke(main, args, env=env_for(s)).output.split())
    assert re.search(r"training set: 1,3\d\d rows .*_00010101T000000_99991231T000000_every60s", said), said
    assert re.search(
        r"--folds 1000000: [\d,]+ labeled rows cut into 1,000,001 parts .*use at most --folds \d+$", said
    )


@pytest.mark.slow
def test_cli_train_on_a_new_mlflow_store_prints_no_mlflow_logs(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from tests.cli.helpers import env_for
    from tests.conftest import REPO

    s, _, _, _ = trained
    env = env_for(s) | {"TICKSTORE_MLFLOW_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    args = ["train", "--start", "2026-01-01T00:00", "--end", "2026-01-01T03:00", "--every", "60"]
    run = subprocess.run(
        [sys.executable, "-m", "cli", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "mlflow.db").exists()
    # MLflow sets its logger's level when imported, after the CLI had quieted it
    # ("Creating initial MLflow database tables...", from the logger mlflow.store.db.utils)
    assert "mlflow.store" not in run.stderr and "database tables" not in run.stderr, run.stderr


@pytest.mark.slow
def test_no_drift_reports_skips_evidently_and_says_so_with_the_run(trained) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from cli.main import main
    from tests.cli.helpers import env_for

    s, _, _, _ = trained
    args = ["train", "--start", "2026-01-01T00:00", "--end", "2026-01-01T03:00", "--every", "60"]
    run = CliRunner().invoke(main, [*args, "--no-drift-reports"], env=env_for(s))
    assert run.exit_code == 0, run.output
    assert "features drifted" not in run.output
    tracking.setup(s)
    client = MlflowClient()
    # this run's three model runs, the rule's first
    runs = mlflow.search_runs(
        search_all_experiments=True, order_by=["start_time DESC"], max_results=3, output_format="list"
    )
    rule = min(runs, key=lambda r: r.info.start_time)
    assert rule.data.tags["drift"] == "not made: tickstore train --no-drift-reports"
    assert not client.list_artifacts(rule.info.run_id, "drift")
    assert "drift_share_train_vs_test" not in rule.data.metrics
