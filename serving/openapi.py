"""`GET /openapi.json`: the API described in OpenAPI 3.0; `GET /`: what is where, for a browser or curl."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from serving.api import MAX_BATCH, MAX_ID
from serving.features import FeaturesUnavailable
from serving.state import state
from tickstore.errors import TickstoreError

bp = Blueprint("openapi", __name__)

ERROR = {"$ref": "#/components/schemas/Error"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


VALUE = {"type": "number", "nullable": True}
# a feature's value by name; /openapi.json lists the served ones, each with what it is (see `openapi`)
FEATURES = {"$ref": "#/components/schemas/Features"}
SCORE = {
    "type": "object",
    "required": ["product_id", "probability", "spike", "threshold", "model", "features", "feature_age_s"],
    "properties": {
        "product_id": {"type": "string"},
        "probability": {"type": "number", "minimum": 0, "maximum": 1},
        "spike": {"type": "boolean", "description": "probability >= the model's decision threshold"},
        "threshold": {"type": "number"},
        "model": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string", "nullable": True},
                "run_id": {"type": "string"},
                "uri": {"type": "string", "description": "as loaded, an alias pinned to its version"},
                "kind": {
                    "type": "string",
                    "nullable": True,
                    "description": "zscore, logreg or xgboost, as `tickstore train` logged it",
                },
                "horizon_s": {
                    "type": "number",
                    "nullable": True,
                    "description": "probability is that of a spike within this many seconds from "
                    "features_as_of: the realized volatility of mid-price log returns over them above "
                    "spike_fwd_vol (the label `tickstore train --horizon` trained on)",
                },
                "spike_fwd_vol": {
                    "type": "number",
                    "nullable": True,
                    "description": "the forward realized volatility a spike exceeds: the training "
                    "split's --percentile of it",
                },
            },
        },
        "features": FEATURES,
        "feature_age_s": {"type": "number", "description": "now - event time of the newest tick"},
        "features_as_of": {"type": "string", "format": "date-time"},
        "expired_views": {
            "type": "array",
            "items": {"type": "string"},
            "description": "views older than their TTL; their features are null, as in training",
        },
    },
}

ITEM_ERROR = {
    "type": "object",
    "required": ["product_id", "error"],
    "description": "A product of a batch that could not be scored; the others are",
    "properties": {
        "product_id": {"type": "string"},
        "error": {
            "type": "object",
            "required": ["status", "code", "message"],
            "properties": {
                "status": {"type": "integer", "description": "what a request for it alone would answer"},
                "code": {"type": "string", "enum": ["unknown_product", "stale_features"]},
                "message": {"type": "string"},
                "age_s": {
                    "type": "number",
                    "description": "stale_features: now - event time of the newest tick",
                },
                "expired_views": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "tickstore scoring API",
        "version": "1",
        "description": "Volatility-spike scores from the MLflow champion over online tick features.",
    },
    "paths": {
        "/v1/score": {
            "post": {
                "summary": "Score one product, or a batch",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {
                                        "type": "object",
                                        "required": ["product_id"],
                                        "properties": {
                                            "product_id": {
                                                "type": "string",
                                                "minLength": 1,
                                                "maxLength": MAX_ID,
                                            }
                                        },
                                        "additionalProperties": False,
                                    },
                                    {
                                        "type": "object",
                                        "required": ["product_ids"],
                                        "properties": {
                                            "product_ids": {
                                                "type": "array",
                                                "items": {
                                                    "type": "string",
                                                    "minLength": 1,
                                                    "maxLength": MAX_ID,
                                                },
                                                "minItems": 1,
                                                "maxItems": MAX_BATCH,
                                            }
                                        },
                                        "additionalProperties": False,
                                    },
                                ]
                            }
                        }
                    },
                },
                "responses": {
                    "200": _ok(
                        {
                            "oneOf": [
                                SCORE,
                                {
                                    "type": "object",
                                    "properties": {
                                        "results": {
                                            "type": "array",
                                            "description": "one for each product asked, in their order",
                                            "items": {"oneOf": [SCORE, ITEM_ERROR]},
                                        }
                                    },
                                },
                            ]
                        }
                    ),
                    "400": _error("The body is not a valid score request"),
                    "404": _error("No online features for the product (or for any product of the batch)"),
                    "413": _error("The body is over 64 KiB"),
                    "503": _error(
                        "No model loaded, online store unavailable, features older than the TTL (for "
                        "the product, or for every product of the batch), a "
                        "feature the model reads that the service does not serve, or a view it reads "
                        "whose SQL changed since it was trained (feature_definitions_changed)"
                    ),
                },
            }
        },
        "/v1/features/{product_id}": {
            "get": {
                "summary": "A product's online features and their age",
                "parameters": [
                    {
                        "name": "product_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "maxLength": MAX_ID},
                    }
                ],
                "responses": {
                    "200": _ok({"type": "object", "properties": {"features": FEATURES}}),
                    "404": _error("No online features for the product"),
                    "503": _error("Online store unavailable, or features older than the TTL"),
                },
            }
        },
        "/healthz": {
            "get": {"summary": "Liveness", "responses": {"200": {"description": "The process answers"}}}
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: a model is loaded and the online store answers",
                "responses": {
                    "200": {"description": "Ready"},
                    "503": {"description": "Not ready, with reasons"},
                },
            }
        },
        "/metrics": {
            "get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Text format"}}}
        },
    },
    "components": {
        "schemas": {
            "Features": {"type": "object", "additionalProperties": VALUE},
            "Error": {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["status", "code", "message"],
                        "properties": {
                            "status": {"type": "integer"},
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    }
                },
            },
        }
    },
}


@bp.get("/openapi.json")
def openapi() -> Response:
    """The spec, its Features schema naming each feature the scorer serves with what it is (the
    comment beside its column in `sql/`, as Feast's registry holds it), when the registry is there."""
    try:
        described = state().features().described()
    except (FeaturesUnavailable, TickstoreError):  # no registry (or no feature_repo/): any name
        return jsonify(SPEC)
    features = {
        "type": "object",
        "properties": {
            name: {**VALUE, "description": said} if said else VALUE for name, said in described.items()
        },
        "additionalProperties": VALUE,
    }
    return jsonify(
        {**SPEC, "components": {"schemas": {**SPEC["components"]["schemas"], "Features": features}}}
    )


@bp.get("/")
def index() -> Response:
    """The routes and what each does (a browser pointed at the scorer found only a 404)."""
    routes = {
        f"{method.upper()} {path}": operation["summary"]
        for path, methods in SPEC["paths"].items()
        for method, operation in methods.items()
    }
    routes["GET /openapi.json"] = "This API in OpenAPI 3.0"
    return jsonify(
        {"name": SPEC["info"]["title"], "description": SPEC["info"]["description"], "routes": routes}
    )
