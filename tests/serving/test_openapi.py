"""`GET /openapi.json`: the API's spec, its features described as the feature SQL describes them."""

from __future__ import annotations

from serving.app import create_app
from tests.serving.conftest import feature_columns
from tickstore.settings import Settings
from tickstore_feast.repo import feature_store


def test_the_spec_names_each_served_feature_with_the_comment_beside_its_column(
    serving_settings: Settings,
) -> None:
    client = create_app(serving_settings, watch_model=False).test_client()
    # before any `feast apply` there is no registry: a feature is any name, as before
    bare = client.get("/openapi.json")
    assert bare.status_code == 200
    assert bare.get_json()["components"]["schemas"]["Features"] == {
        "type": "object",
        "additionalProperties": {"type": "number", "nullable": True},
    }
    feature_store(serving_settings)  # applies feature_repo/, as `tickstore stream` does
    spec = create_app(serving_settings, watch_model=False).test_client().get("/openapi.json").get_json()
    features = spec["components"]["schemas"]["Features"]
    assert set(features["properties"]) == set(feature_columns())  # the service's, not the clock's
    assert features["properties"]["ret_std_60s"] == {
        "type": "number",
        "nullable": True,
        "description": "sample std of mid-price log returns (NULL with < 2 returns)",
    }
    assert all(p["description"] for p in features["properties"].values())
    # a score's features and /v1/features' point there
    score = spec["paths"]["/v1/score"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert score["oneOf"][0]["properties"]["features"] == {"$ref": "#/components/schemas/Features"}
    online = spec["paths"]["/v1/features/{product_id}"]["get"]["responses"]["200"]["content"]
    assert online["application/json"]["schema"]["properties"]["features"] == {
        "$ref": "#/components/schemas/Features"
    }
