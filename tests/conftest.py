"""Shared fixtures: one real embedded broker per session, a fresh lake and topics per test."""

from __future__ import annotations

import itertools
import os
import resource
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hypothesis
import pytest

from ingest import broker
from tickstore import redis_server
from tickstore.errors import TickstoreError
from tickstore.net import free_port
from tickstore.settings import Settings

REPO = Path(__file__).resolve().parent.parent

# Property tests draw the same examples every run, so that a commit's CI is the run its author saw:
# drawn afresh, a run found an example no earlier one had (a fault of the test's own) and failed a
# commit that changed nothing near it. HYPOTHESIS_PROFILE=explore draws new ones (say, before a stop).
hypothesis.settings.register_profile("fixed", derandomize=True, database=None)
hypothesis.settings.register_profile("explore", database=None)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fixed"))
SHARED = REPO.parent / "shared" / "data" / "coinbase"


# Two tiny CTEs ASOF-joined: the planner guesses ~1 row for each, the case where DuckDB would pick its
# quadratic nested-loop ASOF join unless the session is tuned (tickstore.lake.tune).
TINY_ASOF = """
WITH a AS (SELECT range AS t FROM range(5)), b AS (SELECT range AS t FROM range(5))
SELECT * FROM a ASOF LEFT JOIN b ON b.t < a.t
"""


def asof_plan(con: Any) -> str:
    """How ``con`` plans an ASOF join of small CTEs: 'asof' (sort-based) or 'nested loop'."""
    plan = "".join(r[1] for r in con.execute("EXPLAIN " + TINY_ASOF).fetchall())
    return "nested loop" if "NESTED_LOOP_JOIN" in plan else "asof" if "ASOF_JOIN" in plan else plan


@pytest.fixture(scope="session")
def broker_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real Tansu broker on a free loopback port for the whole session."""
    home = tmp_path_factory.mktemp("broker")
    s = Settings(home=home, broker_port=free_port())
    broker.start(s)
    yield s.broker_port
    broker.stop(s)


def start_redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    """A real redis-server (Debian's package; `make test` installs it) on ``port``, answering."""
    try:
        return redis_server.start(port, folder, databases=256)  # a database a test (redis_url)
    except TickstoreError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real redis-server on a free loopback port for the whole session."""
    port = free_port()
    proc = start_redis(port, tmp_path_factory.mktemp("redis"))
    yield port
    proc.terminate()
    proc.wait(10)


_redis_dbs = itertools.count(1)


@pytest.fixture
def redis_url(redis_port: int) -> str:
    """A Redis connection string with a database of this test's own."""
    return f"127.0.0.1:{redis_port},db={next(_redis_dbs)}"


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a test: its own data directory and, with a broker, its own topics and group."""

    def factory(**overrides: Any) -> Settings:
        tag = uuid.uuid4().hex[:8]
        base: dict[str, Any] = {
            "home": tmp_path / "home",
            "topic_raw": f"raw.{tag}",
            "topic_dlq": f"dlq.{tag}",
            "sink_group": f"sink.{tag}",
            "stream_group": f"stream.{tag}",
            "rebalance_timeout_ms": 3000,
            "sink_batch_ms": 200,
            "sink_idle_ms": 300,
            "log_every_s": 1.0,
        }
        base.update(overrides)
        return Settings(**base)

    return factory


@pytest.fixture
def kafka_settings(make_settings: Callable[..., Settings], broker_port: int) -> Settings:
    """Settings pointing at the session broker, with fresh topics and lake."""
    return make_settings(broker_port=broker_port)


def hold_catalog_lock(settings: Settings, seconds: int) -> subprocess.Popen[str]:
    """Another process holding the lake catalog's write lock, as a committing DuckLake writer does.

    (In this process Python's SQLite and DuckDB's are two libraries whose locks do not see each other.)
    """
    hold = (
        "import sqlite3, sys, time\n"
        f"db = sqlite3.connect({str(settings.lake_catalog)!r}, isolation_level=None)\n"
        f"db.execute('BEGIN IMMEDIATE'); print('held', flush=True); time.sleep({seconds}); db.rollback()\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


@contextmanager
def files_capped_at(size: int) -> Iterator[None]:
    """No file of this process grows past ``size`` bytes inside the block (RLIMIT_FSIZE), as on a disk
    with that much room left: a write crossing it is cut short, the next refused (EFBIG). The kernel's
    SIGXFSZ is ignored meanwhile, or it would kill pytest. In-process only: a ``preexec_fn`` that set
    it in a child makes Python fork the whole pytest process (ENOMEM in a full run)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    ignored = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, ignored)
