"""`tickstore stream` and `tickstore serve` (gunicorn) as a user runs them, end to end over HTTP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from tests.cli.helpers import env_for, tickstore
from tests.conftest import REPO, SHARED, free_port
from tests.serving.conftest import MODEL, register_model
from tickstore.settings import Settings

LISTEN, ESTABLISHED = "0A", "01"  # socket states as /proc/net/tcp writes them
RECORDING = SHARED / "advanced_trade" / "btc-eth-usd_2026-04-03_no-sizes.ndjson"


def http(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    text = raw.decode()
    return status, json.loads(text) if text.startswith(("{", "[")) else text


@pytest.mark.kafka
@pytest.mark.slow
def test_replay_stream_serve_score_end_to_end(
    make_settings: Callable[..., Settings], broker_port: int
) -> None:
    s = make_settings(broker_port=broker_port, serve_port=free_port())
    version = register_model(s, seed=3, threshold=0.5)
    replayed = tickstore(s, "ingest", "replay", "--retime", str(RECORDING))
    assert "published 5,028 messages" in " ".join(replayed.stderr.split())
    # on a core of its own, as on a machine shared with the scorer (README: stream and scorer side by side)
    last = max(os.sched_getaffinity(0))
    streamed = " ".join(tickstore(s, "stream", "--until-idle", "--cpus", str(last)).stderr.split())
    assert "5,028 messages, 5,028 new ticks" in streamed
    # all published before the stream started: their wait is no measure of how fresh it keeps the store
    assert "no latency to report (5,028 produced before the stream joined its group, not counted" in streamed
    # the stream yields the CPU to the scorer (read back from the kernel, never lower than it started at)
    # and ran on the core it was given, every thread of it (read back too)
    assert f"ran at nice {max(s.stream_nice, os.nice(0))} on CPUs {last};" in streamed + ";"
    # run again: nothing new, and what it re-read to refill its windows is said
    again = " ".join(tickstore(s, "stream", "--until-idle").stderr.split())
    assert "stream: 0 messages (and 5,028 read before, re-read to refill the windows), 0 new ticks" in again

    server = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--workers", "2", "--threads", "2"],
        env=env_for(s),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{s.serve_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if http(base + "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "the scorer never became ready"
            time.sleep(0.2)
        status, body = http(base + "/v1/score", {"product_ids": ["BTC-USD", "ETH-USD"]})
        assert status == 200, body
        for result in body["results"]:
            assert 0 <= result["probability"] <= 1 and result["model"]["version"] == version
            assert result["features"]["tick_count_60s"] >= 1
            assert set(result["expired_views"]) <= {"ticks_10s"}
        for _ in range(20):  # spread over both workers
            http(base + "/v1/score", {"product_id": "BTC-USD"})
        assert http(base + "/v1/score", {"product_id": "DOGE-USD"})[0] == 404
        status, metrics = http(base + "/metrics")
        # samples of every worker, summed: 20 single scores + 2 in the batch
        line = next(x for x in metrics.splitlines() if x.startswith("tickstore_prediction_probability_count"))
        assert float(line.split()[-1]) == 22
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0
    # workers leave cleanly: no abort from DuckDB's instance inherited across the fork
    assert "terminate called" not in err and "SIGABRT" not in err, err[-2000:]
    assert "Worker exiting" in err
    # gunicorn's start-up line names the address even though the master holds no socket (reuse_port)
    assert f"Listening at: http://127.0.0.1:{s.serve_port} (a socket per worker)" in err, err[:2000]
    assert "Control socket" not in err  # not one per user in ~/.gunicorn, taken over by the next server


def _tcp_sockets(port: int) -> list[tuple[str, int]]:
    """(state, inode) of every TCP socket whose local port is ``port``, from /proc/net (Linux)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.append((fields[3], int(fields[9])))
    return found


def _open_files(pid: int) -> list[str]:
    """What the file descriptors of process ``pid`` point at."""
    opened = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            opened.append(os.readlink(fd))
        except OSError:  # closed while we looked
            continue
    return opened


def _socket_owners(parent: int) -> dict[int, int]:
    """Socket inode -> pid, over the child processes of ``parent`` (the gunicorn workers)."""
    owners = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) != parent:
                continue
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    owners[int(target[8:-1])] = int(proc.name)
        except OSError:  # a process that ended while we looked
            continue
    return owners


def _cpus_allowed(pid: int) -> str:
    """The CPUs every thread of ``pid`` may run on, as /proc writes them (`0-1`); "mixed" if they differ."""
    lists = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        status = (task / "status").read_text()
        lists.add(next(x.split()[1] for x in status.splitlines() if x.startswith("Cpus_allowed_list")))
    return lists.pop() if len(lists) == 1 else "mixed"


def _serve_until_listening(
    s: Settings, *args: str, workers: int, unset: tuple[str, ...] = (), extra: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """`tickstore serve *args` on ``s`` without a model (an alias not set: up, not ready), once ``workers``
    sockets listen.

    ``unset``: variables of the caller's environment the server must not see; ``extra``: more it sees.
    """
    env = {**env_for(s), "TICKSTORE_SERVE_MODEL_URI": "models:/tickstore-volatility@none", **(extra or {})}
    server = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", *args],
        env={k: v for k, v in env.items() if k not in unset},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len([st for st, _ in _tcp_sockets(s.serve_port) if st == LISTEN]) < workers:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, f"{workers} workers never listened"
            time.sleep(0.2)
    except BaseException:
        server.kill()
        server.wait(30)
        raise
    return server


@pytest.mark.slow
def test_serve_spreads_connections_over_workers_and_refuses_a_second_server(
    make_settings: Callable[..., Settings],
) -> None:
    # no model needed: the app is up (healthz) while it is not ready
    s = make_settings(serve_port=free_port())
    first = min(os.sched_getaffinity(0))
    server = _serve_until_listening(
        s,
        "--workers",
        "3",
        "--threads",
        "1",
        "--cpus",
        str(first),
        "--model",
        "models:/tickstore-volatility@given",
        workers=3,
    )
    try:
        # --model wins over TICKSTORE_SERVE_MODEL_URI (an alias not set, as --model's): the model it tried to load
        status, body = http(f"http://127.0.0.1:{s.serve_port}/readyz")
        said = json.dumps(body)
        assert status == 503 and "@given" in said and "@none" not in said, said
        # every worker listens on a socket of its own ...
        listening = [inode for st, inode in _tcp_sockets(s.serve_port) if st == LISTEN]
        owners = _socket_owners(server.pid)
        assert len({owners.get(i) for i in listening} - {None}) == 3
        # the master asked MLflow about the model before it forked them: none of its database
        # connections may be left open for them to inherit
        assert not [f for f in _open_files(server.pid) if "mlflow" in f], _open_files(server.pid)
        # --cpus holds for the master and every thread of every worker it forked
        workers = set(owners.values())
        assert {_cpus_allowed(pid) for pid in workers | {server.pid}} == {str(first)}
        # ... so keep-alive connections opened at once are spread, not all taken by one worker
        conns = [HTTPConnection("127.0.0.1", s.serve_port, timeout=10) for _ in range(24)]
        for c in conns:
            c.request("GET", "/healthz")
            response = c.getresponse()
            response.read()
            assert response.status == 200
        owners = _socket_owners(server.pid)
        per_worker = Counter(
            owners[i] for st, i in _tcp_sockets(s.serve_port) if st == ESTABLISHED and i in owners
        )
        assert sum(per_worker.values()) == 24, per_worker
        # 8 each on average (more than 16 on one: p < 1e-3); one shared socket gave 24 and 32
        assert max(per_worker.values()) <= 16, per_worker
        for c in conns:
            c.close()

        second = tickstore(s, "serve", check=False)
        assert second.returncode != 0
        assert f"cannot listen on 127.0.0.1:{s.serve_port}" in second.stderr and "--port" in second.stderr
        holder = re.search(r"pid (\d+) \((.*)\) holds it", second.stderr)  # a worker of the first
        assert holder is not None and int(holder[1]) in set(owners.values()), second.stderr
        assert http(f"http://127.0.0.1:{s.serve_port}/healthz")[0] == 200  # the first one serves on
    finally:
        server.terminate()
        server.wait(30)
    assert server.returncode == 0


def _children(parent: int) -> set[int]:
    """The pids of ``parent``'s child processes (gunicorn's workers), from /proc."""
    children = set()
    for proc in Path("/proc").iterdir():
        try:
            if (
                proc.name.isdigit()
                and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent
            ):
                children.add(int(proc.name))
        except OSError:  # a process that ended while we looked
            continue
    return children


@pytest.mark.slow
def test_serve_starts_a_worker_per_pinned_cpu_else_four(make_settings: Callable[..., Settings]) -> None:
    # on a core of its own more workers only take turns: 4 on one pinned core queued requests at 500 req/s
    unset = ("TICKSTORE_SERVE_WORKERS", "TICKSTORE_SERVE_CPUS")  # a caller's own would decide
    first = str(min(os.sched_getaffinity(0)))
    for cpus, expected, said in ((["--cpus", first], 1, "1 worker (one per CPU) x"), ([], 4, "4 workers x")):
        s = make_settings(serve_port=free_port())
        server = _serve_until_listening(s, "--threads", "1", *cpus, workers=expected, unset=unset)
        try:
            time.sleep(1.0)  # gunicorn forks its workers one after another: any more would be up by now
            assert len(_children(server.pid)) == expected
        finally:
            server.terminate()
            _, err = server.communicate(timeout=30)
        assert f"(gunicorn, {said} 1 thread, CPUs" in " ".join(err.split()), err[:2000]
        # every worker found no model: said once, not once a worker
        assert err.count("no model at models:/tickstore-volatility@none") == 1, err[:4000]


@pytest.mark.slow
def test_serve_listens_on_an_ipv6_address_and_names_a_host_it_cannot_use(
    make_settings: Callable[..., Settings],
) -> None:
    # `--host ::1` was "'' is not a valid port number" (gunicorn read `::1:8000` as a host), and an
    # address no interface has a socket.gaierror traceback
    s = make_settings(serve_port=free_port())
    server = _serve_until_listening(s, "--host", "::1", "--workers", "1", "--threads", "1", workers=1)
    try:
        with urllib.request.urlopen(f"http://[::1]:{s.serve_port}/healthz", timeout=10) as response:
            assert response.status == 200
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert f"scoring API on http://[::1]:{s.serve_port} (gunicorn" in " ".join(err.split()), err[:2000]
    unknown = tickstore(s, "serve", "--host", "999.1.1.1", check=False)
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr, unknown.stderr
    assert (
        "cannot listen on 999.1.1.1: Name or service not known. Give an address of this machine"
        in " ".join(unknown.stderr.split())
    )


@pytest.mark.slow
def test_serve_says_at_start_when_the_redis_online_store_does_not_answer(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    """It started without a word and answered every request 503 (its /readyz said why); it still
    starts, as Redis may come up after it, and says nothing of a Redis that answers."""
    said_down = "warning: the Redis online store at 127.0.0.1:{port} does not answer"
    for url, warned in ((f"127.0.0.1:{free_port()}", True), (redis_url, False)):
        s = make_settings(serve_port=free_port())
        extra = {"TICKSTORE_ONLINE_STORE": "redis", "TICKSTORE_REDIS_URL": url}
        server = _serve_until_listening(s, "--workers", "1", "--threads", "1", workers=1, extra=extra)
        try:
            status, body = http(f"http://127.0.0.1:{s.serve_port}/readyz")
        finally:
            server.terminate()
            _, err = server.communicate(timeout=30)
        err = " ".join(err.split())
        down = said_down.format(port=url.split(":")[1].split(",")[0])
        assert (down in err) is warned, err[:3000]
        assert (
            "or use TICKSTORE_ONLINE_STORE=sqlite; until it answers, every score is a 503 (features_unavailable)"
            in err
        ) is warned, err[:3000]
        assert status == 503 and body["ready"] is False, body  # up either way; not ready (no model)


def test_serve_refuses_more_workers_than_the_memory_holds(make_settings: Callable[..., Settings]) -> None:
    """Each worker loads the model, Feast and MLflow (~300 MB): ten thousand, ~2.9 TB, were let
    through to gunicorn, which forks them one after another."""
    s = make_settings(serve_port=free_port())
    run = tickstore(s, "serve", "--workers", "10000", check=False)
    said = " ".join(run.stderr.split())
    assert run.returncode == 2 and "Traceback" not in said, said
    assert re.search(
        r"10000 workers \(--workers or TICKSTORE_SERVE_WORKERS\): .* 2929\.7 GB in all, .* use at most \d+",
        said,
    )


def test_serve_refuses_a_model_uri_that_names_nothing(make_settings: Callable[..., Settings]) -> None:
    """A runs:/ id with a typo, or a run's id alone, started a scorer that answered 503 for ever; an
    alias not set yet is still served as it appears (the scorer waits for it, not ready)."""
    s = make_settings(serve_port=free_port())
    version = register_model(s, seed=1, threshold=0.5)
    run = tickstore(s, "serve", "--model", "runs:/0123abc/model", check=False)
    said = " ".join(run.stderr.split())
    assert run.returncode == 1 and "Traceback" not in said, said
    assert said.startswith("Error: cannot serve runs:/0123abc/model: Run with id=0123abc not found. ")
    run = tickstore(s, "serve", "--model", "models:/tickstore-volatility/2", check=False)
    assert run.returncode == 1 and "(name=tickstore-volatility, version=2) not found" in run.stderr
    # a run's id alone is read by MLflow as a folder: the scorer warned "No such artifact" for ever
    run_id = MlflowClient().get_model_version(MODEL, version).run_id
    run = tickstore(s, "serve", "--model", run_id, check=False)
    said = " ".join(run.stderr.split())
    assert run.returncode == 1 and said.startswith(
        f"Error: cannot serve {run_id}: no folder {run_id} (a path names a model's folder); did you mean "
        f"runs:/{run_id}/model?"
    ), said
