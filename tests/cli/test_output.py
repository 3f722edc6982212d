"""What the CLI prints: undefined scores read n/a, a missing champion says why, lines stay whole."""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import replace

import pytest
from rich.console import Console

from cli.output import mlflow_ui, print_train_report, print_walk_forward
from training.metrics import Scores
from training.report import Fold, ModelResult, TrainReport

NAN = float("nan")


def scores(pr_auc: float, base_rate: float) -> Scores:
    low, high = (NAN, NAN) if pr_auc != pr_auc else (pr_auc - 0.1, pr_auc + 0.1)
    return Scores(pr_auc, low, high, 0.6, 0.2, 0.3, 0.4, 0.5, 0.04, base_rate, 100)


def report(validation: float, val_spikes: int, episodes: int = 5) -> TrainReport:
    return TrainReport(
        snapshot=3,
        threshold=2.5e-4,
        rows={"train": 700, "validation": 150, "test": 150},
        results=[
            ModelResult("zscore", validation, scores(0.12, 0.05), run_id="r0"),
            ModelResult("logreg", validation, scores(0.21, 0.05), run_id="r1"),
            ModelResult("xgboost", validation - 0.1, scores(0.19, 0.05), run_id="r2"),
        ],
        spikes={
            "train": 35,
            "validation": val_spikes,
            "test": 8,
            "validation_episodes": episodes if val_spikes else 0,
        },
    )


def printed(rep: TrainReport, capsys: pytest.CaptureFixture[str]) -> str:
    out = io.StringIO()
    print_train_report(rep, Console(file=out, width=200))
    return capsys.readouterr().out + out.getvalue()


def test_validation_without_spikes_reads_na_and_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    text = printed(report(NAN, 0), capsys)
    assert "nan" not in text
    assert "│ n/a        │ 0.210 [0.110, 0.310] │" in text
    assert "35 of 700 train, 0 of 150 validation, 8 of 150 test" in text  # no episodes counted

    assert "no champion: the validation split has no spike" in text
    # no model is best on validation then: each trained one is named ("logreg, best on validation" before)
    assert "best on validation" not in text
    assert (
        "or one of this run's models, which validation can't rank: logreg: tickstore serve --model "
        "runs:/r1/model; xgboost: tickstore serve --model runs:/r2/model"
    ) in " ".join(text.split())


def test_the_spikes_line_says_how_many_episodes_each_split_holds(capsys: pytest.CaptureFixture[str]) -> None:
    rep = report(0.3, 6, episodes=1)
    rep.spikes.update(train_episodes=3, test_episodes=2)
    assert "35 of 700 train (3 episodes), 6 of 150 validation (1 episode), 8 of 150 test (2 episodes)" in (
        printed(rep, capsys)
    )


def test_no_champion_with_spikes_names_the_baseline(capsys: pytest.CaptureFixture[str]) -> None:
    text = printed(report(0.3, 4), capsys)
    assert "│ 0.300      │" in text
    assert "no champion: no model beat the z-score rule on validation PR-AUC" in text
    # the scorer looks for the champion alias: say how to serve the rule instead, or the run's best
    assert (
        "to serve the z-score rule, which no model was promoted over: "
        "tickstore serve --model runs:/r0/model" in text
    )
    assert "or this run's logreg, best on validation: tickstore serve --model runs:/r1/model" in text


def test_no_champion_for_a_lead_the_validation_rows_cannot_tell_from_chance(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rep = report(0.3, 4)
    rep.results[0].validation_pr_auc = 0.28  # the rule: logreg leads it by 0.02 ...
    rep.results[1].beats_rule = 0.61  # ... in 61% of the resamples
    text = " ".join(printed(rep, capsys).split())
    assert (
        "no champion: logreg's validation PR-AUC (0.300) is above the z-score rule's (0.280), but in only "
        "61% of block resamples of the validation rows (95% needed): a lead they can't tell from chance"
    ) in text
    assert "to serve the z-score rule" in text and "or this run's logreg" in text


def test_no_champion_for_a_lead_on_too_few_spike_episodes(capsys: pytest.CaptureFixture[str]) -> None:
    rep = report(0.005, 6, episodes=1)
    rep.results[0].validation_pr_auc = 0.004  # the rule: logreg leads ...
    rep.results[1].beats_rule = 1.0  # ... in every resample: each holds the same one episode
    text = " ".join(printed(rep, capsys).split())
    assert (
        "no champion: logreg's validation PR-AUC (0.005) is above the z-score rule's (0.004), but the "
        "validation split's 6 spikes come in 1 separate episode (5 needed: spikes closer than the widest "
        "feature window, 5 min, or the horizon share ticks): too few to tell a lead from chance"
    ) in text
    assert "to serve the z-score rule" in text


def test_one_validation_spike_comes_in_one_episode(capsys: pytest.CaptureFixture[str]) -> None:
    rep = report(0.005, 1, episodes=1)
    rep.results[0].validation_pr_auc = 0.004
    rep.results[1].beats_rule = 1.0
    assert "the validation split's 1 spike comes in 1 separate episode (5 needed" in " ".join(
        printed(rep, capsys).split()
    )


def test_walk_forward_folds_show_their_spikes_and_chance_level(capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime

    def fold(
        hour: int, spikes: int, episodes: int, scores: tuple[float, float, float], skipped: str = ""
    ) -> Fold:
        start = datetime(2025, 12, 6, hour, tzinfo=UTC)
        pr = dict(zip(("zscore", "logreg", "xgboost"), scores, strict=True))
        return Fold(
            start, start.replace(minute=29, second=59), 1000 * hour, 1800, spikes, episodes, pr, skipped
        )

    folds = [
        fold(1, 90, 3, (0.10, 0.20, 0.05)),
        fold(2, 0, 0, (NAN, NAN, NAN)),  # no spike: PR-AUC undefined, left out of the count below
        fold(3, 180, 1, (0.30, 0.25, 0.40)),
        fold(4, 0, 0, (NAN, NAN, NAN), skipped="under 50 rows"),
    ]
    out = io.StringIO()
    print_walk_forward(folds, Console(file=out, width=200))
    text = capsys.readouterr().out + out.getvalue()
    assert "walk-forward PR-AUC: 4 purged folds, each trained on the rows before it" in text
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]
    assert cells == [
        [
            "1",
            "2025-12-06 01:00:00 - 01:29:59",
            "1000",
            "1800",
            "90 (3 episodes)",
            "0.050",
            "0.100",
            "0.200",
            "0.050",
        ],
        ["2", "2025-12-06 02:00:00 - 02:29:59", "2000", "1800", "0", "0.000", "n/a", "n/a", "n/a"],
        [
            "3",
            "2025-12-06 03:00:00 - 03:29:59",
            "3000",
            "1800",
            "180 (1 episode)",
            "0.100",
            "0.300",
            "0.250",
            "0.400",
        ],
        ["4", "2025-12-06 04:00:00 - 04:29:59", "4000", "1800", "under 50 rows", "", "n/a", "n/a", "n/a"],
    ]
    assert "above the z-score rule's PR-AUC: logreg in 1 of 2, xgboost in 1 of 2 folds with spikes" in text


def test_walk_forward_without_a_scored_fold_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime

    t = datetime(2025, 12, 6, tzinfo=UTC)
    nan3 = dict.fromkeys(("zscore", "logreg", "xgboost"), NAN)
    out = io.StringIO()
    print_walk_forward([Fold(t, t, 40, 40, 0, 0, nan3, "under 50 rows")], Console(file=out, width=200))
    assert "no fold holds both spikes and calm rows" in out.getvalue()


def test_a_champion_needs_no_serving_hint(capsys: pytest.CaptureFixture[str]) -> None:
    rep = report(0.3, 4)
    rep.champion, rep.champion_version = "logreg", "2"
    text = printed(rep, capsys)
    assert "champion: logreg (registered version 2)" in text and "to serve" not in text


def test_undefined_test_scores_drop_the_interval(capsys: pytest.CaptureFixture[str]) -> None:
    rep = report(0.3, 4)
    rep.results[1].test = scores(NAN, 0.0)
    text = printed(rep, capsys)
    assert "│ n/a                  │" in text
    assert "the test split has no spike" not in text  # it has 8


def test_a_test_split_without_spikes_says_why_its_scores_read_na(capsys: pytest.CaptureFixture[str]) -> None:
    rep = report(0.3, 4)
    rep.spikes["test"] = 0
    rep.results = [replace(r, test=scores(NAN, 0.0)) for r in rep.results]
    assert "the test split has no spike: its PR-AUC and ROC-AUC are undefined (n/a)" in " ".join(
        printed(rep, capsys).split()
    )


def test_the_console_keeps_long_lines_whole_in_a_pipe() -> None:
    """A command printed for pasting stays on one line when stderr is a pipe (rich wrapped at 80)."""
    line = "MLflow: mlflow ui --backend-store-uri sqlite:///" + "x" * 120 + "/mlflow.db"
    code = f"from cli.context import console; console.print({line!r})"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stderr.splitlines() == [line]


def test_the_demo_serves_the_champion_else_the_z_score_rule() -> None:
    from cli.live import CHAMPION, _model_uri

    rep = report(0.3, 4)
    assert _model_uri(rep) == "runs:/r0/model"  # not logreg, though it ranks first on validation
    rep.champion = "logreg"
    assert _model_uri(rep) == CHAMPION
    assert _model_uri(None) is None
    assert _model_uri(report(NAN, 0)) == "runs:/r0/model"  # no split can rank them


def test_early_stopping_names_the_trees_kept_and_warns_of_few_spikes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rep = report(0.3, 4)
    assert "early stopping" not in printed(rep, capsys)  # a report without it (before stop 43)
    rep.results[2].trees = 2
    rep.rows["early_stopping"], rep.spikes["early_stopping"] = 876, 7
    text = " ".join(printed(rep, capsys).split())
    assert "early stopping: xgboost kept 2 trees, by PR-AUC on the last 876 training rows (7 spikes);" in text
    assert "under 30 spikes that count is closer to chance than to fit" in text
    rep.results[2].trees, rep.spikes["early_stopping"] = 1, 30
    text = " ".join(printed(rep, capsys).split())
    assert "xgboost kept 1 tree, by PR-AUC on the last 876 training rows (30 spikes)" in text
    assert "closer to chance" not in text
    # held-out rows without a spike: nothing to stop on, every tree grown
    rep.results[2].trees, rep.spikes["early_stopping"] = 400, 0
    text = " ".join(printed(rep, capsys).split())
    assert (
        "early stopping: none: the last 876 training rows, held out for it, hold no spike, so PR-AUC "
        "can't rank the rounds; xgboost grew all 400 trees on every training row"
    ) in text
    rep.results[2].trees = 1
    assert "xgboost grew its 1 tree on every training row" in " ".join(printed(rep, capsys).split())


def test_the_share_each_model_calls_a_spike_and_one_that_calls_every_row_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rep = report(0.3, 4)
    assert "called a spike" not in printed(rep, capsys)  # scores without the share (before stop 43)
    for r, share in zip(rep.results, (0.12, 0.301, 1.0), strict=True):
        r.test = replace(r.test, flagged=share)
    text = " ".join(printed(rep, capsys).split())
    assert (
        "test rows called a spike at each model's threshold (chosen for F1 on validation, where 2.7% of "
        "rows are spikes; 5.0% of test rows are spikes): zscore 12.0%, logreg 30.1%, xgboost 100.0%; xgboost calls nearly every row one"
        in text
    )
    rep.results[1].test = replace(rep.results[1].test, flagged=0.96)
    assert "logreg and xgboost call nearly every row one" in " ".join(printed(rep, capsys).split())


def test_what_each_trained_model_leans_on_is_its_top_three(capsys: pytest.CaptureFixture[str]) -> None:
    from training.importance import Importance

    rep = report(0.3, 6)
    assert "leaned on most" not in printed(rep, capsys)  # a report without figures (before stop 51)
    ranked = [("ret_std_60s", 0.2104), ("spread_bps_mean_10s", 0.05), ("tick_count_300s", 0.0), ("x", -0.001)]
    for r in rep.results:
        r.importance = [Importance(f, v, 0.001) for f, v in ranked]
    text = " ".join(printed(rep, capsys).split())
    # the z-score rule reads one feature by definition: left out
    assert (
        "leaned on most (validation log loss added when a feature is shuffled; plots/permutation_importance.png "
        "in each run): logreg ret_std_60s +0.210, spread_bps_mean_10s +0.050, tick_count_300s +0.000; "
        "xgboost ret_std_60s +0.210, spread_bps_mean_10s +0.050, tick_count_300s +0.000"
    ) in text
    assert "say little" not in text
    rep.spikes["validation"] = 0
    assert "(the validation split has no spike, so these figures say little" in " ".join(
        printed(rep, capsys).split()
    )


def test_where_to_look_at_the_runs_depends_on_the_tracking_uri() -> None:
    # a tracking server's URI was printed as `mlflow ui --backend-store-uri http://...`, which MLflow
    # can't open as a store: the server has a page of its own
    assert (
        mlflow_ui("http://127.0.0.1:5000") == "http://127.0.0.1:5000 in a browser (the tracking server's UI)"
    )
    assert (
        mlflow_ui("https://mlflow.example")
        == "https://mlflow.example in a browser (the tracking server's UI)"
    )
    # a page's address with a password in it: shown masked, as tickstore names every store
    assert mlflow_ui("http://me:s3cret@mlflow.example:5000") == (
        "http://me:***@mlflow.example:5000 in a browser (the tracking server's UI)"
    )
    for store in ("sqlite:////home/u/.tickstore/mlflow/mlflow.db", "postgresql://u@db/mlflow"):
        assert mlflow_ui(store) == f"mlflow ui --backend-store-uri {store}"
    # a home with a space: a command to paste, quoted
    spaced = "sqlite:////home/u/my data/mlflow/mlflow.db"
    assert mlflow_ui(spaced) == f"mlflow ui --backend-store-uri '{spaced}'"
