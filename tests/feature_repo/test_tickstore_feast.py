"""Feast's CLI through `tickstore feast`: its UI over the registry, a Redis online store that is down, init."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

import pytest

from tests.conftest import REPO
from tickstore.settings import Settings


@pytest.mark.slow
def test_feast_ui_serves_the_registry(make_settings: Callable[..., Settings]) -> None:
    # `feast ui` imported Feast's gRPC registry server, whose packages were not installed: a traceback
    from tests.cli.helpers import env_for, tickstore
    from tests.conftest import free_port

    s = make_settings()
    tickstore(s, "feast", "apply")
    port = free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "cli", "feast", "ui", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=env_for(s),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/v1/feature_views?project=tickstore", timeout=5
                ) as r:
                    views = json.load(r)["featureViews"]
                break
            except OSError:
                assert ui.poll() is None, ui.communicate()[1].decode()[-2000:]
                assert time.monotonic() < deadline, "feast ui did not answer in 90 s"
                time.sleep(0.5)
        names = {v["spec"]["name"] for v in views}
        assert {"ticks_10s", "ticks_60s", "ticks_300s", "tick_clock"} <= names
        source = next(v for v in views if v["spec"]["name"] == "ticks_60s")["spec"]["batchSource"]
        assert source["dataSourceClassType"] == "tickstore_feast.source.DuckDBSource"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert r.status == 200 and b"<html" in r.read().lower()  # the UI's page itself
    finally:
        ui.terminate()
        ui.wait(timeout=30)


def test_tickstore_feast_names_a_redis_online_store_that_is_down(
    make_settings: Callable[..., Settings],
) -> None:
    # it was redis-py's ConnectionError as a traceback, after ~10 s of its retries
    from tests.cli.helpers import env_for, tickstore
    from tests.conftest import free_port

    s = make_settings()
    address = f"127.0.0.1:{free_port()}"
    env = dict(env_for(s), TICKSTORE_ONLINE_STORE="redis", TICKSTORE_REDIS_URL=address)
    for args in (
        ["materialize", "2026-01-01T00:00:00", "2026-01-01T00:01:00"],
        ["get-online-features", "-f", "ticks_60s:ret_std_60s", "-e", "product_id=BTC-USD"],
    ):
        run = tickstore(s, "feast", *args, env=env, check=False)
        said = " ".join(run.stderr.split())
        assert run.returncode == 1 and "Traceback" not in said, said
        assert f"the Redis online store at {address} does not answer" in said and "redis-server" in said


def test_tickstore_feast_init_makes_no_new_project_and_says_what_to_run(
    make_settings: Callable[..., Settings], tmp_path
) -> None:
    # Feast's init made a new, unrelated project (a random name, its driver-stats example) where it ran
    from tests.cli.helpers import tickstore

    s = make_settings()
    here = tmp_path / "here"
    here.mkdir()
    for args in (["init"], ["--log-level", "INFO", "init", "my_repo"]):
        run = tickstore(s, "feast", *args, check=False, cwd=here)
        said = " ".join(run.stderr.split())
        assert run.returncode == 2 and "Traceback" not in said, said
        assert f"tickstore's feature repo is {REPO / 'feature_repo'} and needs no init" in said
        assert "`tickstore feast apply` registers it" in said and "run Feast's CLI: feast init" in said
        assert list(here.iterdir()) == []
    # Feast's own help for it is still there
    assert "Create a new Feast repository" in tickstore(s, "feast", "init", "--help", cwd=here).stdout
