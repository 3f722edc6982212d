"""Benchmark: `/v1/score` latency at fixed request rates beside Feast's `feast serve`, and
tick-to-online freshness through Kafka and `tickstore stream`.

    make bench            # or: .venv/bin/python bench/serve.py [--rates 100,500] [--seconds 15]
    .venv/bin/python bench/serve.py --online-store redis     # the same over Redis (redis-server)

Everything runs on loopback: the embedded broker, a live feed (simulated ticks replayed with
--retime at a steady pace), `tickstore stream`, `tickstore serve` (gunicorn; by default one worker
per CPU it is pinned to, 4 unpinned) and `feast serve` (as many as ours unpinned) on the same online
store. The load is open-loop: requests are sent on a fixed schedule whatever the server does, from a
pool of keep-alive connections; a request that waits for a free connection (the server falling
behind) counts that wait, so slow responses can't hide the ones queued behind them. Beside each
tickstore row: the p99 of the app's own time (its Server-Timing `total`, inside Flask), which tells
the server's work from queueing and scheduling. As README advises for a machine shared by the two,
the stream runs on the last core and our scorer on the others (TICKSTORE_STREAM_CPUS /
TICKSTORE_SERVE_CPUS); --no-pin shares every core. `feast serve` keeps every core: pinned to ours,
it only fell further behind (the ratio would flatter us).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loadgen import load, quantile  # noqa: E402  (bench/, beside this file)
from servers import env_for, feast_repo, free_port, placement, start_redis, wait_http  # noqa: E402

from ingest import broker, simulate  # noqa: E402
from tickstore import lake  # noqa: E402
from tickstore.settings import Settings  # noqa: E402
from training.tracking import promote  # noqa: E402
from training.train import TrainConfig, train  # noqa: E402

PRODUCTS = ["BTC-USD", "ETH-USD", "SOL-USD"]
START = datetime(2026, 1, 1, tzinfo=UTC)


def champion(s: Settings, flavor: str) -> str:
    """Train on two simulated hours (the real pipeline) and make ``flavor``'s model the champion.

    The scorer then loads it the way production does, through the registry alias, with the thread
    that watches the alias running in every worker. Returns the registered version.
    """
    con = lake.connect(s)
    con.register(
        "sim", simulate.tick_table(simulate.SimConfig(n_ticks=2 * 3600 * 3 * 4, start=START.timestamp()))
    )
    con.execute("INSERT INTO ticks BY NAME SELECT * FROM sim")
    con.close()
    report = train(s, TrainConfig(START, START + timedelta(hours=2)), log=lambda m: None)
    run = next(r for r in report.results if r.name == flavor)
    return promote(run.model_uri)


def latency_table(
    title: str, targets: tuple[tuple[int, str, list[bytes]], ...], rates: list[float], seconds: float
) -> None:
    """One row per rate: ours and feast serve, one after the other, at the same rate."""
    print(f"\n/v1/score vs feast serve /get-online-features, {title}; {seconds:g} s per run, open loop")
    print(
        f"{'rate':>6} {'tickstore p50':>14} {'p99':>8} {'feast p50':>10} {'p99':>9} {'p99 ratio':>10} {'errors':>8}"
    )
    for rate in rates:
        a, b = (load(port, path, bodies, rate, seconds) for port, path, bodies in targets)
        statuses = a["error_statuses"] + b["error_statuses"]
        print(
            f"{rate:>6.0f} {a['p50_ms']:>12.2f}ms {a['p99_ms']:>6.2f}ms {b['p50_ms']:>8.2f}ms "
            f"{b['p99_ms']:>7.2f}ms {b['p99_ms'] / a['p99_ms']:>9.1f}x {a['errors']}/{b['errors']}"
            + (f" {statuses}" if statuses else "")
            + "  (tickstore in-app p99 "
            + ("n/a" if a["in_app_p99_ms"] is None else f"{a['in_app_p99_ms']:.2f} ms")
            + ";"
            f" client send slack p99 {max(a['client_late_p99_ms'], b['client_late_p99_ms']):.1f} ms,"
            f" longest client GC pause {max(a['client_gc_max_ms'], b['client_gc_max_ms']):.1f} ms;"
            + " CPU stolen by the host "
            + ("n/a" if a["steal_pct"] is None else f"{a['steal_pct']:.1f}% / {b['steal_pct']:.1f}%")
            + ")"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rates", default="100,500", help="Requests per second, comma-separated (default: %(default)s)."
    )
    parser.add_argument(
        "--seconds", type=float, default=15.0, help="Length of each load run (default: %(default)s)."
    )
    parser.add_argument(
        "--model",
        default="xgboost",
        choices=["xgboost", "logreg", "zscore"],
        help="The model `tickstore serve` scores with, trained first on two simulated hours (default: %(default)s).",
    )
    parser.add_argument(
        "--feed-speed",
        type=float,
        default=1.0,
        help="Live feed pace, x the simulator's (~4 ticks/s a product; default: %(default)s).",
    )
    parser.add_argument(
        "--freshness-seconds",
        type=float,
        default=30.0,
        help="Length of the freshness run (tick produced -> online), before any scorer starts (default: %(default)s).",
    )
    parser.add_argument(
        "--online-store",
        choices=["sqlite", "redis"],
        default="sqlite",
        help="The online store both scorers read and the stream writes (redis: a redis-server of its "
        "own on a free port; `make redis` installs it; default: %(default)s).",
    )
    parser.add_argument(
        "--redis-cpus",
        default="",
        help="CPUs for the redis-server, as taskset lists them (default: any). On the scorer's core it "
        "helped at 100 req/s while the stream writes, and hurt at 500 in one of two runs "
        "(docs/bench-serve-runs.md, runs 44-45).",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="Let the stream and the scorers share every core (the settings' default) instead of the "
        "last core for the stream and the others for the scorers.",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    home = Path(tempfile.mkdtemp(prefix="tickstore-bench-serve-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)  # a run leaves no lake behind
    stream_cpus, serve_cpus = placement(not args.no_pin)
    redis_url = start_redis(home, args.redis_cpus) if args.online_store == "redis" else "127.0.0.1:6379"
    s = Settings(
        home=home,
        broker_port=free_port(),
        serve_port=free_port(),
        rebalance_timeout_ms=3000,
        stream_cpus=stream_cpus,
        serve_cpus=serve_cpus,
        online_store=args.online_store,
        redis_url=redis_url,
    )
    where = (
        f" at {redis_url}, redis-server on CPUs {serve_cpus or 'any'}" if args.online_store == "redis" else ""
    )
    print(f"online store: {args.online_store}{where}")
    print(
        f"placement: stream on CPUs {stream_cpus}, tickstore serve on CPUs {serve_cpus}; feast serve, "
        "the load generator and the feed on any core"
        if stream_cpus
        else "placement: stream and scorers share every core (--no-pin, or one core only)"
    )
    # feast serve runs on every core: as many workers as ours gets there (4 unless set)
    workers = s.scorer_workers()
    feast_workers = s.model_copy(update={"serve_cpus": ""}).scorer_workers()
    print(f"workers: tickstore serve {workers} x {s.serve_threads} threads, feast serve {feast_workers}")
    print("training the model to serve (two simulated hours, the real pipeline) ...", flush=True)
    version = champion(s, args.model)
    print(f"model: {args.model}, version {version}, served as {s.serve_model_uri}")

    live = home / "live.ndjson"
    simulate.write(live, simulate.SimConfig(n_ticks=200_000, products=tuple(PRODUCTS)))
    broker.start(s)
    procs: list[subprocess.Popen[bytes]] = []
    try:

        def feed() -> subprocess.Popen[bytes]:
            """The live feed in a process of its own: simulated ticks replayed at pace, stamped now."""
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cli",
                    "ingest",
                    "replay",
                    "--retime",
                    "--speed",
                    str(args.feed_speed),
                    str(live),
                ],
                env=env_for(s),
                cwd=ROOT,
                stderr=subprocess.DEVNULL,
            )

        feeder = freshness(s, args.freshness_seconds, feed)
        feeder.terminate()
        feeder.wait(30)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "cli", "serve"],  # the defaults (TICKSTORE_SERVE_* pass through)
                env=env_for(s),
                cwd=ROOT,
                stderr=subprocess.DEVNULL,
            )
        )
        feast_port = free_port()
        repo = feast_repo(s, home / "feast_serve_repo")
        # gunicorn (under feast serve) opens a control socket in $XDG_RUNTIME_DIR, else makes
        # ~/.gunicorn/ for it, left behind in the user's home after every run of this benchmark
        runtime = home / "feast_serve_runtime"
        runtime.mkdir(mode=0o700)
        procs.append(
            subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "feast"),
                    "serve",
                    "-p",
                    str(feast_port),
                    "-w",
                    str(feast_workers),
                    "--no-access-log",
                    "--max-requests",
                    "10000000",
                ],
                cwd=repo,
                env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
                stderr=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        )
        wait_http(s.serve_port, "/readyz")
        wait_http(feast_port, "/health")
        targets = (
            (s.serve_port, "/v1/score", [json.dumps({"product_id": p}).encode() for p in PRODUCTS]),
            (
                feast_port,
                "/get-online-features",
                [
                    json.dumps(
                        {"feature_service": "volatility_model", "entities": {"product_id": [p]}}
                    ).encode()
                    for p in PRODUCTS
                ],
            ),
        )
        for port, path, bodies in targets:
            load(port, path, bodies, 50, 2)  # warm up connections, caches, lazy imports
        rates = [float(r) for r in args.rates.split(",")]
        latency_table("quiet (no ingest running)", targets, rates, args.seconds)

        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "cli", "stream"], env=env_for(s), cwd=ROOT, stderr=subprocess.DEVNULL
            )
        )
        time.sleep(2 * s.rebalance_timeout_ms / 1000 + 3)
        procs.append(feed())
        time.sleep(2.0)
        latency_table(
            "while `tickstore stream` writes the live feed into the same online store",
            targets,
            rates,
            args.seconds,
        )
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.stop(s)


def freshness(
    s: Settings, seconds: float, start_feed: Callable[[], subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    """Run `tickstore stream` against the live feed for ``seconds``; print produce -> online latency.

    Two views of it: the stream's own count over every message (Kafka produce timestamp -> its online
    write committed), and an outside reader polling the online store every 2 ms, which sees a tick
    when the tick clock reaches its (retimed, i.e. produce-time) event time.
    """
    from serving.features import OnlineFeatures

    gc.collect()
    gc.freeze()  # the outside reader runs in this process: a full collection would delay what it sees
    stream = subprocess.Popen(
        [sys.executable, "-m", "cli", "stream"], env=env_for(s), cwd=ROOT, stderr=subprocess.PIPE
    )
    # steady state, not start-up: the feed starts once the stream has joined its group
    time.sleep(2 * s.rebalance_timeout_ms / 1000 + 3)
    feeder = start_feed()
    seen: list[float] = []
    reader: OnlineFeatures | None = None
    last: dict[str, int] = {}
    deadline = time.monotonic() + seconds + 15
    started: float | None = None
    while time.monotonic() < deadline:
        try:
            reader = reader or OnlineFeatures(s)
            rows = reader.read(PRODUCTS)
        except Exception:  # registry not applied yet: the stream does it on start
            time.sleep(0.2)
            continue
        now_us = time.time_ns() // 1000
        for r in rows:
            if r.event_time_us is not None and r.event_time_us != last.get(r.product_id):
                if r.product_id in last:  # the first value may be from before we looked
                    seen.append((now_us - r.event_time_us) / 1e6)
                    started = started or time.monotonic()
                last[r.product_id] = r.event_time_us
        if started and time.monotonic() - started > seconds:
            break
        time.sleep(0.002)
    stream.send_signal(signal.SIGTERM)
    _, err = stream.communicate(timeout=60)
    out = " ".join(err.decode().split())
    summary = out[out.rfind("stream:") :] if "p99" in out else out[-500:]
    q = lambda p: quantile(seen, p) * 1000 if seen else float("nan")  # noqa: E731
    print(f"\ntick-to-online freshness over {seconds:g} s of live feed:")
    print(f"  every message (stream's count): {summary}")
    print(f"  outside reader, {len(seen):,} updates seen: p50 {q(0.5):.0f} ms, p99 {q(0.99):.0f} ms")
    return feeder


if __name__ == "__main__":
    main()
