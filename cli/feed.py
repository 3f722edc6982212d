"""Getting ticks in: `tickstore ingest` and `tickstore sink`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, TransferSpeedColumn

from cli.context import (
    POSITIVE,
    PRODUCTS,
    SECONDS,
    OutPath,
    Seconds,
    console,
    progress_bar,
    settings_of,
)
from tickstore.text import count_of


# -- ingest -------------------------------------------------------------------------------------
@click.group()
def ingest() -> None:
    """Publish ticks to Kafka: recorded files, the live Coinbase feed, or a simulator."""


def _websocket_url(value: str, param: click.Parameter) -> str:
    """--url as a ws:// or wss:// URL, refused at once when it is none (it was retried for ever)."""
    from tickstore.values import websocket_url

    try:
        return websocket_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from exc


@ingest.command("replay")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--speed", type=POSITIVE, help="Pace at recorded speed times N (default: as fast as possible).")
@click.option(
    "--max-gap",
    type=Seconds(zero=True),
    default=5.0,
    show_default=True,
    help="With --speed: longest pause (seconds, or 500ms, 1m).",
)
@click.option("--retime", is_flag=True, help="Stamp messages with the time they are sent, as if live.")
@click.option("--duration", type=SECONDS, help="Stop after this long (seconds, or 30s, 5m, 1h).")
@click.pass_context
def ingest_replay(
    ctx: click.Context,
    paths: tuple[Path, ...],
    speed: float | None,
    max_gap: float,
    retime: bool,
    duration: float | None,
) -> None:
    """Publish NDJSON recordings (files or folders: .ndjson, .jsonl, gzipped or not) to ticks.raw."""
    from ingest import replay

    s = settings_of(ctx)
    files = replay.discover(paths)
    if not files:
        raise click.ClickException(
            f"no .ndjson or .jsonl files (gzipped or not) in {', '.join(map(str, paths))}: name recordings or folders holding them"
        )
    total = sum(f.stat().st_size for f in files)
    with progress_bar(
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    ) as bar:
        task = bar.add_task(f"replaying {count_of(len(files), 'file')}", total=total)
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
        f"published {count_of(stats.messages, 'message')} from {count_of(stats.files, 'file')} to {s.topic_raw} "
        f"in {stats.seconds:.1f} s ({rate:,.0f}/s)"
    )
    for product, n in sorted(stats.per_product.items()):
        console.print(f"  {product}: {n:,}")
    if stats.too_large:
        console.print(
            f"[red]{count_of(len(stats.too_large), 'line')} "
            f"{'exceeds' if len(stats.too_large) == 1 else 'exceed'} TICKSTORE_MAX_MESSAGE_BYTES, not sent:[/] "
            + escape(", ".join(stats.too_large[:5])),
            markup=True,
        )
    for problem in stats.damaged:
        console.print(
            f"[red]damaged[/] (its lines before the damage were published): {escape(problem)}", markup=True
        )
    if stats.too_large or stats.damaged:
        sys.exit(2)


@ingest.command("coinbase")
@click.option(
    "--products",
    type=PRODUCTS,
    default="BTC-USD,ETH-USD",
    show_default=True,
    help="Comma-separated product ids.",
)
@click.option(
    "--feed", type=click.Choice(["exchange", "advanced-trade"]), default="advanced-trade", show_default=True
)
@click.option(
    "--duration",
    type=SECONDS,
    help="Stop after this long (seconds, or 5m, 1h; default: until Ctrl-C / SIGTERM).",
)
@click.option(
    "--url",
    callback=lambda ctx, param, value: None if value is None else _websocket_url(value, param),
    help="WebSocket URL (default: Coinbase's, from the settings).",
)
@click.pass_context
def ingest_coinbase(
    ctx: click.Context, products: tuple[str, ...], feed: str, duration: float | None, url: str | None
) -> None:
    """Subscribe to the live Coinbase ticker feed: archive every raw message and publish to ticks.raw.

    Reconnects with backoff and subscribes again when the connection drops or goes silent. The archive
    (TICKSTORE_HOME/archive/) rotates and is read back by `tickstore ingest replay`.
    """
    import asyncio
    import signal

    from ingest import coinbase

    s = settings_of(ctx)
    session = coinbase.CoinbaseIngest(s, feed, list(products), url=url, duration_s=duration)

    async def main() -> coinbase.LiveStats:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, session.stop)
        return await session.run_async()

    with progress_bar(
        "{task.completed:,} messages",
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
    if not stats.connections:  # a script (make demo-live) went on to sink and query nothing, exit 0
        raise click.ClickException(
            f"never connected to {session.url}, so nothing was received (the warnings above say why). "
            "Without access to Coinbase, replay recorded ticks: `tickstore ingest replay "
            "../shared/data/coinbase`, or with `--retime --speed 1` as if live"
        )
    if stats.archive_missed:
        console.print(
            f"[yellow]not archived[/]: {count_of(stats.archive_missed, 'message')}, while the archive "
            f"could not write: {escape(str(stats.archive_problem))}. They were published to {escape(s.topic_raw)} "
            "all the same: the sink lands them in the lake as usual",
            markup=True,
        )


@ingest.command("simulate")
@click.option(
    "--ticks",
    type=click.IntRange(
        min=1, max=1_000_000_000
    ),  # ~15 s per million: more is hours; 1e20 was numpy's traceback
    default=1_000_000,
    show_default=True,
    help="How many ticks in all.",
)
@click.option(
    "--products",
    type=PRODUCTS,
    default="BTC-USD,ETH-USD,SOL-USD",
    show_default=True,
    help="Comma-separated product ids to simulate.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=7,
    show_default=True,
    help="Random seed: the same seed, the same ticks.",
)
@click.option(
    "--fit",
    "fit_dir",
    type=click.Path(exists=True, path_type=Path),
    help="Fit rates and volatilities to these recordings first (default: built-in fit).",
)
@click.option(
    "--out",
    "-o",
    type=OutPath(dir_okay=False, path_type=Path),
    help="Write NDJSON here instead of publishing.",
)
@click.pass_context
def ingest_simulate(
    ctx: click.Context,
    ticks: int,
    products: tuple[str, ...],
    seed: int,
    fit_dir: Path | None,
    out: Path | None,
) -> None:
    """Generate a synthetic ticker stream (volatility regimes, bursts) fitted to recordings.

    The ticks start a day ago, or earlier where they span more than a day, so that none is in the
    future.
    """
    from ingest import simulate

    try:
        fitted = simulate.fit([fit_dir]) if fit_dir else simulate.Fitted()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fit") from exc
    if fit_dir:
        console.print(f"fitted to {escape(str(fit_dir))}:", markup=True)
        for line in fitted.describe():
            console.print(f"  {line}", markup=False)
    cfg = simulate.SimConfig(n_ticks=ticks, products=products, seed=seed, fitted=fitted)
    if out:
        n = simulate.write(out, cfg)
        console.print(f"wrote {count_of(n, 'tick')} to {out}")
        return
    s = settings_of(ctx)
    with progress_bar(
        BarColumn(),
        "{task.completed:,}/{task.total:,}",
    ) as bar:
        task = bar.add_task("simulating", total=ticks)
        n = simulate.publish(s, cfg, progress=lambda k: bar.advance(task, k))
    console.print(f"published {n:,} simulated ticks to {s.topic_raw}")


# -- sink ---------------------------------------------------------------------------------------
@click.command()
@click.option("--until-idle", is_flag=True, help="Stop once caught up with the topic (scripts, tests).")
@click.pass_context
def sink(ctx: click.Context, until_idle: bool) -> None:
    """Consume ticks.raw into the DuckLake `ticks` table (bad messages -> `ticks_rejected`).

    Offsets are committed only after the lake commit; SIGTERM flushes, commits and exits.
    """
    from ingest.sink import Sink

    Sink(settings_of(ctx), until_idle=until_idle).run()
