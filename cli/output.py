"""What the CLI prints of a training run: the model table, the walk-forward folds, why no champion."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from rich.console import Console

from cli.results import print_rows
from tickstore.text import count_of, without_passwords


def mlflow_ui(tracking_uri: str) -> str:
    """Where to look at the runs: a tracking server's own page, else `mlflow ui` over the store
    (`mlflow ui --backend-store-uri http://...` is no command that works)."""
    if tracking_uri.startswith(("http://", "https://")):
        # a page's address, not a command: a password in it is masked, as everywhere tickstore names a
        # store (a browser asks for it; MLflow's client takes it from MLFLOW_TRACKING_PASSWORD)
        return f"{without_passwords(tracking_uri)} in a browser (the tracking server's UI)"
    return f"mlflow ui --backend-store-uri {shlex.quote(tracking_uri)}"  # a home may hold a space


def _score(value: float, digits: int = 3) -> str:
    """A metric, or n/a where it is undefined (NaN: a split without spikes or without calm rows)."""
    return "n/a" if value != value else f"{value:.{digits}f}"


def print_train_report(report: Any, console: Console) -> None:
    """The model comparison table of a training run (honest labels, and leaky ones when trained)."""
    rows = []
    for kind, results in (("honest", report.results), ("leaky shift(-1)", report.leaky)):
        for r in results:
            t = r.test
            interval = "" if t.pr_auc_low != t.pr_auc_low else f" [{t.pr_auc_low:.3f}, {t.pr_auc_high:.3f}]"
            rows.append(
                (
                    kind,
                    r.name,
                    _score(r.validation_pr_auc),
                    _score(t.pr_auc) + interval,
                    _score(t.roc_auc),
                    _score(t.f1),
                    _score(t.precision),
                    _score(t.recall),
                    _score(t.brier, 4),
                    _score(t.base_rate),
                )
            )
    print_rows(
        [
            "labels",
            "model",
            "val PR-AUC",
            "test PR-AUC [95% CI]",
            "ROC-AUC",
            "F1",
            "precision",
            "recall",
            "Brier",
            "base rate",
        ],
        rows,
        title=f"test split ({report.rows['test']:,} rows), lake snapshot {report.snapshot}",
    )
    spikes = report.spikes
    if spikes:
        console.print(
            f"honest spikes (forward vol > {report.threshold:.3g}, the training split's percentile): "
            + ", ".join(
                f"{spikes[k]:,} of {report.rows[k]:,} {k}{_in_episodes(spikes.get(f'{k}_episodes'))}"
                for k in ("train", "validation", "test")
            )
        )
    if spikes.get("test") == 0 and report.rows.get("test"):
        # every test score reads n/a or 0 then; said once rather than left to be taken for a fault
        console.print(
            "the test split has no spike: its PR-AUC and ROC-AUC are undefined (n/a) and F1, precision "
            "and recall 0 for every model; a range reaching further (--end) gives the last 15% of its rows some"
        )
    for line in [*_flagged(report), *_early_stopping(report), *_leans_on(report)]:
        console.print(line)
    if report.champion:
        console.print(f"champion: {report.champion} (registered version {report.champion_version})")
    elif spikes.get("validation") == 0:
        console.print(
            "no champion: the validation split has no spike, so its PR-AUC is undefined (n/a) and cannot "
            "pick a model; train over a longer --start/--end range, or one whose later part is not calmer"
        )
    else:
        console.print(_why_no_champion(report))
    if not report.champion:
        # `tickstore serve` looks for the champion alias: without one it has nothing to load. What no
        # model was promoted over is the rule; the run's best is there for whoever wants it anyway.
        rule, best = report.rule(), report.best_trained()
        if rule is not None and rule.run_id:
            console.print(
                "to serve the z-score rule, which no model was promoted over: "
                f"tickstore serve --model runs:/{rule.run_id}/model"
            )
        if best is not None and best.validation_pr_auc == best.validation_pr_auc:
            console.print(
                f"or this run's {best.name}, best on validation: tickstore serve --model runs:/{best.run_id}/model"
            )
        elif best is not None:  # no validation PR-AUC: none is best, each is there to serve
            trained = [r for r in report.results if r.name != "zscore" and r.run_id]
            console.print(
                "or one of this run's models, which validation can't rank: "
                + "; ".join(f"{r.name}: tickstore serve --model runs:/{r.run_id}/model" for r in trained)
            )


def _in_episodes(found: int | None) -> str:
    """The separate stretches a split's spikes come in, as " (3 episodes)"; nothing when not counted."""
    if not found:
        return ""
    return f" ({found} episode{'s' * (found != 1)})"


def _flagged(report: Any) -> list[str]:
    """A line on the share of test rows each model calls a spike at its threshold; none when unknown."""
    shares = [(r.name, r.test.flagged) for r in report.results if r.test.flagged == r.test.flagged]
    if not shares:
        return []
    base = report.results[0].test.base_rate
    # a threshold set where spikes were far more (or less) common calls a different share of test rows
    val_rows = report.rows.get("validation", 0)
    val_base = (
        f", where {report.spikes.get('validation', 0) / val_rows:.1%} of rows are spikes" if val_rows else ""
    )
    line = (
        f"test rows called a spike at each model's threshold (chosen for F1 on validation{val_base}; "
        f"{base:.1%} of test rows are spikes): " + ", ".join(f"{name} {share:.1%}" for name, share in shares)
    )
    # F1's best on validation rows a model tells little apart is to call every row a spike
    everything = [name for name, share in shares if share >= 0.95]
    if everything:
        verb = "calls" if len(everything) == 1 else "call"
        line += f"; {' and '.join(everything)} {verb} nearly every row one, as F1 on validation was best so"
    return [line]


def _early_stopping(report: Any) -> list[str]:
    """A line on how many trees XGBoost kept, and on how many spikes it chose them; none without it."""
    from training.splits import STOP_SPIKES

    boosted = next((r for r in report.results if r.trees is not None), None)
    if boosted is None or "early_stopping" not in report.rows:
        return []
    rows, spikes = report.rows["early_stopping"], report.spikes["early_stopping"]
    if spikes in (0, rows):
        return [
            f"early stopping: none: the last {rows:,} training rows, held out for it, hold "
            f"{'no spike' if spikes == 0 else 'spikes only'}, so PR-AUC can't rank the rounds; "
            f"{boosted.name} grew {'its 1 tree' if boosted.trees == 1 else f'all {boosted.trees} trees'} on every "
            "training row"
        ]
    line = (
        f"early stopping: {boosted.name} kept {boosted.trees} tree{'s' * (boosted.trees != 1)}, "
        f"by PR-AUC on the last {rows:,} training rows ({spikes:,} spikes)"
    )
    if spikes < STOP_SPIKES:
        line += (
            f"; under {STOP_SPIKES} spikes that count is closer to chance than to fit, and few trees "
            "give few distinct scores: a longer range usually gives it more"
        )
    return [line]


def _leans_on(report: Any, top: int = 3) -> list[str]:
    """A line on the features each trained model leans on most (the z-score rule reads one, by
    definition); none without figures."""
    said = [
        f"{r.name} " + ", ".join(f"{i.feature} {i.added:+.3f}" for i in r.importance[:top])
        for r in report.results
        if r.name != "zscore" and r.importance
    ]
    if not said:
        return []
    line = (
        "leaned on most (validation log loss added when a feature is shuffled; plots/permutation_importance.png "
        "in each run): " + "; ".join(said)
    )
    if report.spikes.get("validation") == 0:
        # shuffled among calm rows only, a feature that tells spikes apart keeps them calm
        line += " (the validation split has no spike, so these figures say little of what tells spikes apart)"
    return [line]


def _why_no_champion(report: Any) -> str:
    """Why no model was promoted, its validation split holding spikes: none beat the z-score rule, or
    the best beat it by a lead its validation rows can't tell from chance."""
    from training.report import PROMOTE_EPISODES, PROMOTE_SHARE
    from training.train import FEATURE_MEMORY

    best, rule = report.best_trained(), report.rule()
    if best is None or rule is None or not best.validation_pr_auc > rule.validation_pr_auc:
        return "no champion: no model beat the z-score rule on validation PR-AUC"
    found = report.spikes.get("validation_episodes", 0)
    if found < PROMOTE_EPISODES:
        spikes = report.spikes["validation"]
        return (
            f"no champion: {best.name}'s validation PR-AUC ({best.validation_pr_auc:.3f}) is above the z-score "
            f"rule's ({rule.validation_pr_auc:.3f}), but the validation split's {spikes:,} "
            f"{'spikes come' if spikes != 1 else 'spike comes'} in {found} separate episode{'s' * (found != 1)} "
            f"({PROMOTE_EPISODES} needed: spikes closer than the widest feature window, "
            f"{FEATURE_MEMORY.total_seconds() / 60:g} min, or the horizon share ticks): too few to tell a lead "
            "from chance; a longer --start/--end range gives validation more"
        )
    # NaN: no resample held both classes, so the lead held in none
    share = best.beats_rule if best.beats_rule == best.beats_rule else 0.0
    return (
        f"no champion: {best.name}'s validation PR-AUC ({best.validation_pr_auc:.3f}) is above the z-score "
        f"rule's ({rule.validation_pr_auc:.3f}), but in only {share:.0%} of block resamples of "
        f"the validation rows ({PROMOTE_SHARE:.0%} needed): a lead they can't tell from chance"
    )


def print_walk_forward(folds: Sequence[Any], console: Console) -> None:
    """The walk-forward folds of `train --folds`: each fold's validation span, spikes and base rate
    (a PR-AUC's chance level), every model's PR-AUC, and how often each trained model led the rule."""
    if not folds:
        return
    names = list(folds[0].pr_auc)
    rows = [
        (
            k,
            _span(fold.start, fold.end),
            fold.train_rows,
            fold.rows,
            fold.skipped or f"{fold.spikes:,}{_in_episodes(fold.episodes)}",
            "" if fold.skipped else _score(fold.base_rate),
            *(_score(fold.pr_auc[name]) for name in names),
        )
        for k, fold in enumerate(folds, 1)
    ]
    print_rows(
        ["fold", "validation (UTC)", "train rows", "rows", "spikes", "base rate", *names],
        rows,
        title=f"walk-forward PR-AUC: {count_of(len(folds), 'purged fold')}, each trained on the rows before it",
    )
    scored = [f for f in folds if f.pr_auc.get("zscore", float("nan")) == f.pr_auc.get("zscore")]
    if not scored:
        console.print("no fold holds both spikes and calm rows: PR-AUC is undefined on each (n/a)")
        return
    leads = ", ".join(
        f"{name} in {sum(f.pr_auc[name] > f.pr_auc['zscore'] for f in scored)} of {len(scored)}"
        for name in names
        if name != "zscore"
    )
    console.print(f"above the z-score rule's PR-AUC: {leads} folds with spikes")


def _span(start: Any, end: Any) -> str:
    """A fold's first and last validation times, to the second, the end's date left out when the same."""
    if start != start or end != end:  # NaT: no rows
        return ""
    same_day = start.date() == end.date()
    return (
        f"{start:%Y-%m-%d %H:%M:%S} - {end:%H:%M:%S}"
        if same_day
        else f"{start:%Y-%m-%d %H:%M:%S} - {end:%Y-%m-%d %H:%M:%S}"
    )
