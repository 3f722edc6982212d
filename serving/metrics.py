"""Prometheus metrics: request latency, errors, predictions, feature staleness; `GET /metrics`.

Under gunicorn with several workers, PROMETHEUS_MULTIPROC_DIR is set before the workers start
(`tickstore serve` does it) and the endpoint sums every worker's samples. (Importing Feast sets it
too, to a folder of its own, when it is not set: then this process's samples are read from there.)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric

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
UNSCORED = Counter(
    "tickstore_unscored_products_total",
    "Products of a batch answered with an error in their place, by its code (the request itself is a 200)",
    ["code"],
)
STALENESS = Histogram(
    "tickstore_feature_age_seconds",
    "Age of the online features at scoring time (now - newest tick's event time)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)


class _WithoutFeast:
    """Another collector's metrics but Feast's: importing Feast registers its feature server's
    (`feast_feature_server_cpu_usage`, `feast_online_features_*`), which this app never updates, and
    /metrics showed them at 0 beside its own."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return [m for m in self.source.collect() if not m.name.startswith("feast_")]


@bp.get("/metrics")
def metrics() -> Response:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry.register(_WithoutFeast(multiprocess.MultiProcessCollector(None)))  # type: ignore[no-untyped-call]
    else:
        registry.register(_WithoutFeast(REGISTRY))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
