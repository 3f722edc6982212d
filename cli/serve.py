"""`tickstore stream` (fresh online features from Kafka) and `tickstore serve` (the scoring API)."""

from __future__ import annotations

import gc
import logging
import os
import shutil
import socket
import sys
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem

from cli.context import console, settings_of
from cli.placement import cpu_option, cpus_in_use, niceness, pin, yield_cpu
from cli.serverlog import SAID_WINDOW_S, NameReusePortListeners, SaidOnce
from tickstore import net
from tickstore.settings import Settings
from tickstore.text import count_of
from tickstore.values import parse_cpus

T = TypeVar("T")


def percentile_ms(values: list[float], q: float) -> float:
    """The q-th percentile of ``values`` (seconds) in milliseconds; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000


def _complete_models(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
    """Tab in bash or zsh: the champion's alias and the URIs of the newest models `train` logged, each
    with what it is (zsh shows it). Only from a SQLite store, the home's own by default: a tracking
    server that is down would hold the Tab through MLflow's retries."""
    from tickstore.mlflow_store import REGISTERED_MODEL

    home = ctx.find_root().params.get("home")
    try:
        settings = Settings(**({"home": home} if home else {}))
        if not settings.mlflow_tracking_uri().startswith("sqlite:"):
            return []
        from training.runs import logged_models

        models = logged_models(settings, 30)
    except Exception:  # nothing to offer; a traceback would land in the command line
        return []
    items = [CompletionItem(f"models:/{REGISTERED_MODEL}@champion", help="the champion")]
    items = items if any(m.champion for m in models) else []
    for m in models:
        started, labels, model, span = m.shown()[:4]  # as `tickstore models` shows them
        what = f"{model}, {labels} labels, {span}, logged {started}" + (
            " (the champion)" if m.champion else ""
        )
        items.append(CompletionItem(m.uri, help=what))
    return [item for item in items if item.value.startswith(incomplete)]


@click.command()
@click.option(
    "--until-idle", is_flag=True, help="Stop once the topic has been quiet a moment (scripts, tests)."
)
@click.option(
    "--cpus",
    callback=lambda ctx, param, value: cpu_option(value),
    help="Run on these CPUs, e.g. 1 or 2-3 (default TICKSTORE_STREAM_CPUS: any).",
)
@click.pass_context
def stream(ctx: click.Context, until_idle: bool, cpus: str | None) -> None:
    """Keep the online store fresh from ticks.raw, with the feature views' own SQL.

    Each micro-batch (TICKSTORE_STREAM_BATCH_MS) updates the newest features of the products it
    touched, computed by sql/*.sql over a short in-memory tail, written through Feast's online write
    API (SQLite, or Redis with TICKSTORE_ONLINE_STORE=redis). Runs until SIGTERM / Ctrl-C, at
    nice TICKSTORE_STREAM_NICE (10), so a scorer on the same cores answers first; on the CPUs
    TICKSTORE_STREAM_CPUS lists, if set (give the scorer the others: TICKSTORE_SERVE_CPUS).
    """
    from ingest.stream import OnlineStream

    settings = settings_of(ctx)
    if cpus is not None:
        settings = settings.model_copy(update={"stream_cpus": cpus})
    yield_cpu(settings.stream_nice)
    pin(settings.stream_cpus, "--cpus or TICKSTORE_STREAM_CPUS")
    stats = OnlineStream(settings, until_idle=until_idle).run()
    fresh = list(stats.freshness_s)
    latency = (
        f"produce -> online p50 {percentile_ms(fresh, 50):.0f} ms, p99 {percentile_ms(fresh, 99):.0f} ms"
        if fresh
        else "no latency to report"
    ) + stats.backlog_note()
    # a restart's re-read is no new work, but a "0 messages" alone looked like nothing was read
    refilled = f" (and {stats.warmed:,} read before, re-read to refill the windows)" if stats.warmed else ""
    console.print(
        f"stream: {count_of(stats.messages, 'message')}{refilled}, {count_of(stats.new_ticks, 'new tick')}, "
        f"{count_of(stats.batches, 'batch', 'batches')}, {count_of(stats.rows_written, 'online row')}; {latency}; "
        f"ran at nice {niceness()} on CPUs {cpus_in_use()}"
    )


@click.command()
@click.option("--host", help="Listen address (default TICKSTORE_SERVE_HOST, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default TICKSTORE_SERVE_PORT, 8000).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="gunicorn worker processes (default TICKSTORE_SERVE_WORKERS, else one per CPU of --cpus, else 4).",
)
@click.option(
    "--threads", type=click.IntRange(min=1), help="Threads per worker (default TICKSTORE_SERVE_THREADS)."
)
@click.option(
    "--cpus",
    callback=lambda ctx, param, value: cpu_option(value),
    help="Run on these CPUs, e.g. 0 or 0-1 (default TICKSTORE_SERVE_CPUS: any).",
)
@click.option(
    "--model",
    metavar="URI",
    shell_complete=lambda ctx, param, incomplete: _complete_models(ctx, incomplete),
    help="MLflow model to serve, e.g. runs:/<run>/model as `tickstore train` prints it (default "
    "TICKSTORE_SERVE_MODEL_URI, models:/tickstore-volatility@champion).",
)
@click.option("--dev", is_flag=True, help="Flask's development server (one process) instead of gunicorn.")
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    workers: int | None,
    threads: int | None,
    cpus: str | None,
    model: str | None,
    dev: bool,
) -> None:
    """The scoring API: POST /v1/score, GET /v1/features/<id>, /healthz, /readyz, /metrics, / (an index).

    \b
    The model is --model or TICKSTORE_SERVE_MODEL_URI, by default the MLflow
    alias models:/tickstore-volatility@champion (an @alias URI is reloaded
    when the alias moves); features come from the online store that
    `tickstore stream` keeps fresh. gunicorn with threaded workers unless --dev.
    """
    base = settings_of(ctx)
    updates = {
        k: v
        for k, v in {
            "serve_host": host,
            "serve_port": port,
            "serve_workers": workers,
            "serve_threads": threads,
            "serve_cpus": cpus,
            "serve_model_uri": model,
        }.items()
        if v is not None
    }
    settings = base.model_copy(update=updates)
    pin(settings.serve_cpus, "--cpus or TICKSTORE_SERVE_CPUS")  # gunicorn's workers, forked later, inherit it
    _refuse_a_model_that_is_not_there(settings)
    _say_if_redis_does_not_answer(settings)
    url = f"http://{net.host_port(settings.serve_host, settings.serve_port)}"
    if dev:
        from serving import create_app

        console.print(f"scoring API (Flask dev server) on {url}")
        frozen(create_app(settings)).run(settings.serve_host, settings.serve_port, threaded=True)
        return
    _check_memory(settings.scorer_workers())
    run_gunicorn(settings)


def _refuse_a_model_that_is_not_there(settings: Settings) -> None:
    """Stop before serving when MLflow says the run or version the model URI names does not exist (a
    typo in a runs:/ id), the path in a finished run holds no model, or a folder named holds none (a
    run id without runs:/): such a scorer answered 503 for ever. A run deleted in MLflow is refused
    too, with the command that restores it. An alias not set yet is served as it appears, and a
    server that is down is retried by the scorer."""
    uri = settings.serve_model_uri
    # asked in gunicorn's master, whose workers are forked later: MLflow's engine, kept per process,
    # would otherwise hold its database connections open into every worker (two, measured), and a
    # SQLite connection used across a fork can corrupt the file. Without a pool none stays open.
    if os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool") != "NullPool":
        return  # a pool of the user's choosing: the workers find out for themselves
    from serving.model_uri import missing
    from tickstore.mlflow_store import use_mlflow_store

    try:
        use_mlflow_store(settings)
    except Exception:  # a store that can't be opened: the scorer says why, and retries
        return
    problem = missing(uri)
    if problem is not None:
        raise click.ClickException(f"cannot serve {uri}: {problem}")


def _say_if_redis_does_not_answer(settings: Settings) -> None:
    """Warn before serving when the Redis online store does not answer: the scorer started without a
    word and answered every request 503 (its /readyz said why). Not refused: Redis may come up after
    it, and the scorer reads it then. A SQLite store is a file, made when first written."""
    if settings.online_store != "redis":
        return
    from rich.markup import escape

    from tickstore_feast.online import OnlineStoreUnavailable, check_online_store
    from tickstore_feast.repo import feature_store

    try:
        check_online_store(feature_store(settings, apply=False))
    except OnlineStoreUnavailable as exc:
        console.print(
            f"[yellow]warning:[/] {escape(str(exc))}; until it answers, every score is a 503 "
            "(features_unavailable)",
            markup=True,
            highlight=False,
        )
    except Exception:  # a feature repo or registry that can't be read: the workers say why, as before
        return


WORKER_BYTES = 300 * 2**20  # one worker's memory: ~310 MB RSS measured, the z-score rule served


def _check_memory(workers: int) -> None:
    """Refuse more workers than the machine's available memory holds (each loads the model, Feast and
    MLflow of its own): a thousand forked on a laptop would take it down, not serve."""
    try:
        with open("/proc/meminfo") as meminfo:  # Linux; elsewhere nothing is checked
            available = next(
                int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:")
            )
    except (OSError, StopIteration, ValueError, IndexError):
        return
    if workers * WORKER_BYTES > available:
        raise click.UsageError(
            f"{workers} workers (--workers or TICKSTORE_SERVE_WORKERS): each holds the model, Feast and "
            f"MLflow (~{WORKER_BYTES // 2**20} MB), {workers * WORKER_BYTES / 2**30:.1f} GB in all, and this "
            f"machine has {available / 2**30:.1f} GB available: use at most {max(1, available // WORKER_BYTES)} "
            "(the default is 4, or one per CPU of --cpus)"
        )


def frozen(app: T) -> T:
    """``app``, tuned for serving: start-up garbage out of the collector's sight, one-thread math.

    Feast, MLflow, pandas and the model leave ~460k long-lived objects; a full collection walked them
    all, 240-320 ms measured, stalling whatever requests that worker held (the p99). They live as long
    as the process anyway.
    """
    gc.collect()
    gc.freeze()
    # One request is one row: BLAS / OpenMP thread pools would only spin against the other workers.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    return app


def ensure_port_free(host: str, port: int) -> None:
    """Fail now, saying what to do, when something already listens on ``host:port``.

    With SO_REUSEPORT (see run_gunicorn) a second server started by the same user would not fail to
    bind: it would quietly take a share of the connections, perhaps with an older model.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:  # was a traceback
        raise click.ClickException(
            f"cannot listen on {host}: {exc.strerror}. Give an address of this machine (127.0.0.1, "
            "0.0.0.0 for all, ::1) with --host or TICKSTORE_SERVE_HOST."
        ) from exc
    with socket.socket(family, kind, proto) as probe:
        # connections of an earlier server lingering in TIME_WAIT are no reason to refuse
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            holder = net.listener(port)
            who = (
                f"pid {holder.pid} ({holder.command}) holds it"
                if holder is not None
                else "Another server (an earlier `tickstore serve`?) holds it"
            )
            raise click.ClickException(
                f"cannot listen on {host}:{port}: {exc.strerror}. {who}: stop it, or choose a port with "
                "--port or TICKSTORE_SERVE_PORT."
            ) from exc


def run_gunicorn(settings: Settings) -> None:
    """Serve with gunicorn's threaded workers; each worker builds its own app (and model watcher)."""
    ensure_port_free(settings.serve_host, settings.serve_port)
    # Metrics from several worker processes: prometheus_client must see this before it is imported.
    metrics_dir = settings.run_dir / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    # what every worker says (a missing model, a model loaded), said once; the workers inherit this
    said_dir = settings.run_dir / "serve-said"
    shutil.rmtree(said_dir, ignore_errors=True)
    said_dir.mkdir(parents=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(SaidOnce(said_dir, max(SAID_WINDOW_S, 2 * settings.serve_reload_s)))
    # each worker loads the model, and MLflow drew two progress bars per load into the server's log
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    from gunicorn.app.base import BaseApplication

    from serving import create_app

    def child_exit(server: Any, worker: Any) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]

    def worker_exit(server: Any, worker: Any) -> None:
        """Leave the worker without Python's finalization, keeping its exit code.

        `import duckdb` starts DuckDB's default instance, with a thread, in the master; a forked
        worker inherits the instance but not the thread, and destroying it while Python finalizes
        aborted the worker ("terminate called without an active exception", SIGABRT) at every
        shutdown. By now the worker has answered its last request; its metrics are the master's
        to mark dead (child_exit).
        """
        exc = sys.exc_info()[1]  # gunicorn calls this from a `finally`: the exit in flight
        code = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else int(exc is not None)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    bind = net.host_port(settings.serve_host, settings.serve_port)
    workers = settings.scorer_workers()
    per_cpu = settings.serve_workers is None and parse_cpus(settings.serve_cpus) is not None

    def on_starting(server: Any) -> None:
        logging.getLogger("gunicorn.error").addFilter(NameReusePortListeners(f"http://{bind}"))

    options = {
        "bind": bind,
        "workers": workers,
        "threads": settings.serve_threads,
        "worker_class": "gthread",
        "timeout": 30,
        "graceful_timeout": 10,  # SIGTERM: requests in flight get this long, then workers are killed
        "keepalive": 30,
        "accesslog": None,
        # gunicorn 26 otherwise opens a control socket at ~/.gunicorn/gunicorn.ctl, one per user: a
        # second server would take it over, and nothing in tickstore uses it
        "control_socket_disable": True,
        "on_starting": on_starting,
        "child_exit": child_exit,
        "worker_exit": worker_exit,
        # Each worker listens on a socket of its own and the kernel spreads new connections over them.
        # On one shared socket whichever worker was awake took them: 32 keep-alive connections landed
        # 32/0/0/0 or 24/4/3/1 (measured), and one worker (one GIL) tops out near 700 req/s: 679
        # req/s closed-loop with 32/0/0/0, against 2,400-2,900 spread. (Linux balances SO_REUSEPORT
        # sockets; other systems don't, so they keep the shared socket.)
        "reuse_port": sys.platform.startswith("linux"),
    }

    class Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return frozen(create_app(settings))

    console.print(
        f"scoring API on http://{options['bind']} (gunicorn, {count_of(workers, 'worker')}"
        f"{' (one per CPU)' if per_cpu else ''} x "
        f"{count_of(settings.serve_threads, 'thread')}, CPUs {cpus_in_use()}); try: curl -s localhost:{settings.serve_port}/v1/score "
        '-d \'{"product_id": "BTC-USD"}\''
    )
    Gunicorn().run()
