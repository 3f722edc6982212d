"""Demo step 7: the stream and the scorer on a recording replayed at its own pace, as if live."""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.context import console
from ingest import replay
from ingest.stream import OnlineStream
from tickstore.errors import TickstoreError
from tickstore.net import free_port
from tickstore.settings import Settings
from tickstore.text import count_of

if TYPE_CHECKING:
    from training.report import TrainReport

CHAMPION = "models:/tickstore-volatility@champion"


def _model_uri(report: TrainReport | None) -> str | None:
    """The champion if training promoted one, else the z-score rule no model was promoted over (said
    out loud): the best on validation of a run without a champion is a lead chance could give, and on
    the recordings it called nearly every tick a spike."""
    if report is not None and report.champion:
        return CHAMPION
    rule = report.rule() if report is not None else None
    if rule is None or not rule.run_id:
        return None
    why = "none beat the z-score rule on validation by more than chance"
    if report is not None and report.spikes.get("validation") == 0:
        why = "a validation split without spikes ranks no model"
    console.print(
        f"   no champion ({why}), so the demo\n"
        f"   serves the z-score rule: tickstore serve --model runs:/{rule.run_id}/model"
    )
    return f"runs:/{rule.run_id}/model"


def _source(settings: Settings) -> Path:
    """A recording with several products, else the first one, else simulated ticks."""
    folder = settings.recordings()
    if folder is not None:
        files = replay.discover([folder])
        preferred = [f for f in files if "btc-eth" in f.name]
        if preferred or files:
            return (preferred or files)[0]
    from ingest import simulate

    # in the home, written afresh each demo (seeded: the same ticks): a temporary folder of its own
    # was never removed, 6 MB a demo left in /tmp
    path = settings.run_dir / "live-simulated.ndjson"
    path.parent.mkdir(parents=True, exist_ok=True)
    simulate.write(path, simulate.SimConfig(n_ticks=20_000))
    return path


def _products(path: Path, limit: int = 2000) -> list[str]:
    seen: Counter[str] = Counter()
    for i, (_, _, line) in enumerate(replay.iter_lines([path])):
        if i >= limit:
            break
        match = replay.PRODUCT_RE.search(line)
        if match:
            seen[match.group(1).decode()] += 1
    return [p for p, _ in seen.most_common(4)]


def _post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def live_scoring(settings: Settings, report: TrainReport | None, seconds: float) -> None:
    """Step 7: `tickstore stream` + `tickstore serve`; replay a recording at its pace; print scores."""
    console.print(
        f"\n[bold]7. live scoring[/] stream -> online store -> scoring API, for {seconds:.0f} s", markup=True
    )
    uri = _model_uri(report)
    if uri is None:
        console.print("   skipped: no trained model to serve")
        return
    source = _source(settings)
    products = _products(source)
    port = free_port(settings.serve_port)
    # Its own topic: the retimed copies must never reach the lake through the sink.
    live = settings.model_copy(
        update={
            "topic_raw": "ticks.live-demo",
            "stream_group": f"tickstore-live-demo-{os.getpid()}",
            "serve_model_uri": uri,
            "serve_port": port,
        }
    )
    stream = OnlineStream(live)
    stream_log = logging.getLogger("ingest.stream")
    level = stream_log.level  # put back after the step: a process that goes on (a test) logs as before
    stream_log.setLevel(logging.WARNING)  # the score lines are the show
    failed: list[Exception] = []

    def run_stream() -> None:
        # a stream that stops (its online store gone) ends the step with its error, not a thread's
        # traceback and the rest of the step spent waiting for scores
        try:
            stream.run()
        except Exception as exc:
            failed.append(exc)

    stream_thread = threading.Thread(target=run_stream, name="stream", daemon=True)
    stream_thread.start()
    env = dict(os.environ)
    env.update(
        {
            "TICKSTORE_HOME": str(live.home.resolve()),
            "TICKSTORE_SERVE_MODEL_URI": uri,
            "TICKSTORE_SERVE_PORT": str(port),
            "TICKSTORE_ONLINE_STORE": live.online_store,
            "TICKSTORE_REDIS_URL": live.redis_url,
        }
    )
    if live.mlflow_uri:
        env["TICKSTORE_MLFLOW_URI"] = live.mlflow_uri
    server = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--workers", "2", "--threads", "4"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not failed:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        if failed:
            raise _stopped(failed[0]) from failed[0]
        console.print(f"   scorer on {base} (gunicorn), model {uri}")
        console.print(
            f"   replaying {source.name} at recorded pace, re-stamped as now, products {', '.join(products)}"
        )
        feed = threading.Thread(
            target=replay.replay,
            args=(live, [source]),
            kwargs={"speed": 1.0, "retime": True, "duration_s": seconds},
            daemon=True,
        )
        feed.start()
        _print_scores(base, products, seconds, running=lambda: not failed)
        if failed:
            raise _stopped(failed[0]) from failed[0]
        feed.join(10)
    finally:
        stream_log.setLevel(level)
        stream.stop()
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:  # a worker stuck in shutdown must not hang the demo
            console.print("   the scorer did not stop within 20 s of SIGTERM: killed")
            server.kill()
            server.wait(10)
        stream_thread.join(30)
    fresh = sorted(stream.stats.freshness_s)
    if fresh:
        console.print(
            f"   stream: {count_of(stream.stats.messages, 'message')}, "
            f"{count_of(stream.stats.batches, 'batch', 'batches')}; "
            f"produce -> online p50 {fresh[len(fresh) // 2] * 1000:.0f} ms, "
            f"p99 {fresh[min(len(fresh) - 1, int(0.99 * len(fresh)))] * 1000:.0f} ms"
        )
    _by_hand(settings, uri, source)


def _by_hand(settings: Settings, uri: str, source: Path) -> None:
    """The live step's commands to run by hand, each in a terminal, with the settings the demo was given."""
    # the broker is stopped after the demo, and without a champion the scorer needs the model it was
    # given here
    model = "" if uri == CHAMPION else f" --model {uri}"
    console.print("   yourself, each in a terminal of its own (README: the scoring API):")
    # without the settings the demo was given (`TICKSTORE_ONLINE_STORE=redis make demo`), a scorer in
    # another terminal reads another home's or store's features: none
    given = [
        f"TICKSTORE_{name.upper()}"
        for name in Settings.model_fields
        if name in settings.model_fields_set and name != "data_dir"  # data_dir: the replay names its file
    ]
    if given:
        console.print(f"     (each with {', '.join(given)} set as for this demo)")
    console.print("     tickstore broker start && tickstore stream")
    console.print(f"     tickstore serve{model}")
    console.print(f"     tickstore ingest replay {shlex.quote(str(source))} --speed 1 --retime")
    console.print(
        f"   then curl -s localhost:{settings.serve_port}/v1/score -H 'content-type: application/json' "
        '-d \'{"product_id": "BTC-USD"}\''
    )
    console.print("   and `tickstore status` for every part at a glance: how fresh, and what to do next")


def _stopped(exc: Exception) -> TickstoreError:
    """The demo's error for a stream that stopped during the live step."""
    return TickstoreError(f"the live step's stream stopped: {exc}")


def _print_scores(base: str, products: list[str], seconds: float, running: Callable[[], bool]) -> None:
    """Ask for scores every second; print a line whenever a product's features or probability change.

    New ticks, not only a new probability: a tree model gives one value over wide ranges of its
    inputs, and the demo's XGBoost champion printed four lines in 30 s, as if the stream had stopped.
    """
    last: dict[str, tuple[float | None, object]] = {}  # product -> (p, features_as_of) or (None, error)
    waited = explained = False
    end = time.monotonic() + seconds
    while time.monotonic() < end and running():
        time.sleep(1.0)
        status, body = _post(base + "/v1/score", {"product_ids": products})
        if status == 404 or status == 503:
            if not waited:
                console.print(
                    f"   ... waiting for the first ticks ({body.get('error', {}).get('message', status)})"
                )
                waited = True
            continue
        if status != 200:
            console.print(f"   scorer answered {status}: {body}")
            continue
        scored = [r for r in body["results"] if "error" not in r]
        if not explained and scored:  # once: what p and SPIKE mean, before the first line
            explained = True
            model = scored[0]["model"]
            within = f" within {model['horizon_s']:g} s" if model.get("horizon_s") else ""
            console.print(
                f"   p: the model's probability of a volatility spike{within}; SPIKE: p at or above "
                f"{scored[0]['threshold']:.4f}, its threshold (the one that maximized F1 on validation)"
            )
        for r in body["results"]:
            if "error" in r:  # a batch scores the products it can: this one's feed is quiet, or not yet seen
                if last.get(r["product_id"]) != (None, r["error"]["code"]):
                    last[r["product_id"]] = (None, r["error"]["code"])
                    console.print(
                        f"   {time.strftime('%H:%M:%S')} {r['product_id']:8s} not scored: {r['error']['message']}"
                    )
                continue
            p = r["probability"]
            if last.get(r["product_id"]) != (p, r.get("features_as_of")):
                last[r["product_id"]] = (p, r.get("features_as_of"))
                f = r["features"]
                console.print(
                    f"   {time.strftime('%H:%M:%S')} {r['product_id']:8s} p={p:.4f} "
                    f"{'SPIKE' if r['spike'] else 'calm '} ticks60={f.get('tick_count_60s')} "
                    f"vol60={(f.get('ret_std_60s') or 0) * 1e4:.3f}bp age={r['feature_age_s'] * 1000:.0f}ms"
                )
