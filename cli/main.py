"""`tickstore`: the command line on top of the stages."""

from __future__ import annotations

import logging
import sys
import warnings
from datetime import datetime
from pathlib import Path

import click
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from cli.output import print_rows
from ingest import broker as broker_mod
from tickstore.settings import Settings

console = Console(stderr=True)


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj["settings"]  # type: ignore[no-any-return]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(path_type=Path), help="Data directory (TICKSTORE_HOME).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def main(ctx: click.Context, home: Path | None, verbose: bool) -> None:
    """tickstore: market-tick features defined once in SQL, for training and live scoring.

    \b
    Quick start:
      tickstore broker start                  # embedded Kafka-protocol broker on loopback
      tickstore ingest replay ../shared/data/coinbase
      tickstore sink --until-idle             # Kafka -> DuckLake `ticks`
      tickstore sql "SELECT product_id, count(*) FROM ticks GROUP BY ALL"
      tickstore train --start 2025-12-06T06:15 --end 2025-12-06T12:40
      tickstore stream & tickstore serve      # fresh online features, scoring API on :8000

    Every setting is also a TICKSTORE_* environment variable (see README).
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, markup=False)],
    )
    if not verbose:  # Feast logs every registry refresh at INFO; dependencies warn about their own APIs
        logging.getLogger("feast").setLevel(logging.WARNING)
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        warnings.simplefilter("ignore")
    try:
        settings = Settings(home=home) if home else Settings()
    except ValidationError as exc:  # a mistyped TICKSTORE_* variable: name it, not a traceback
        raise click.ClickException(
            "; ".join(
                f"TICKSTORE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            )
        ) from None
    ctx.obj = {"settings": settings}


# -- broker -------------------------------------------------------------------------------------
@main.group()
def broker() -> None:
    """Start, stop or inspect the embedded Kafka-protocol broker (Tansu)."""


@broker.command("start")
@click.pass_context
def broker_start(ctx: click.Context) -> None:
    """Start the broker on 127.0.0.1:TICKSTORE_BROKER_PORT and create ticks.raw / ticks.dlq."""
    s = _settings(ctx)
    try:
        st = broker_mod.start(s)
    except broker_mod.BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    where = "embedded broker" if st.embedded else "external Kafka (no embedded broker started)"
    console.print(f"[green]ok[/]: {where} at {st.bootstrap}" + (f", pid {st.pid}" if st.pid else ""))


@broker.command("stop")
@click.pass_context
def broker_stop(ctx: click.Context) -> None:
    """Stop the embedded broker (its in-memory topics are dropped)."""
    stopped = broker_mod.stop(_settings(ctx))
    console.print("stopped" if stopped else "no embedded broker was running")


@broker.command("status")
@click.pass_context
def broker_status(ctx: click.Context) -> None:
    """Say whether the broker is up, and list tickstore's topics with their message counts."""
    from ingest import kafka

    s = _settings(ctx)
    st = broker_mod.status(s)
    kind = "embedded" if st.embedded else "external"
    state = "[green]up[/]" if st.reachable else "[red]down[/]"
    console.print(f"{kind} broker at {st.bootstrap}: {state}" + (f" (pid {st.pid})" if st.pid else ""))
    if st.reachable:
        for topic, (parts, count) in kafka.topic_stats(s).items():
            console.print(f"  {topic}: {parts} partitions, ~{count:,} messages (from watermarks)")
    sys.exit(0 if st.reachable else 1)


# -- ingest -------------------------------------------------------------------------------------
@main.group()
def ingest() -> None:
    """Publish ticks to Kafka: recorded files, the live Coinbase feed, or a simulator."""


@ingest.command("replay")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--speed", type=float, help="Pace at recorded speed times N (default: as fast as possible).")
@click.option("--max-gap", type=float, default=5.0, show_default=True, help="With --speed: longest pause, s.")
@click.option("--retime", is_flag=True, help="Stamp messages with the time they are sent, as if live.")
@click.option("--duration", type=float, help="Stop after this many seconds.")
@click.pass_context
def ingest_replay(
    ctx: click.Context,
    paths: tuple[Path, ...],
    speed: float | None,
    max_gap: float,
    retime: bool,
    duration: float | None,
) -> None:
    """Publish NDJSON recordings (files or folders, .ndjson or .ndjson.gz) to ticks.raw."""
    from ingest import replay

    s = _settings(ctx)
    files = replay.discover(paths)
    total = sum(f.stat().st_size for f in files)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(f"replaying {len(files)} files", total=total)
        stats = replay.replay(
            s,
            files,
            speed=speed,
            max_gap_s=max_gap,
            progress=lambda n: bar.advance(task, n),
            retime=retime,
            duration_s=duration,
        )
    rate = stats.messages / stats.seconds if stats.seconds else 0
    console.print(
        f"published {stats.messages:,} messages from {stats.files} files to {s.topic_raw} "
        f"in {stats.seconds:.1f} s ({rate:,.0f}/s)"
    )
    for product, n in sorted(stats.per_product.items()):
        console.print(f"  {product}: {n:,}")
    if stats.too_large:
        console.print(
            f"[red]{len(stats.too_large)} lines exceed TICKSTORE_MAX_MESSAGE_BYTES and were not sent:[/] "
            + ", ".join(stats.too_large[:5])
        )
        sys.exit(2)


@ingest.command("coinbase")
@click.option("--products", default="BTC-USD,ETH-USD", show_default=True, help="Comma-separated product ids.")
@click.option(
    "--feed", type=click.Choice(["exchange", "advanced-trade"]), default="advanced-trade", show_default=True
)
@click.option(
    "--duration", type=float, help="Stop after this many seconds (default: until Ctrl-C / SIGTERM)."
)
@click.option("--url", help="WebSocket URL (default: Coinbase's, from the settings).")
@click.pass_context
def ingest_coinbase(
    ctx: click.Context, products: str, feed: str, duration: float | None, url: str | None
) -> None:
    """Subscribe to the live Coinbase ticker feed: archive every raw message and publish to ticks.raw.

    Reconnects with backoff and subscribes again when the connection drops or goes silent. The archive
    (TICKSTORE_HOME/archive/) rotates and is read back by `tickstore ingest replay`.
    """
    import asyncio
    import signal

    from ingest import coinbase

    s = _settings(ctx)
    session = coinbase.CoinbaseIngest(s, feed, products.split(","), url=url, duration_s=duration)

    async def main() -> coinbase.LiveStats:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, session.stop)
        return await session.run_async()

    with Progress(
        "[progress.description]{task.description}",
        "{task.completed:,} messages",
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(f"{feed} feed", total=None)
        session.on_message = lambda n: bar.advance(task, n)
        stats = asyncio.run(main())
    console.print(
        f"received {stats.messages:,} messages over {stats.connections} connection(s), "
        f"published to {s.topic_raw}"
    )
    for product, n in sorted(stats.per_product.items()):
        console.print(f"  {product}: {n:,}")
    console.print(f"archived to {len(stats.archive_files)} file(s) in {s.archive_dir}")


@ingest.command("simulate")
@click.option("--ticks", type=int, default=1_000_000, show_default=True, help="How many ticks in all.")
@click.option("--products", default="BTC-USD,ETH-USD,SOL-USD", show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--fit",
    "fit_dir",
    type=click.Path(exists=True, path_type=Path),
    help="Fit rates and volatilities to these recordings first (default: built-in fit).",
)
@click.option("--out", type=click.Path(path_type=Path), help="Write NDJSON here instead of publishing.")
@click.pass_context
def ingest_simulate(
    ctx: click.Context, ticks: int, products: str, seed: int, fit_dir: Path | None, out: Path | None
) -> None:
    """Generate a synthetic ticker stream (volatility regimes, bursts) fitted to recordings."""
    from ingest import simulate

    fitted = simulate.fit([fit_dir]) if fit_dir else simulate.Fitted()
    if fit_dir:
        console.print(f"fitted: {fitted}")
    cfg = simulate.SimConfig(n_ticks=ticks, products=tuple(products.split(",")), seed=seed, fitted=fitted)
    if out:
        n = simulate.write(out, cfg)
        console.print(f"wrote {n:,} ticks to {out}")
        return
    s = _settings(ctx)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        "{task.completed:,}/{task.total:,}",
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("simulating", total=ticks)
        n = simulate.publish(s, cfg, progress=lambda k: bar.advance(task, k))
    console.print(f"published {n:,} simulated ticks to {s.topic_raw}")


# -- sink ---------------------------------------------------------------------------------------
@main.command()
@click.option("--until-idle", is_flag=True, help="Stop once caught up with the topic (scripts, tests).")
@click.pass_context
def sink(ctx: click.Context, until_idle: bool) -> None:
    """Consume ticks.raw into the DuckLake `ticks` table (bad messages -> `ticks_rejected`).

    Offsets are committed only after the lake commit; SIGTERM flushes, commits and exits.
    """
    from ingest.sink import Sink

    Sink(_settings(ctx), until_idle=until_idle).run()


# -- sql ----------------------------------------------------------------------------------------
@main.command()
@click.argument("query")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
@click.option("--as-of", help="A DuckLake snapshot id, or a timestamp: query the lake as it was then.")
@click.option("--limit", type=int, default=1000, show_default=True, help="Most rows printed as a table.")
@click.pass_context
def sql(ctx: click.Context, query: str, fmt: str, as_of: str | None, limit: int) -> None:
    """Run ad-hoc SQL over the lake (safe while the sink writes). Tables: ticks, ticks_rejected."""
    from datetime import datetime

    import duckdb

    from tickstore import lake

    s = _settings(ctx)
    snapshot: int | None = None
    when: datetime | None = None
    if as_of is not None:
        if as_of.isdigit():
            snapshot = int(as_of)
        else:
            try:
                when = datetime.fromisoformat(as_of)
            except ValueError as exc:
                raise click.BadParameter("a snapshot id or an ISO timestamp", param_hint="--as-of") from exc
    try:
        con = lake.connect(s, snapshot=snapshot, as_of=when, create=False)
        rel = con.sql(query)
    except (lake.LakeError, duckdb.Error) as exc:
        raise click.ClickException(str(exc)) from exc
    if rel is None:
        console.print("ok")
        return
    print_rows(rel.columns, rel.fetchall(), fmt, limit)


# -- dataset ------------------------------------------------------------------------------------
@main.group()
def dataset() -> None:
    """Point-in-time-correct training sets through Feast on the lake."""


@dataset.command("build")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Parquet file to write.")
@click.option("--service", default="volatility_model", show_default=True, help="Feast feature service.")
@click.option(
    "--entities",
    "entities_file",
    type=click.Path(exists=True, path_type=Path),
    help="CSV or Parquet with product_id, event_timestamp.",
)
@click.option("--every", type=float, help="Or: one entity row every N seconds per product...")
@click.option(
    "--start",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]),
    help="...from this UTC time...",
)
@click.option(
    "--end",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]),
    help="...to this UTC time (exclusive).",
)
@click.option("--products", help="Comma-separated products for --every (default: all with ticks).")
@click.option("--as-of", "as_of", type=int, help="Read the lake at this snapshot (rebuild an old dataset).")
@click.pass_context
def dataset_build(
    ctx: click.Context,
    out: Path,
    service: str,
    entities_file: Path | None,
    every: float | None,
    start: datetime | None,
    end: datetime | None,
    products: str | None,
    as_of: int | None,
) -> None:
    """Build a training set: features as of each entity row, never from after it.

    \b
      tickstore dataset build --every 1 --start 2025-12-06T06:15:00 --end 2025-12-06T08:30:00 --out train.parquet
      tickstore dataset build --entities rows.csv --out train.parquet --as-of 42
    """
    from datetime import UTC, timedelta

    from training import dataset as ds

    if (entities_file is None) == (every is None):
        raise click.UsageError("give either --entities FILE or --every N with --start and --end")
    if entities_file is not None:
        entities: object = ds.file_entities(entities_file)
    else:
        if start is None or end is None:
            raise click.UsageError("--every needs --start and --end")
        entities = ds.Grid(
            start.replace(tzinfo=UTC),
            end.replace(tzinfo=UTC),
            timedelta(seconds=every or 1),
            tuple(products.split(",")) if products else (),
        )
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        "{task.completed:,}/{task.total:,} rows",
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("point-in-time join", total=1)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        manifest = ds.build(
            _settings(ctx),
            entities,
            out,
            feature_service=service,
            as_of=as_of,  # type: ignore[arg-type]
            progress=advance,
        )
    console.print(
        f"wrote {manifest.rows:,} rows x {len(manifest.features)} features to {out} "
        f"in {manifest.seconds:.1f} s (lake snapshot {manifest.snapshot}; rebuild with --as-of "
        f"{manifest.snapshot})"
    )
    worst = sorted(manifest.null_fraction.items(), key=lambda kv: -kv[1])[:3]
    console.print("most NULL: " + ", ".join(f"{k} {v:.1%}" for k, v in worst))


# -- train --------------------------------------------------------------------------------------
@main.command()
@click.option(
    "--start", type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]), required=True, help="UTC start."
)
@click.option("--end", type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]), required=True, help="UTC end.")
@click.option("--every", type=float, default=1.0, show_default=True, help="Seconds between label rows.")
@click.option("--horizon", type=float, default=60.0, show_default=True, help="Label horizon H, seconds.")
@click.option(
    "--percentile", type=float, default=95.0, show_default=True, help="Spike threshold (training split)."
)
@click.option("--as-of", "as_of", type=int, help="Train on this lake snapshot (reproduce a run).")
@click.option("--leaky-labels", is_flag=True, help="Also train on shift(-1) labels, to show the leak.")
@click.pass_context
def train(
    ctx: click.Context,
    start: datetime,
    end: datetime,
    every: float,
    horizon: float,
    percentile: float,
    as_of: int | None,
    leaky_labels: bool,
) -> None:
    """Train the z-score rule, logistic regression and XGBoost on honest forward labels; log to MLflow.

    Labels are the realized volatility over (t, t + H] from ticks strictly after t; splits are
    chronological 70/15/15 with an H purge. The best model becomes the `champion` alias only if it
    beats the z-score rule on validation PR-AUC.
    """
    from datetime import UTC, timedelta

    from cli.output import print_train_report
    from training.train import TrainConfig
    from training.train import train as run_training

    cfg = TrainConfig(
        start.replace(tzinfo=UTC),
        end.replace(tzinfo=UTC),
        timedelta(seconds=every),
        timedelta(seconds=horizon),
        percentile,
        as_of=as_of,
        leaky_labels=leaky_labels,
    )
    try:
        with console.status("training (features, labels, three models, MLflow) ..."):
            report = run_training(_settings(ctx), cfg, log=console.print)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    print_train_report(report, console)
    for name, values in report.walk_forward.items():
        shown = ", ".join("nan" if v != v else f"{v:.3f}" for v in values)
        console.print(f"walk-forward PR-AUC {name}: {shown}")


# -- monitor ------------------------------------------------------------------------------------
@main.group()
def monitor() -> None:
    """Watch the features: drift between time ranges (gates retraining)."""


def _time_range(text: str) -> tuple[datetime, datetime]:
    from datetime import UTC

    try:
        start, end = (datetime.fromisoformat(p.strip()) for p in text.split(".."))
    except ValueError as exc:
        raise click.BadParameter("use START..END, e.g. 2025-12-06T06:00..2025-12-06T08:00") from exc
    return start.replace(tzinfo=start.tzinfo or UTC), end.replace(tzinfo=end.tzinfo or UTC)


@monitor.command("drift")
@click.option("--reference", required=True, help="Reference range START..END (UTC, ISO).")
@click.option("--current", required=True, help="Current range START..END (UTC, ISO).")
@click.option("--every", type=float, default=10.0, show_default=True, help="Seconds between sampled rows.")
@click.option(
    "--max-share",
    type=float,
    default=0.5,
    show_default=True,
    help="Exit 1 when more than this share of features drifted.",
)
@click.option(
    "--out", type=click.Path(path_type=Path), help="Report folder (default: TICKSTORE_HOME/reports)."
)
@click.pass_context
def monitor_drift(
    ctx: click.Context, reference: str, current: str, every: float, max_share: float, out: Path | None
) -> None:
    """Evidently drift + quality report between the features of two time ranges.

    Exit code 0: drift at or below --max-share; 1: above it (retrain); 2: usage error.
    """
    from datetime import timedelta

    import pandas as pd

    from training import dataset as ds
    from training.drift import drift_report

    s = _settings(ctx)
    frames = []
    for label, text in (("reference", reference), ("current", current)):
        start, end = _time_range(text)
        path = s.home / "reports" / f"drift_{label}.parquet"
        ds.build(s, ds.Grid(start, end, timedelta(seconds=every)), path)
        frames.append(pd.read_parquet(path))
    result = drift_report(frames[0], frames[1], out or s.home / "reports", "drift")
    console.print(
        f"{result.drifted} of {result.columns} features drifted ({result.share:.0%}); report: {result.html}"
    )
    for column, value in sorted(result.per_column.items(), key=lambda kv: kv[1])[:5]:
        console.print(f"  {column}: {value:.3g}")
    sys.exit(1 if result.share > max_share else 0)


from cli import demo as _demo  # noqa: E402  (registers `tickstore demo`)

main.add_command(_demo.demo)

from cli import serve as _serve  # noqa: E402  (registers `tickstore stream` and `tickstore serve`)

main.add_command(_serve.stream)
main.add_command(_serve.serve)
