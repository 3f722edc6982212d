"""`/healthz` (the process answers) and `/readyz` (a model is loaded and the online store answers)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from serving.features import redefined_message
from serving.state import state

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    s = state()
    problems = []
    model = s.models.model
    if model is None:
        problems.append(s.models.error or "no model loaded")
    try:
        features = s.features()
        features.ping()
        online = "ok"
        if model is not None:
            missing = features.unserved(model.features)
            if missing:  # every /v1/score would answer 503 model_features_unavailable
                problems.append(
                    f"the model reads {', '.join(missing)}, which the feature service does not serve"
                )
            changed = features.redefined(model.features, model.sql_fingerprints)
            if changed:  # ... or 503 feature_definitions_changed
                problems.append(redefined_message(changed, model.run_id))
    except Exception as exc:  # the store's own errors (sqlite3, redis, ...) all mean "not ready"
        online = "unreachable"
        problems.append(f"online store: {exc}")
    body = {
        "ready": not problems,
        "model": None if model is None else model.described,
        "online_store": online,
        "problems": problems,
    }
    return jsonify(body), 200 if not problems else 503
