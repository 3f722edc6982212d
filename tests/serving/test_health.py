"""The scorer's readiness (/readyz) and its answers when the tracking server or the online store is
not there: said at once, with what to do, the scorer staying up."""

from __future__ import annotations

import time

from serving import create_app
from tests.serving.conftest import register_model, write_online
from tickstore.settings import Settings


def test_a_tracking_server_that_does_not_answer_leaves_the_scorer_up_and_says_so(make_settings) -> None:
    from tests.conftest import free_port

    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    # each worker's first model lookup waited out MLflow's minutes of retries before it served anything
    app = create_app(make_settings(mlflow_uri=uri), watch_model=False)
    response = app.test_client().get("/readyz")
    assert time.monotonic() - started < 10
    assert response.status_code == 503
    assert any(
        f"the MLflow tracking server {uri} does not answer" in p for p in response.get_json()["problems"]
    )


def test_readyz_reports_an_unreachable_online_store(make_settings) -> None:
    from tests.conftest import free_port

    s = make_settings(online_store="redis", redis_url=f"127.0.0.1:{free_port()}")
    register_model(s, seed=1, threshold=0.5)
    client = create_app(s, watch_model=False).test_client()
    started = time.monotonic()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["online_store"] == "unreachable" and body["model"]["name"] == "tickstore-volatility"
    # which store, and what to do: it said only redis-py's "Error 111 connecting to ..."
    where = f"the Redis online store at {s.redis_url} cannot be read"
    assert any(where in p and "start redis-server there" in p for p in body["problems"]), body
    response = client.post("/v1/score", json={"product_id": "BTC-USD"})
    assert response.status_code == 503, response.get_json()
    assert where in response.get_json()["error"]["message"]
    # at once, not after redis-py's 5-10 s of backoff per request (4 s: room for a loaded CI machine's
    # first /readyz, which loads the model)
    assert time.monotonic() - started < 4


def test_a_redis_that_goes_away_gives_503_at_once(serving_settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import free_port, start_redis

    port = free_port()
    redis = start_redis(port, tmp_path / "redis")
    s = serving_settings.model_copy(update={"online_store": "redis", "redis_url": f"127.0.0.1:{port}"})
    try:
        register_model(s, seed=1, threshold=0.5)
        write_online(s, "BTC-USD")
        client = create_app(s, watch_model=False).test_client()
        assert client.post("/v1/score", json={"product_id": "BTC-USD"}).status_code == 200
    finally:
        redis.terminate()
        redis.wait(10)
    started = time.monotonic()
    response = client.post("/v1/score", json={"product_id": "BTC-USD"})
    # redis-py's own backoff held each request 5-10 s before its 503 (4 s: room for a loaded machine)
    assert time.monotonic() - started < 4
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "features_unavailable"
    # a batch the same: nothing can be scored with the store gone, so no per-product errors
    batch = client.post("/v1/score", json={"product_ids": ["BTC-USD", "ETH-USD"]})
    assert batch.status_code == 503 and batch.get_json()["error"]["code"] == "features_unavailable"


def test_what_the_scorer_says_of_its_stores_carries_no_password(make_settings) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import free_port

    # each down, each reached with a password: /readyz and the 503s are read by whoever asks
    port = free_port()
    s = make_settings(mlflow_uri=f"http://scorer:hunter2@127.0.0.1:{port}")
    client = create_app(s, watch_model=False).test_client()
    ready, score = client.get("/readyz"), client.post("/v1/score", json={"product_id": "BTC-USD"})
    said = ready.get_data(as_text=True) + score.get_data(as_text=True)
    assert ready.status_code == 503 and score.status_code == 503 and "hunter" not in said
    assert f"the MLflow tracking server http://scorer:***@127.0.0.1:{port} does not answer" in said

    port = free_port()
    s = make_settings(online_store="redis", redis_url=f"redis://:hunter3@127.0.0.1:{port}/0")
    register_model(s, seed=1, threshold=0.5)
    client = create_app(s, watch_model=False).test_client()
    ready, score = client.get("/readyz"), client.post("/v1/score", json={"product_id": "BTC-USD"})
    said = ready.get_data(as_text=True) + score.get_data(as_text=True)
    assert ready.status_code == 503 and score.status_code == 503 and "hunter" not in said
    assert f"the Redis online store at 127.0.0.1:{port},password=***,db=0 cannot be read" in said
