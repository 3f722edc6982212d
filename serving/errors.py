"""Every error the API returns is JSON: ``{"error": {"status", "code", "message", ...}}``."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed


class ApiError(Exception):
    """An error with an HTTP status, a stable machine-readable code and a message saying what to do."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error_response(status: int, code: str, message: str, **details: Any) -> tuple[Response, int]:
    return jsonify({"error": {"status": status, "code": code, "message": message, **details}}), status


def register(app: Flask) -> None:
    """JSON instead of Flask's HTML error pages, for our errors and Werkzeug's (404 route, 405, ...)."""

    @app.errorhandler(ApiError)
    def _api(exc: ApiError) -> tuple[Response, int]:
        return error_response(exc.status, exc.code, exc.message, **exc.details)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        message = exc.description or ""
        if status == 413 and app.config.get("MAX_CONTENT_LENGTH"):
            from serving.api import MAX_BATCH  # the routes import this module

            # Werkzeug's "exceeds the capacity limit" named no limit
            message = (
                f"the request body is over {app.config['MAX_CONTENT_LENGTH'] // 1024} KiB: a request scores "
                f"at most {MAX_BATCH} products, a few kilobytes"
            )
        elif status == 404:  # Werkzeug's text asks to check the spelling, without saying of what
            message = f"no route {request.method} {request.path}: GET / lists the routes, e.g. POST /v1/score"
        elif isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            methods = (
                sorted(m for m in exc.valid_methods if m not in ("HEAD", "OPTIONS")) or exc.valid_methods
            )
            message = f"{request.path} takes {' or '.join(methods)}, not {request.method}"
        response, status = error_response(status, (exc.name or "error").lower().replace(" ", "_"), message)
        # a 405's Allow header is required (RFC 9110), and went with Werkzeug's own response
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, status
