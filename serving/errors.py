"""Every error the API returns is JSON: ``{"error": {"status", "code", "message", ...}}``."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException


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
        return error_response(status, (exc.name or "error").lower().replace(" ", "_"), message)
