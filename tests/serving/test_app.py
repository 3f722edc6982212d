"""The Flask scoring API against a real MLflow registry and a real Feast online store."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flask import Flask
from mlflow import sklearn as mlflow_sklearn

from serving import create_app
from tests.serving.conftest import feature_columns, register_model, write_online
from tickstore.settings import Settings


def test_the_factory_builds_an_app_from_given_or_environment_settings(
    serving_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(serving_settings, watch_model=False)
    assert isinstance(app, Flask)
    assert {"api", "health", "metrics", "openapi"} <= set(app.blueprints)
    assert app.extensions["tickstore"].settings is serving_settings
    monkeypatch.setenv("TICKSTORE_HOME", str(serving_settings.home / "from-env"))
    other = create_app(watch_model=False)
    assert other.extensions["tickstore"].settings.home == serving_settings.home / "from-env"
    # no model yet: up, but not ready, and it says why
    response = other.test_client().get("/readyz")
    assert response.status_code == 503
    assert "tickstore train" in response.get_json()["problems"][0]
    assert other.test_client().get("/healthz").get_json() == {"status": "ok"}


def test_the_factory_names_a_variable_that_is_no_setting(
    serving_settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TICKSTORE_HOME", str(serving_settings.home))
    monkeypatch.setenv("TICKSTORE_SERVE_MODEL", "runs:/abc/model")
    create_app(watch_model=False)
    assert "TICKSTORE_SERVE_MODEL is not a tickstore setting and is ignored: did you mean " in caplog.text
    caplog.clear()
    create_app(serving_settings, watch_model=False)  # settings given: the caller's to check
    assert "not a tickstore setting" not in caplog.text


def test_closing_a_watching_app_stops_its_threads(
    serving_settings: Settings, watching_app: Callable[[Settings], Flask]
) -> None:
    # a test's app went on asking MLflow's process-wide store after the test, by then another's
    register_model(serving_settings, seed=1, threshold=0.5)
    state = watching_app(serving_settings).extensions["tickstore"]  # closed again at the end: no harm
    threads = [state._watcher, state.models._thread]
    assert all(t is not None and t.is_alive() for t in threads)
    started = time.monotonic()
    state.close()
    assert not any(t is not None and t.is_alive() for t in threads)
    assert time.monotonic() - started < 5  # each thread's wait is cut short, not slept out


def test_score_returns_the_models_probability_decision_and_features(
    online_settings: Settings, tmp_path: Path
) -> None:
    version = register_model(online_settings, seed=1, threshold=0.3)
    write_online(online_settings, "BTC-USD", value=0.9)
    write_online(online_settings, "ETH-USD", value=-0.4)
    client = create_app(online_settings, watch_model=False).test_client()
    assert client.get("/readyz").status_code == 200

    body = client.post("/v1/score", json={"product_id": "BTC-USD"}).get_json()
    # into the test's folder: MLflow's own temporary one is never removed
    model = mlflow_sklearn.load_model(f"models:/tickstore-volatility/{version}", dst_path=str(tmp_path))
    columns = feature_columns()
    x = pd.DataFrame([{c: 7.0 if c.startswith("tick_count") else 0.9 for c in columns}], columns=columns)
    assert body["probability"] == pytest.approx(model.predict_proba(x)[0, 1], rel=1e-12)
    assert body["spike"] == (body["probability"] >= 0.3) and body["threshold"] == 0.3
    assert body["model"]["name"] == "tickstore-volatility" and body["model"]["version"] == version
    assert body["model"]["kind"] == "logreg"  # the run's model param: what a runs:/ URI alone does not say
    # what the probability is of: a spike within the horizon the model was trained on
    assert (body["model"]["horizon_s"], body["model"]["spike_fwd_vol"]) == (60.0, 0.000287)
    assert client.get("/readyz").get_json()["model"] == body["model"]
    assert body["features"]["ret_std_60s"] == 0.9 and body["features"]["tick_count_300s"] == 7
    assert 0 < body["feature_age_s"] < 30 and body["expired_views"] == []

    batch = client.post("/v1/score", json={"product_ids": ["BTC-USD", "ETH-USD"]}).get_json()["results"]
    assert [r["product_id"] for r in batch] == ["BTC-USD", "ETH-USD"]
    assert batch[0]["probability"] == pytest.approx(body["probability"], rel=1e-12)
    assert batch[0]["probability"] != batch[1]["probability"]

    # Feast's Redis store appended "_ts:<view>" to the names it was asked for, in the caller's list:
    # /v1/features listed them, and every request asked Redis for one more field than the last
    state = client.application.extensions["tickstore"]
    asked = [list(names) for _, names in state.features().views]
    for _ in range(3):
        features = client.get("/v1/features/BTC-USD").get_json()["features"]
    assert sorted(features) == sorted(columns)
    assert [list(names) for _, names in state.features().views] == asked


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("not json", 400),
        ([1, 2], 400),
        ({}, 400),
        ({"product_id": "A", "product_ids": ["B"]}, 400),
        ({"product_id": 3}, 400),
        ({"product_ids": []}, 400),
        ({"product_ids": ["A"] * 101}, 400),
        ({"product_id": "BTC-USD", "threshold": 0.1}, 400),  # not read: refused, as the OpenAPI spec says
        ({"product_id": "A" * 65}, 400),
        ({"product_ids": ["BTC-USD", "A" * 65]}, 400),
        ({"product_id": "NOPE-USD"}, 404),
    ],
)
def test_errors_are_json_with_a_status_code_and_message(
    serving_settings: Settings, body, status: int
) -> None:
    register_model(serving_settings, seed=1, threshold=0.5)
    write_online(serving_settings, "BTC-USD")
    client = create_app(serving_settings, watch_model=False).test_client()
    response = (
        client.post("/v1/score", data=body, content_type="text/plain")
        if isinstance(body, str)
        else client.post("/v1/score", json=body)
    )
    assert response.status_code == status
    error = response.get_json()["error"]
    assert error["status"] == status and error["message"]
    assert client.get("/no/such/route").get_json()["error"]["status"] == 404
    assert client.get("/v1/score").get_json()["error"]["status"] == 405
    assert client.get("/v1/features/" + "A" * 65).get_json()["error"]["status"] == 400


def test_a_lower_case_or_spaced_product_gets_a_404_that_names_the_known_one(
    serving_settings: Settings,
) -> None:
    register_model(serving_settings, seed=1, threshold=0.5)
    write_online(serving_settings, "BTC-USD")
    client = create_app(serving_settings, watch_model=False).test_client()
    for response in (
        client.post("/v1/score", json={"product_id": "btc-usd"}),
        client.get("/v1/features/btc-usd"),
    ):
        assert response.status_code == 404
        error = response.get_json()["error"]
        assert error["unknown"] == ["btc-usd"]
        assert "no online features for btc-usd (" in error["message"]
        assert "did you mean BTC-USD?" in error["message"]
    # a space around the id (pasted from a CSV, say) is shown quoted, and the id without it suggested
    error = client.post("/v1/score", json={"product_ids": [" btc-usd"]}).get_json()["error"]
    assert error["unknown"] == [" btc-usd"]
    assert "no online features for ' btc-usd' (" in error["message"]
    assert "did you mean BTC-USD?" in error["message"]
    # nothing to suggest for a product that is unknown in any case
    assert (
        "did you mean"
        not in client.post("/v1/score", json={"product_id": "doge-usd"}).get_json()["error"]["message"]
    )


def test_a_scorer_before_any_stream_says_the_online_store_holds_nothing_yet(
    online_settings: Settings,
) -> None:
    from tickstore_feast.repo import feature_store

    register_model(online_settings, seed=1, threshold=0.5)
    feature_store(online_settings)  # applied, as `tickstore feast apply` leaves it: no row written yet
    client = create_app(online_settings, watch_model=False).test_client()
    store = "Redis" if online_settings.online_store == "redis" else "SQLite"
    for response in (
        client.post("/v1/score", json={"product_id": "BTC-USD"}),
        client.get("/v1/features/BTC-USD"),
        client.post("/v1/score", json={"product_ids": ["BTC-USD", "ETH-USD"]}),
    ):
        assert response.status_code == 404
        message = response.get_json()["error"]["message"]
        assert (
            f"the online store ({store}) holds no product's features yet. `tickstore stream` writes"
            in message
        )
    write_online(online_settings, "BTC-USD", apply=False)
    # once a stream wrote, an unknown product is only that
    message = client.post("/v1/score", json={"product_id": "NOPE-USD"}).get_json()["error"]["message"]
    assert message == "no online features for NOPE-USD"


def test_the_scorer_reads_the_views_as_the_registry_has_them_now(serving_settings: Settings) -> None:
    from tickstore_feast.repo import definitions, feature_store

    register_model(serving_settings, seed=1, threshold=0.5)
    write_online(serving_settings, "BTC-USD", age=timedelta(seconds=20))
    client = create_app(serving_settings, watch_model=False).test_client()
    assert client.post("/v1/score", json={"product_id": "BTC-USD"}).get_json()["expired_views"] == [
        "ticks_10s"
    ]
    view = definitions().ticks_60s
    view.ttl = timedelta(seconds=15)  # applied while the scorer runs
    feature_store(serving_settings, apply=False).apply([view])
    # it held the views as they were at its first request, until restarted; now the registry file is
    # looked at once a second and a new reader built beside the requests
    deadline = time.monotonic() + 10
    while True:
        body = client.post("/v1/score", json={"product_id": "BTC-USD"}).get_json()
        if body["expired_views"] != ["ticks_10s"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert body["expired_views"] == ["ticks_10s", "ticks_60s"] and body["features"]["ret_std_60s"] is None


def test_an_idle_scorer_answers_its_next_request_from_the_registry_as_it_is_now(
    serving_settings: Settings, watching_app: Callable[[Settings], Flask]
) -> None:
    from tickstore_feast.config import registry_path, registry_stamp
    from tickstore_feast.repo import definitions, feature_store

    register_model(serving_settings, seed=1, threshold=0.5)
    write_online(serving_settings, "BTC-USD", age=timedelta(seconds=20))
    app = watching_app(serving_settings)
    client = app.test_client()
    body = client.post("/v1/score", json={"product_id": "BTC-USD"}).get_json()
    assert body["expired_views"] == ["ticks_10s"]
    view = definitions().ticks_60s
    view.ttl = timedelta(seconds=15)
    feature_store(serving_settings, apply=False).apply([view])
    # no request meanwhile: the worker read the registry again only when asked, so the first request
    # after the apply answered from the views as they were
    state, applied = app.extensions["tickstore"], registry_stamp(registry_path(serving_settings))
    deadline = time.monotonic() + 15
    while state._registry_stamp != applied and time.monotonic() < deadline:
        time.sleep(0.1)
    body = client.post("/v1/score", json={"product_id": "BTC-USD"}).get_json()
    assert body["expired_views"] == ["ticks_10s", "ticks_60s"]


def test_a_model_reading_a_feature_the_service_lacks_is_refused_not_fed_nan(
    serving_settings: Settings,
) -> None:
    register_model(serving_settings, seed=1, threshold=0.5, columns=[*feature_columns(), "vwap_60s"])
    write_online(serving_settings, "BTC-USD")
    client = create_app(serving_settings, watch_model=False).test_client()
    response = client.post("/v1/score", json={"product_id": "BTC-USD"})
    # it scored with vwap_60s as NaN: a probability, status 200, nothing said
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "model_features_unavailable" and error["missing"] == ["vwap_60s"]
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "reads vwap_60s" in ready.get_json()["problems"][0]
    # told before any product is looked up: no request can be scored (it read the rows first, and
    # an unknown product got a 404 that hid the model's problem)
    other = client.post("/v1/score", json={"product_id": "NOPE-USD"})
    assert other.status_code == 503 and other.get_json()["error"]["code"] == "model_features_unavailable"


def _apply_sql(settings: Settings, text: str, ttl: timedelta | None = None) -> None:
    """Apply ticks_60s computed by ``text`` (and with ``ttl``), as `feast apply` after an edit would."""
    from tickstore_feast import DuckDBSource
    from tickstore_feast.repo import definitions, feature_store

    view = definitions().ticks_60s
    view.batch_source = DuckDBSource(name="ticks_60s", query=text, lookback=timedelta(seconds=60))
    view.ttl = ttl or view.ttl
    feature_store(settings, apply=False).apply([view])


def _score_until(client, wanted: int) -> Any:  # type: ignore[no-untyped-def]
    """POST /v1/score until it answers ``wanted`` (the scorer rereads a changed registry within ~1 s)."""
    deadline = time.monotonic() + 10
    while True:
        response = client.post("/v1/score", json={"product_id": "BTC-USD"})
        if response.status_code == wanted or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_a_model_trained_on_other_feature_sql_is_refused_until_that_sql_is_back(
    serving_settings: Settings,
) -> None:
    from tickstore.feature_sql import SQL_DIR

    sql = (SQL_DIR / "ticks_60s.sql").read_text()
    register_model(serving_settings, seed=1, threshold=0.5)
    write_online(serving_settings, "BTC-USD", age=timedelta(seconds=20))
    client = create_app(serving_settings, watch_model=False).test_client()
    assert client.post("/v1/score", json={"product_id": "BTC-USD"}).status_code == 200
    # the 60 s view's SQL edited after training (returns across gaps up to 61 s): it served the
    # values the new SQL computes to a model that learned from the old ones, and said nothing
    _apply_sql(serving_settings, sql.replace("60000000", "61000000"))
    response = _score_until(client, 503)
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "feature_definitions_changed" and error["views"] == ["ticks_60s"]
    assert "`tickstore train`" in error["message"] and "under sql/" in error["message"]
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "other SQL computed for ticks_60s" in ready.get_json()["problems"][0]
    # comments, layout and keyword case are not a new definition (the 15 s TTL shows the scorer has
    # read this version of the view: ticks 20 s old are past it)
    reworded = "-- reworded: the same SQL\n" + sql.replace("\n", "\n  ").replace("SELECT", "select")
    _apply_sql(serving_settings, reworded, ttl=timedelta(seconds=15))
    body = _score_until(client, 200).get_json()
    assert body["expired_views"] == ["ticks_10s", "ticks_60s"] and body["probability"] is not None


def test_a_model_logged_without_sql_fingerprints_is_served_as_before(serving_settings: Settings) -> None:
    from tickstore.feature_sql import SQL_DIR

    register_model(serving_settings, seed=1, threshold=0.5, fingerprinted=False)
    write_online(serving_settings, "BTC-USD")
    sql = (SQL_DIR / "ticks_60s.sql").read_text()
    _apply_sql(serving_settings, sql.replace("60000000", "61000000"))
    client = create_app(serving_settings, watch_model=False).test_client()
    response = client.post("/v1/score", json={"product_id": "BTC-USD"})
    assert response.status_code == 200
    assert response.get_json()["model"]["horizon_s"] is None  # not logged then: not guessed


# on both stores: Redis reads every view in one round trip
def test_stale_features_are_refused_and_expired_views_are_null_as_in_training(
    online_settings: Settings,
) -> None:
    register_model(online_settings, seed=1, threshold=0.5)
    write_online(online_settings, "QUIET-USD", timedelta(seconds=30))  # past 10 s, within 60 s
    write_online(online_settings, "DEAD-USD", timedelta(seconds=301))  # past every TTL
    client = create_app(online_settings, watch_model=False).test_client()

    quiet = client.post("/v1/score", json={"product_id": "QUIET-USD"}).get_json()
    assert quiet["expired_views"] == ["ticks_10s"]
    assert quiet["features"]["ret_std_10s"] is None and quiet["features"]["ret_std_60s"] == 0.5

    dead = client.post("/v1/score", json={"product_id": "DEAD-USD"})
    assert dead.status_code == 503
    assert dead.get_json()["error"]["code"] == "stale_features"
    assert client.get("/v1/features/DEAD-USD").status_code == 503
    features = client.get("/v1/features/QUIET-USD").get_json()
    assert features["features"]["tick_count_60s"] == 7 and 29 < features["feature_age_s"] < 60
    # a product id with a '/' (the sink takes one) is found by its path too: it was a 404
    write_online(online_settings, "SOL/USD", timedelta(seconds=30))
    assert client.get("/v1/features/SOL/USD").get_json()["product_id"] == "SOL/USD"


def test_a_probability_at_the_threshold_is_a_spike_as_training_counts_it(serving_settings: Settings) -> None:
    """`p >= threshold`, the rule training's metrics applied when it chose the threshold."""

    def score() -> dict[str, Any]:  # by a new app: one not watching MLflow serves the model it loaded
        client = create_app(serving_settings, watch_model=False).test_client()
        return client.post("/v1/score", json={"product_id": "BTC-USD"}).get_json()

    register_model(serving_settings, seed=1, threshold=0.5)
    write_online(serving_settings, "BTC-USD")
    p = score()["probability"]
    register_model(serving_settings, seed=1, threshold=p)  # the same model, its threshold that p
    body = score()
    assert (body["probability"], body["threshold"], body["spike"]) == (p, p, True)


def test_the_model_reloads_when_the_champion_alias_moves(
    serving_settings: Settings, watching_app: Callable[[Settings], Flask]
) -> None:
    first = register_model(serving_settings, seed=1, threshold=0.5)
    write_online(serving_settings, "BTC-USD")
    app = watching_app(serving_settings)
    client = app.test_client()
    assert client.post("/v1/score", json={"product_id": "BTC-USD"}).get_json()["model"]["version"] == first
    second = register_model(serving_settings, seed=2, threshold=0.25)
    deadline = time.monotonic() + 20
    while app.extensions["tickstore"].models.model.version != second:
        assert time.monotonic() < deadline, "the scorer never picked up the new champion"
        time.sleep(0.1)
    body = client.post("/v1/score", json={"product_id": "BTC-USD"}).get_json()
    assert body["model"]["version"] == second and body["threshold"] == 0.25


def test_metrics_and_openapi(serving_settings: Settings) -> None:
    register_model(serving_settings, seed=1, threshold=0.5)
    write_online(serving_settings, "BTC-USD")
    app = create_app(serving_settings, watch_model=False)
    client = app.test_client()
    for _ in range(3):
        client.post("/v1/score", json={"product_id": "BTC-USD"})
    client.post("/v1/score", json={"product_id": "NOPE"})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'tickstore_request_seconds_bucket{endpoint="/v1/score"' in text
    assert 'tickstore_request_errors_total{endpoint="/v1/score",status="404"}' in text
    assert "tickstore_prediction_probability_count" in text
    assert "tickstore_feature_age_seconds_bucket" in text
    # Feast's own feature-server metrics, registered by importing Feast, never updated here
    assert "feast_" not in text

    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    routes = {
        r.rule.replace("<path:product_id>", "{product_id}")
        for r in app.url_map.iter_rules()
        if r.endpoint != "static"
    }
    assert routes == set(spec["paths"]) | {"/openapi.json", "/"}
    index = client.get("/").get_json()["routes"]
    assert index["POST /v1/score"] == spec["paths"]["/v1/score"]["post"]["summary"]
    assert {route.split(" ")[1] for route in index} == routes - {"/"}
