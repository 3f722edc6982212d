"""A batch of products is scored product by product: one that can't be scored says why in its place."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask.testing import FlaskClient

from serving import create_app
from tests.serving.conftest import register_model, write_online
from tickstore.settings import Settings


def test_a_batch_scores_what_it_can_and_names_the_rest(online_settings: Settings) -> None:
    register_model(online_settings, seed=1, threshold=0.5)
    write_online(online_settings, "BTC-USD", value=0.9)
    write_online(online_settings, "ETH-USD", value=-0.4)
    write_online(online_settings, "DEAD-USD", timedelta(seconds=301))  # past every view's TTL
    client = create_app(online_settings, watch_model=False).test_client()
    alone = {p: client.post("/v1/score", json={"product_id": p}).get_json() for p in ("BTC-USD", "ETH-USD")}

    asked = ["BTC-USD", "DEAD-USD", "doge-usd", "ETH-USD", "eth-usd"]
    response = client.post("/v1/score", json={"product_ids": asked})
    assert response.status_code == 200  # a quiet product (or a typo) failed the whole batch
    results = response.get_json()["results"]
    assert [r["product_id"] for r in results] == asked  # one for each, in the order asked
    for r in (results[0], results[3]):
        # (a batch's matrix product can round otherwise in the last bit than one row's)
        assert "error" not in r
        assert r["probability"] == pytest.approx(alone[r["product_id"]]["probability"], rel=1e-12)
        assert r["features"] == alone[r["product_id"]]["features"]
    dead = results[1]["error"]
    assert (dead["status"], dead["code"]) == (503, "stale_features") and "probability" not in results[1]
    assert dead["age_s"] > 300 and dead["expired_views"] == ["ticks_10s", "ticks_60s", "ticks_300s"]
    assert dead["message"].startswith("no tick of DEAD-USD for longer than every view's window")
    assert results[2]["error"] == {
        "status": 404,
        "code": "unknown_product",
        "message": "no online features for doge-usd",
    }
    assert "did you mean ETH-USD?" in results[4]["error"]["message"]
    # the metrics count the scores given, and the products refused by why
    before = [counted(client, m) for m in (PROBABILITIES, STALE, UNKNOWN)]
    client.post("/v1/score", json={"product_ids": asked})
    assert [counted(client, m) for m in (PROBABILITIES, STALE, UNKNOWN)] == [
        before[0] + 2,
        before[1] + 1,
        before[2] + 2,
    ]


PROBABILITIES = "tickstore_prediction_probability_count"
STALE = 'tickstore_unscored_products_total{code="stale_features"}'
UNKNOWN = 'tickstore_unscored_products_total{code="unknown_product"}'


def counted(client: FlaskClient, metric: str) -> float:
    """A counter's value on /metrics (0 before its first count)."""
    text = client.get("/metrics").get_data(as_text=True)
    return sum(float(v) for v in re.findall(rf"^{re.escape(metric)} (\S+)$", text, re.M))


def test_a_batch_of_which_nothing_can_be_scored_fails_as_a_whole(serving_settings: Settings) -> None:
    register_model(serving_settings, seed=1, threshold=0.5)
    write_online(serving_settings, "DEAD-USD", timedelta(seconds=301))
    write_online(serving_settings, "GONE-USD", timedelta(seconds=400))
    client = create_app(serving_settings, watch_model=False).test_client()
    stale = client.post("/v1/score", json={"product_ids": ["DEAD-USD", "GONE-USD"]})
    assert stale.status_code == 503  # every product stale: the stream or the feed is down
    error = stale.get_json()["error"]
    assert error["code"] == "stale_features" and set(error["products"]) == {"DEAD-USD", "GONE-USD"}
    # unknown ones first, as for a single product: the request names them all
    unknown = client.post("/v1/score", json={"product_ids": ["DEAD-USD", "doge-usd", "x"]})
    assert unknown.status_code == 404 and unknown.get_json()["error"]["unknown"] == ["doge-usd", "x"]


def test_the_spec_describes_a_batch_items_error(serving_settings: Settings) -> None:
    spec = create_app(serving_settings, watch_model=False).test_client().get("/openapi.json").get_json()
    batch = spec["paths"]["/v1/score"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    items = batch["oneOf"][1]["properties"]["results"]["items"]["oneOf"]
    assert items[1]["required"] == ["product_id", "error"]
    assert items[1]["properties"]["error"]["properties"]["code"]["enum"] == [
        "unknown_product",
        "stale_features",
    ]
