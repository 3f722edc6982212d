"""The scoring API on generated requests: every answer is JSON with a status it documents, never a 500."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from serving import create_app
from tests.serving.conftest import register_model, write_online
from tickstore.settings import Settings

PRODUCTS = st.sampled_from(["BTC-USD", "ETH-USD", "btc-usd", " BTC-USD", "", "A" * 65, "BTC-USD\x00"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10) | PRODUCTS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
FIELD = st.sampled_from(["product_id", "product_ids", "product", "extra"])
BODY = st.one_of(
    st.dictionaries(FIELD, JSON | PRODUCTS | st.lists(PRODUCTS, max_size=4), max_size=2).map(json.dumps),
    JSON.map(lambda v: json.dumps(v, allow_nan=True)),  # NaN and Infinity too, as Python writes them
    st.text(max_size=30),
)


@settings(
    max_examples=120,
    deadline=None,
    # one app and one model for every example: the requests change nothing they read
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=BODY, product=st.text(max_size=70))
# found by this test in CI: with the product path taking '/', "//" was answered by an HTML redirect
@example(body="{}", product="/0")
@example(body="{}", product="a//b/")
def test_any_request_gets_a_json_answer_with_a_documented_status(
    serving_settings: Settings, body: str, product: str
) -> None:
    client = _client(serving_settings)
    for response in (
        client.post("/v1/score", data=body, content_type="application/json"),
        client.get("/v1/features/" + product.replace("/", "%2F").replace("?", "%3F").replace("#", "%23")),
    ):
        # 503: the features went stale while the examples ran (never scored on stale data)
        assert response.status_code in (200, 400, 404, 405, 503), (body, product, response.get_data())
        answer: Any = response.get_json()
        assert isinstance(answer, dict), response.get_data()
        if response.status_code == 200:
            assert "error" not in answer
        else:
            assert answer["error"]["status"] == response.status_code and answer["error"]["message"]


_clients: dict[str, Any] = {}


def _client(s: Settings) -> Any:
    """One scorer per test (settings are new for each test, not for each example)."""
    key = str(s.home)
    if key not in _clients:
        _clients.clear()
        register_model(s, seed=1, threshold=0.5)
        write_online(s, "BTC-USD")
        write_online(s, "ETH-USD")
        _clients[key] = create_app(s, watch_model=False).test_client()
    return _clients[key]
