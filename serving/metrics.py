"""Prometheus metrics: request latency, errors, predictions, feature staleness; `GET /metrics`.

Under gunicorn with several workers, PROMETHEUS_MULTIPROC_DIR is set before the workers start
(`tickstore serve --production` does it) and the endpoint sums every worker's samples.
"""

from __future__ import annotations

import os

from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

bp = Blueprint("metrics", __name__)

LATENCY = Histogram(
    "tickstore_request_seconds",
    "Request latency by endpoint",
    ["endpoint"],
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
ERRORS = Counter(
    "tickstore_request_errors_total", "Error responses by endpoint and status", ["endpoint", "status"]
)
PREDICTIONS = Histogram(
    "tickstore_prediction_probability",
    "Spike probabilities returned",
    buckets=(0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
)
SPIKES = Counter("tickstore_predicted_spikes_total", "Scores at or above the model's decision threshold")
STALENESS = Histogram(
    "tickstore_feature_age_seconds",
    "Age of the online features at scoring time (now - newest tick's event time)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)


@bp.get("/metrics")
def metrics() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        data = generate_latest(registry)
    else:
        data = generate_latest()
    return Response(data, mimetype=CONTENT_TYPE_LATEST)
