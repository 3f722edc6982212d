"""The processes the serving benchmark starts (Redis, the feature repo `feast serve` reads), where they
run, and waiting for them to answer."""

from __future__ import annotations

import atexit
import http.client
import os
import sys
import time
from pathlib import Path

import yaml

from tickstore import redis_server
from tickstore.errors import TickstoreError
from tickstore.net import free_port
from tickstore.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def env_for(s: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TICKSTORE_HOME=str(s.home),
        TICKSTORE_BROKER_PORT=str(s.broker_port),
        TICKSTORE_SERVE_PORT=str(s.serve_port),
        TICKSTORE_SERVE_MODEL_URI=s.serve_model_uri,
        TICKSTORE_REBALANCE_TIMEOUT_MS=str(s.rebalance_timeout_ms),
        TICKSTORE_STREAM_CPUS=s.stream_cpus,
        TICKSTORE_SERVE_CPUS=s.serve_cpus,
        TICKSTORE_ONLINE_STORE=s.online_store,
        TICKSTORE_REDIS_URL=s.redis_url,
    )
    return env


def placement(pin: bool) -> tuple[str, str]:
    """(stream CPUs, scorer CPUs): the last core for the stream, the rest for the scorer, as README advises.

    Niceness alone was not enough: on two shared cores the scorer's p99 at 100 req/s was 6.9-8.1 ms
    while the stream wrote, 3.5-5.5 ms on a core each (docs/decisions.md).
    """
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return "", ""
    return str(cpus[-1]), ",".join(map(str, cpus[:-1]))


def start_redis(home: Path, cpus: str) -> str:
    """A redis-server of the run's own on a free loopback port (on ``cpus``, if given), stopped at
    exit; its address."""
    port = free_port()
    try:
        proc = redis_server.start(port, home, cpus=cpus)
    except TickstoreError as exc:
        sys.exit(str(exc))
    atexit.register(proc.terminate)
    return f"127.0.0.1:{port}"


def wait_http(port: int, path: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"nothing answered 200 on :{port}{path} within {timeout:.0f} s")


def feast_repo(s: Settings, folder: Path) -> Path:
    """A feature repo folder for `feast serve`: our feature_store.yaml with this run's paths."""
    from tickstore_feast.config import repo_config

    folder.mkdir(parents=True, exist_ok=True)
    config = repo_config(s)
    raw = yaml.safe_load((ROOT / "feature_repo" / "feature_store.yaml").read_text())
    raw["registry"]["path"] = str(config.registry.path)
    if s.online_store == "redis":
        raw["online_store"] = {"type": "redis", "connection_string": s.redis_url}
    else:
        raw["online_store"]["path"] = str(config.online_store.path)
    raw["offline_store"]["home"] = str(s.home.resolve())
    (folder / "feature_store.yaml").write_text(yaml.safe_dump(raw))
    return folder
