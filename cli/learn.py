"""Learning from the lake: `tickstore train` and `tickstore monitor` (training sets: cli/dataset.py)."""

from __future__ import annotations

import dataclasses
import re
import shlex
import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path

import click
from rich.markup import escape

from cli.context import SECONDS, Number, OutPath, console, format_option, settings_of
from cli.interrupt import interrupted
from cli.ranges import AS_OF, WHEN, WHEN_SHOWN, range_needed, snapshot_of
from tickstore import catalog, lake, stopping
from tickstore.text import count_of, without_passwords


@click.command()
@click.option("--start", type=WHEN, metavar=WHEN_SHOWN, help="UTC start (required).")
@click.option("--end", type=WHEN, metavar=WHEN_SHOWN, help="UTC end, exclusive (required).")
@click.option(
    "--every",
    type=SECONDS,
    default=1.0,
    show_default=True,
    help="Seconds between label rows (or 500ms, 10s).",
)
@click.option(
    "--horizon", type=SECONDS, default=60.0, show_default=True, help="Label horizon H, seconds (or 5m)."
)
@click.option(
    "--percentile",
    type=Number(0, 100, min_open=True, max_open=True),
    default=95.0,
    show_default=True,
    help="Spike threshold (training split).",
)
@click.option(
    "--as-of",
    "as_of",
    type=AS_OF,
    help="Train on this lake snapshot, or the lake as it was at this UTC time (reproduce a run).",
)
@click.option("--leaky-labels", is_flag=True, help="Also train on shift(-1) labels, to show the leak.")
@click.option(
    "--folds",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Also purged walk-forward cross-validation over this many folds: each fold's spikes, base rate "
    "and every model's PR-AUC.",
)
@click.option(
    "--no-drift-reports",
    is_flag=True,
    help="Skip Evidently's two drift reports (half of a short run's time), as while trying settings; "
    "`tickstore monitor drift` makes one for any two ranges.",
)
@click.pass_context
def train(
    ctx: click.Context,
    start: datetime | None,
    end: datetime | None,
    every: float,
    horizon: float,
    percentile: float,
    as_of: int | datetime | None,
    leaky_labels: bool,
    folds: int,
    no_drift_reports: bool,
) -> None:
    """Train the z-score rule, logistic regression and XGBoost on honest forward labels; log to MLflow.

    Labels are the realized volatility over (t, t + H] from ticks strictly after t; splits are
    chronological 70/15/15 with an H purge. The best model becomes the `champion` alias only if it
    beats the z-score rule on validation PR-AUC beyond chance; else the runs:/ URI of the rule (and
    of the best) is printed, to serve with `tickstore serve --model URI`; `tickstore models` lists
    every model logged so far.
    """

    from cli.output import mlflow_ui, print_train_report, print_walk_forward
    from training.train import TrainConfig
    from training.train import train as run_training

    if start is None or end is None:  # not click's `required`: the error names ranges that have ticks
        raise range_needed(ctx, "tickstore train", "tickstore train")
    try:
        cfg = TrainConfig(
            start,
            end,
            timedelta(seconds=every),
            timedelta(seconds=horizon),
            percentile,
            as_of=snapshot_of(ctx, as_of),
            leaky_labels=leaky_labels,
            folds=folds,
            drift_reports=not no_drift_reports,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        # Ctrl-C and `kill` alike mark the runs logged so far, and neither is lost (tickstore/stopping.py)
        with (
            stopping.stops_on_signals(),
            console.status("training (features, labels, three models, MLflow) ...") as status,
        ):
            report = run_training(
                settings_of(ctx), cfg, log=console.print, step=lambda text: status.update(f"{text} ...")
            )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    except (KeyboardInterrupt, RuntimeError) as exc:
        if not interrupted(exc):
            raise
        killed = isinstance(exc, stopping.Terminated) or isinstance(exc.__cause__, stopping.Terminated)
        # train has said what became of the runs it logged
        console.print(
            f"{'terminated (SIGTERM)' if killed else 'stopped'}: nothing promoted "
            "(`tickstore models` lists finished runs only)"
        )
        if killed:
            ctx.exit(128 + signal.SIGTERM)  # as a shell reports a process SIGTERM ended
        raise click.Abort from None
    print_train_report(report, console)
    if report.drift_share:  # the reports themselves are in MLflow; the share is worth a glance here
        shares = ", ".join(
            f"{name.replace('_', ' ')} {share:.0%}" for name, share in report.drift_share.items()
        )
        console.print(f"features drifted (block K-S test, Evidently's reports in MLflow): {shares}")
    print_walk_forward(report.walk_forward, console)
    s = settings_of(ctx)
    # the curves, confusion matrices, drift reports and models are in MLflow, not on the screen
    console.print(f"plots, reports and models: {mlflow_ui(s.mlflow_tracking_uri())}")


@click.command()
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=50_000),  # MLflow's most runs in one search: past it, a traceback
    default=12,
    show_default=True,
    help="Model runs shown, newest first.",
)
@format_option("table: for reading; csv: with a header; json: one object per line.")
@click.pass_context
def models(ctx: click.Context, limit: int, fmt: str) -> None:
    """The models `tickstore train` logged, newest first: range, scores, the champion, and the URI to
    serve each by (`tickstore serve --model URI`).

    Each train run logs three models (the z-score rule, logistic regression, XGBoost; three more
    with --leaky-labels). Scores are on the run's own test split, so compare runs over the same
    range. Plots, reports and the models themselves: `mlflow ui`, as `tickstore train` prints it.
    """
    from cli.results import print_rows
    from training.runs import COLUMNS, FIELDS, logged_models

    s = settings_of(ctx)
    found = logged_models(s, limit)
    if not found:
        said = f"no models yet in {without_passwords(s.mlflow_tracking_uri())}: `tickstore train` logs them"
        if (beside := catalog.stray_home(s)) is not None and s.mlflow_uri is None:
            said += (
                f" (this folder has no data directory; the source tree's is {beside}: "
                f"`--home {shlex.quote(str(beside))}`)"
            )
        console.print(said)
        return
    if fmt == "table":
        print_rows(COLUMNS, [m.shown() for m in found], fmt)
    else:
        print_rows(FIELDS, [m.row() for m in found], fmt)


# -- monitor ------------------------------------------------------------------------------------
@click.group()
def monitor() -> None:
    """Watch the features: drift between time ranges (gates retraining)."""


def _time_range(ctx: click.Context, param: click.Parameter, text: str) -> tuple[datetime, datetime]:
    """START..END (or ISO 8601's START/END) as two UTC times, each read as --start is (an option
    callback: a mistake names its option before any work)."""
    parts = text.split("..") if ".." in text else text.split("/")
    if len(parts) != 2:
        raise click.BadParameter(f"use START..END, e.g. 2025-12-06T06:00..2025-12-06T08:00, not {text!r}")
    start, end = (WHEN.convert(p, param, ctx) for p in parts)
    if end <= start:
        raise click.BadParameter(f"the range is empty: {_iso(end)} is not after {_iso(start)}")
    return start, end


def _iso(when: datetime) -> str:
    """A UTC time to the second, as ISO 8601 writes it (strftime's %Y writes year 1 as "1")."""
    return when.replace(tzinfo=None).isoformat(timespec="seconds")


def _overlap(reference: tuple[datetime, datetime], current: tuple[datetime, datetime]) -> str | None:
    """What to tell a user whose two ranges share time, or None: rows there are in both samples, and
    the test then finds drift only in the rest (a gate over "the last week" against "the last day"
    tests six days against one, with that day in both)."""
    start, end = max(reference[0], current[0]), min(reference[1], current[1])
    if end <= start:
        return None
    shared = (end - start) / (current[1] - current[0])
    return (
        f"note: the ranges share {_iso(start)}..{_iso(end)} ({shared:.0%} of "
        "--current): its rows are in both, which hides drift there; for a sharper test give ranges "
        "that do not overlap"
    )


MIN_DRIFT_ROWS = 30  # below this a two-sample test passes almost anything


class _NoVerdict(click.ClickException):
    """Nothing to compare: exit 2 like a usage error, since 1 means "drifted" to a retraining gate."""

    exit_code = 2


@monitor.command("drift")
@click.option(
    "--reference",
    required=True,
    callback=_time_range,
    help="Reference range START..END (UTC, ISO; START/END too).",
)
@click.option("--current", required=True, callback=_time_range, help="Current range, the same way.")
@click.option(
    "--every", type=SECONDS, default=10.0, show_default=True, help="Seconds between sampled rows (or 1m)."
)
@click.option(
    "--max-share",
    type=Number(0, 1),
    default=0.5,
    show_default=True,
    help="Exit 1 when more than this share of features drifted.",
)
@click.option(
    "--out",
    "-o",
    type=OutPath(path_type=Path, file_okay=False),
    help="Report folder (default: TICKSTORE_HOME/reports/drift_<current range>, one per range compared).",
)
@click.pass_context
def monitor_drift(
    ctx: click.Context,
    reference: tuple[datetime, datetime],
    current: tuple[datetime, datetime],
    every: float,
    max_share: float,
    out: Path | None,
) -> None:
    """Evidently drift + quality report between the features of two time ranges.

    Each feature is tested by a block K-S test: rows closer than a window share its ticks, so blocks
    of them (twice the window long) are dealt between the ranges, not single rows. A range too short
    to hold 5 blocks of a feature leaves it untested (hours, not minutes, for the 300 s views).

    Exit code 0: drift at or below --max-share; 1: above it (retrain); 2: usage error, or nothing to
    compare (a range without ticks, no lake).
    """

    from training import dataset as ds
    from training.drift import META, drift_report, row_blocks
    from training.parquet import read_parquet

    s = settings_of(ctx)
    # a folder per current range: each day's gate run keeps its report (one drift.html was overwritten)
    stamp = "_".join(re.sub("[-:]", "", _iso(t)) for t in current)
    folder = out or s.home / "reports" / f"drift_{stamp}"
    if note := _overlap(reference, current):
        console.print(note)
    frames = []
    try:
        for label, (start, end) in (("reference", reference), ("current", current)):
            console.print(f"{label}: features every {every:g} s over {_iso(start)}..{_iso(end)} ...")
            path = folder / f"{label}.parquet"  # the rows compared, beside the report
            try:
                manifest = ds.build(s, ds.Grid(start, end, timedelta(seconds=every)), path)
            except ValueError as exc:
                raise ValueError(f"--{label}: {exc}") from exc
            frame = read_parquet(path)
            # rows in a gap of the data (or past every view's TTL) have no feature value to compare
            valued = int(frame.drop(columns=[c for c in META if c in frame]).notna().any(axis=1).sum())
            if valued < MIN_DRIFT_ROWS:
                # a handful of rows passes every test: "0 drifted" with exit 0 told a gate all was well
                raise ValueError(
                    f"--{label}: {valued} of {len(frame)} rows (every {every:g} s) have feature values, "
                    f"too few to tell drift; at least {MIN_DRIFT_ROWS} are needed: widen the range, "
                    "lower --every, or move it off a gap in the data (rows more than a view's window "
                    "after the last tick have none)"
                )
            frames.append(frame)
        with console.status("Evidently's drift and data-summary reports ..."):
            # rows `every` apart share ticks within a window: tested in blocks of them
            blocks = row_blocks(dataclasses.asdict(manifest), timedelta(seconds=every))
            result = drift_report(frames[0], frames[1], folder, "drift", blocks)
    except (ValueError, lake.LakeError) as exc:
        raise _NoVerdict(str(exc)) from exc
    console.print(
        f"{result.drifted} of {result.columns} features drifted ({result.share:.0%}); report: {result.html}"
    )
    if result.untested:
        names, why = list(result.untested), next(iter(result.untested.values()))
        listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        console.print(
            f"not tested: {count_of(len(names), 'feature')} whose "
            f"window{'s' * (len(names) != 1)} the ranges are too short for ({listed}; "
            f"{names[0]}: {why}): widen the ranges to test them"
        )
    shown = result.most_drifted(min(max(result.drifted, 3), 10))  # every drifted one, 3 to 10 lines
    console.print("most drifted:" if result.drifted else "closest to drifting:")
    for column, drift in shown:
        console.print(
            f"  {escape(column)}: {escape(str(drift))}" + ("  [red]drifted[/]" if drift.drifted else ""),
            markup=True,
        )
    sys.exit(1 if result.share > max_share else 0)
