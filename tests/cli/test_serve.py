"""`tickstore stream` and `tickstore serve` (gunicorn) as a user runs them, end to end over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.cli.test_cli import env_for, tickstore
from tests.conftest import REPO, SHARED, free_port
from tests.serving.conftest import register_model
from tickstore.settings import Settings

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
    streamed = " ".join(tickstore(s, "stream", "--until-idle").stderr.split())
    assert "5,028 messages, 5,028 new ticks" in streamed and "produce -> online p50" in streamed

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
        server.wait(30)
    assert server.returncode == 0
