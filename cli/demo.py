"""`tickstore demo` (what `make demo` runs): broker, replay, sink, then a look at the lake."""

from __future__ import annotations

import shlex
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click
import duckdb
from rich.markup import escape

from cli.context import Seconds, console, settings_of
from cli.ranges import STRETCH_GAP, busiest_stretches, span
from cli.results import print_rows
from ingest import broker, replay
from ingest.sink import Sink
from tickstore import feature_sql, lake, stopping
from tickstore.errors import TickstoreError
from tickstore.settings import Settings
from tickstore.text import count_of

if TYPE_CHECKING:
    from training.report import TrainReport


EXAMPLES = [
    (
        "Ticks per product",
        "SELECT product_id, count(*) AS ticks, min(event_time) AS first, max(event_time) AS last "
        "FROM ticks GROUP BY ALL ORDER BY ALL",
    ),
    (
        "Mean spread in basis points, per product and hour (first 8)",
        "SELECT product_id, date_trunc('hour', event_time) AS hour, count(*) AS ticks, "
        "round(avg((best_ask - best_bid) / ((best_ask + best_bid) / 2) * 1e4), 3) AS spread_bps "
        "FROM ticks GROUP BY ALL ORDER BY ALL LIMIT 8",
    ),
    (
        "The newest minute's 60 s features (a feature view called with a time range reads just that)",
        "SELECT product_id, event_time, tick_count_60s, round(ret_std_60s, 8) AS ret_std_60s, "
        "round(spread_bps_mean_60s, 3) AS spread_bps_60s "
        "FROM ticks_60s((SELECT max(event_time) - INTERVAL 1 MINUTE FROM ticks)) ORDER BY event_time DESC LIMIT 5",
    ),
    (
        "Rejected messages by reason",
        "SELECT reason, count(*) AS messages FROM ticks_rejected GROUP BY ALL ORDER BY 2 DESC",
    ),
    (
        "Lake snapshots (time travel: tickstore sql --as-of ID)",
        "SELECT snapshot_id, snapshot_time FROM lake.snapshots() ORDER BY snapshot_id DESC LIMIT 3",
    ),
]


def run_demo(settings: Settings, simulate_ticks: int = 200_000, live_seconds: float = 30.0) -> None:
    """Run the whole first-cut demo against ``settings``; stops the broker it started."""
    source = _recordings(settings)  # first: a wrong TICKSTORE_DATA_DIR is said before anything starts
    if live_seconds > 0:
        _check_online_store(settings)
    started_broker = broker.status(settings).pid is None and settings.embedded_broker
    st = broker.start(settings)
    console.print(f"[bold]1. broker[/] up at {escape(st.bootstrap)}", markup=True)
    try:
        if source is not None:
            console.print(f"[bold]2. replay[/] recordings from {escape(str(source))}", markup=True)
            stats = replay.replay(settings, [source])
            console.print(
                f"   published {count_of(stats.messages, 'message')} from {count_of(stats.files, 'file')} "
                f"in {stats.seconds:.1f} s"
            )
        else:
            from ingest import simulate

            console.print(f"[bold]2. simulate[/] {simulate_ticks:,} ticks (no recordings found)", markup=True)
            simulate.publish(settings, simulate.SimConfig(n_ticks=simulate_ticks))
        console.print("[bold]3. sink[/] Kafka -> DuckLake until caught up", markup=True)
        result = Sink(settings, until_idle=True).run()
        stopping.check()  # a Ctrl-C or `kill` the sink took to stop: the demo stops with it
        t = result.total
        console.print(
            f"   {t.ticks:,} new ticks, {t.duplicates:,} duplicates skipped, "
            f"{t.rejects:,} rejected, {t.controls:,} control messages"
        )
        console.print(
            "[bold]4. the lake[/] (try these with `tickstore sql`; what each column holds: "
            "`tickstore sql .schema ticks_60s`)",
            markup=True,
        )
        con = lake.connect(settings)
        for title, query in EXAMPLES:
            console.print(f'\n[cyan]{escape(title)}[/]\n  tickstore sql "{escape(query)}"', markup=True)
            feature_sql.attach_views(con, query)  # as `tickstore sql` does
            rel = con.sql(query)
            print_rows(rel.columns, rel.fetchall())
        busiest = next(iter(busiest_stretches(con, 1)), None)
        if busiest is None:
            con.close()
            unset = ", or unset TICKSTORE_DATA_DIR to simulate ticks" if settings.data_dir else ""
            raise TickstoreError(
                f"the lake holds no ticks, so the demo stops before the features: the sink read "
                f"{t.messages:,} messages and rejected {t.rejects:,} (each with its reason in the table "
                f"ticks_rejected); replay recordings with `tickstore ingest replay PATH`{unset}"
            )
        _plot_hour(settings, con, busiest[0])
        con.close()
        _training_set(settings, busiest[0], busiest[1])
        report = _train(settings, busiest[0], busiest[1])
        if live_seconds > 0:
            from cli.live import live_scoring

            live_scoring(settings, report, live_seconds)
    finally:
        if started_broker:
            broker.stop(settings)
            console.print("\nbroker stopped")


def _check_online_store(settings: Settings) -> None:
    """Stop before anything starts when the last step, live scoring, could not write its features: a
    Redis online store that did not answer was found after a minute of the other steps, by a
    traceback from the stream, and the demo then waited out its live step and exited 0."""
    if settings.online_store != "redis":
        return  # SQLite: a file, made when first written
    from tickstore_feast.online import OnlineStoreUnavailable, check_online_store
    from tickstore_feast.repo import feature_store

    try:
        check_online_store(feature_store(settings, apply=False))
    except OnlineStoreUnavailable as exc:
        raise TickstoreError(
            f"{exc} (the demo's last step, live scoring, writes there; `tickstore demo --live-seconds 0` skips that step)"
        ) from exc


def _recordings(settings: Settings) -> Path | None:
    """What the demo replays: TICKSTORE_DATA_DIR, which must hold recordings, else
    ../shared/data/coinbase when it holds some; None: simulate."""
    folder = settings.recordings()
    if folder is None:
        return None
    files = replay.discover([folder]) if folder.exists() else []
    if files:
        return folder
    if settings.data_dir is None:
        return None  # the shared folder is there but empty: simulate, as without it
    what = (
        "does not exist" if not folder.exists() else "holds no recordings (.ndjson / .jsonl, gzipped or not)"
    )
    raise TickstoreError(
        f"TICKSTORE_DATA_DIR={folder} {what}: point it at recordings (a file or a folder of them), "
        "or unset it to replay ../shared/data/coinbase, or simulate ticks where that is missing"
    )


PLOTTED = (
    "SELECT event_time, product_id, ret_std_60s, spread_bps_mean_60s, tick_count_60s "
    "FROM ticks_60s($since, $since::TIMESTAMPTZ + INTERVAL 1 HOUR)"
)


def _plot_hour(settings: Settings, con: duckdb.DuckDBPyConnection, since: datetime) -> None:
    """The busiest stretch's first hour of 60 s features, drawn (as `tickstore sql --plot` draws)."""
    from cli.plot import plot

    out = settings.home / "plots" / "ticks_60s.png"
    when = f"{since:%Y-%m-%dT%H:%M:%S}"
    console.print(
        f"\n[cyan]The busiest stretch's first hour of 60 s features, drawn[/]\n  tickstore sql "
        f"'{escape(PLOTTED)}' -p since={when} --plot {escape(shlex.quote(str(out)))}",
        markup=True,
    )
    feature_sql.attach_views(con, PLOTTED)
    try:
        console.print("  " + plot(con.sql(PLOTTED, params={"since": when}), out, PLOTTED))
    except ValueError as exc:  # rows it can't draw: the demo goes on without the picture
        console.print(f"  skipped: {exc}")


def _training_set(settings: Settings, start: datetime, end: datetime) -> None:
    """Step 5: register the features in Feast and build a point-in-time training set."""
    from training import dataset

    out = settings.home / "datasets" / "demo.parquet"
    console.print(
        "\n[bold]5. features[/] feast apply + a point-in-time training set every 10 s over the busiest "
        f"stretch of ticks (no pause over {STRETCH_GAP.seconds // 60} min), {span(start, end)} UTC",
        markup=True,
    )
    manifest = dataset.build(settings, dataset.Grid(start, end, timedelta(seconds=10)), out)
    console.print(
        f"   {manifest.rows:,} rows x {len(manifest.features)} features -> {out} "
        f"(lake snapshot {manifest.snapshot}, {manifest.seconds:.1f} s)"
    )
    con = lake.connect(settings, create=False)
    rel = con.sql(
        "SELECT product_id, event_timestamp, tick_count_60s, round(ret_std_60s * 1e4, 3) AS ret_std_60s_bps, "
        "round(spread_bps_mean_60s, 3) AS spread_bps_60s, round(imbalance_mean_60s, 3) AS imbalance_60s "
        "FROM read_parquet($p) WHERE tick_count_60s IS NOT NULL ORDER BY event_timestamp LIMIT 5",
        params={"p": str(out)},
    )
    print_rows(rel.columns, rel.fetchall(), title="first rows")
    con.close()
    console.print(
        f"   rebuild it and compare, byte for byte: tickstore dataset verify {shlex.quote(str(out))}"
    )
    console.print(
        "   the feature views, their SQL and the service in a browser: tickstore feast ui (port 8888)"
    )


def _train(settings: Settings, start: datetime, end: datetime) -> TrainReport | None:
    """Step 6: the three models on honest forward labels, beside shift(-1) labels, tracked in MLflow."""
    from cli.output import mlflow_ui, print_train_report
    from training.train import TrainConfig, train

    console.print(
        "\n[bold]6. train[/] z-score rule, logistic regression, XGBoost; honest labels vs shift(-1)",
        markup=True,
    )
    try:
        report = train(
            settings, TrainConfig(start, end, leaky_labels=True), log=lambda m: console.print("   " + m)
        )
    except ValueError as exc:  # e.g. a simulated demo too short for three purged splits
        console.print(f"   skipped: {exc}")
        return None
    print_train_report(report, console)
    console.print(f"   MLflow: {mlflow_ui(settings.mlflow_tracking_uri())}")
    return report


@click.command()
@click.option(
    "--simulate-ticks",
    type=click.IntRange(min=1, max=1_000_000_000),  # as `ingest simulate --ticks`: more is hours
    default=200_000,
    show_default=True,
    help="Ticks to simulate when no recordings are found.",
)
@click.option(
    "--live-seconds",
    type=Seconds(zero=True),
    default=30.0,
    show_default=True,
    help="Length of the last step, live scoring (0 skips it).",
)
@click.pass_context
def demo(ctx: click.Context, simulate_ticks: int, live_seconds: float) -> None:
    """The whole product once: broker, replay (or simulate), sink, SQL, features, training, live scoring.

    \b
    1-4  replay recorded ticks through Kafka into the DuckLake and query them
    5    register the SQL features in Feast, build a point-in-time training set
    6    train the three models, tracked in MLflow
    7    `tickstore stream` + `tickstore serve`, a recording replayed at its
         own pace as if live, scores printed as ticks arrive
    """
    # `kill` as Ctrl-C: the broker and scorer it started are stopped, the runs it logged marked
    with stopping.stops_on_signals():
        run_demo(settings_of(ctx), simulate_ticks, live_seconds)
