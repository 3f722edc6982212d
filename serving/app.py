"""The app factory: ``create_app(settings=None)`` wires blueprints, JSON errors, metrics and the model."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from serving import api, errors, health, metrics, openapi
from serving.model import ModelHolder
from serving.state import ServingState
from tickstore.settings import Settings, unknown_variables

MAX_REQUEST_BYTES = 64 * 1024


def create_app(settings: Settings | None = None, *, watch_model: bool = True) -> Flask:
    """A scoring app for ``settings`` (default: from TICKSTORE_* environment variables).

    The model loads now (a missing one leaves the app up but not ready: /readyz says why); with
    ``watch_model`` a thread reloads it when the registry alias moves, and another rereads the
    feature registry when it changes.
    """
    app = Flask(__name__)
    if settings is None:
        settings = Settings()
        for line in unknown_variables():  # a misspelt setting is otherwise silently not set
            app.logger.warning(line)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # a score request is a few hundred bytes (at most 100 product ids): refuse megabytes with a 413
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    models = ModelHolder(settings)
    if watch_model:
        models.start()
    app.extensions["tickstore"] = state = ServingState(settings, models)
    if watch_model:
        state.watch_registry()
    for bp in (api.bp, health.bp, metrics.bp, openapi.bp):
        app.register_blueprint(bp)
    errors.register(app)

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        # where the time went, for browsers' devtools and curl -v (W3C Server-Timing)
        response.headers["Server-Timing"] = ", ".join(
            [t for t in (g.get("server_timing"), f"total;dur={seconds * 1000:.3f}") if t]
        )
        if endpoint != "/metrics":
            metrics.LATENCY.labels(endpoint).observe(seconds)
            if response.status_code >= 400:
                metrics.ERRORS.labels(endpoint, str(response.status_code)).inc()
        return response

    return app
