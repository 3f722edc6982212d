"""What `POST /v1/score` makes of its body: JSON whatever the Content-Type, and a 400 saying what is wrong."""

from __future__ import annotations

import pytest

from serving import create_app
from tests.serving.conftest import register_model, write_online
from tickstore.settings import Settings


@pytest.fixture
def client(serving_settings: Settings):
    register_model(serving_settings, seed=1, threshold=0.5)
    write_online(serving_settings, "BTC-USD")
    return create_app(serving_settings, watch_model=False).test_client()


def test_a_json_body_is_read_whatever_its_content_type_and_megabytes_are_refused(client) -> None:
    # `curl -d '{"product_id": "BTC-USD"}'` labels its body a form: that was a 400 "send a JSON object"
    for content_type in ("application/x-www-form-urlencoded", "text/plain", None):
        response = client.post("/v1/score", data='{"product_id": "BTC-USD"}', content_type=content_type)
        assert response.status_code == 200, (content_type, response.get_json())
        assert response.get_json()["product_id"] == "BTC-USD"
    huge = '{"product_id": "BTC-USD", "pad": "' + "x" * 1_000_000 + '"}'
    response = client.post("/v1/score", data=huge, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"
    assert response.get_json()["error"]["message"].startswith("the request body is over 64 KiB")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        # 5,000 brackets (10 KB) were a RecursionError in the JSON parser: a 500 with Werkzeug's text
        (b"[" * 5000 + b"]" * 5000, "nests too deeply"),
        (b'{"product_id": "BTC-USD"', "not valid JSON: Expecting ',' delimiter: line 1 column 25"),
        (b'{"product_id": "BTC-\xff"}', "not UTF-8 text: invalid start byte at byte 20"),
        (b"", "the body is empty"),
        (b" \n", "the body is empty"),
        (b"[]", "send a JSON object"),
        # a list where one product goes, and the other way round: the message names the other field
        (
            b'{"product_id": ["BTC-USD"]}',
            'a non-empty string, e.g. BTC-USD: a list goes in product_ids, {"product_ids": [...]}',
        ),
        (b'{"product_id": ""}', "product_id must be a non-empty string, e.g. BTC-USD"),
        (
            b'{"product_ids": "BTC-USD"}',
            'non-empty strings: one product goes in product_id, {"product_id": "..."}',
        ),
        (b'{"product_ids": [""]}', "product_ids must be a non-empty list of non-empty strings"),
    ],
)
def test_a_body_that_is_no_request_gets_a_400_saying_why(client, body: bytes, says: str) -> None:
    response = client.post("/v1/score", data=body, content_type="application/json")
    assert response.status_code == 400, response.get_data()
    error = response.get_json()["error"]
    assert error["code"] == "bad_request" and says in error["message"], error
    # the scorer goes on answering
    assert client.post("/v1/score", json={"product_id": "BTC-USD"}).status_code == 200


def test_a_wrong_route_or_method_says_what_is_there(client) -> None:
    response = client.get("/v1/score")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    assert response.get_json()["error"]["message"] == "/v1/score takes POST, not GET"
    assert response.content_type == "application/json"
    response = client.delete("/healthz")
    assert response.status_code == 405 and "GET" in response.headers["Allow"]
    assert response.get_json()["error"]["message"].startswith("/healthz takes GET")
    for path in ("/v1/features/", "/v1/features", "/v2/score"):
        response = client.get(path)
        assert response.status_code == 404
        message = response.get_json()["error"]["message"]
        assert message == f"no route GET {path}: GET / lists the routes, e.g. POST /v1/score", message


def test_the_limits_on_a_request_let_their_own_size_through(client) -> None:
    """At most MAX_BATCH products a request and MAX_ID characters a product id: those are served, one
    more is a 400."""
    from serving.api import MAX_BATCH, MAX_ID

    response = client.post("/v1/score", json={"product_ids": ["BTC-USD"] * MAX_BATCH})
    assert response.status_code == 200 and len(response.get_json()["results"]) == MAX_BATCH
    response = client.post("/v1/score", json={"product_ids": ["BTC-USD"] * (MAX_BATCH + 1)})
    assert response.status_code == 400
    assert f"at most {MAX_BATCH} product_ids" in response.get_json()["error"]["message"]
    response = client.post("/v1/score", json={"product_id": "X" * MAX_ID})
    assert (response.status_code, response.get_json()["error"]["code"]) == (404, "unknown_product")
    response = client.post("/v1/score", json={"product_id": "X" * (MAX_ID + 1)})
    assert response.status_code == 400
    assert f"at most {MAX_ID} characters" in response.get_json()["error"]["message"]
