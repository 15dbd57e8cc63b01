"""Errors as the client expects them: JSON under /api/, a small HTML page elsewhere.

Why: a script calling the API must get a machine-readable 4xx (`{"error": ...}`) for a malformed
body, an unknown id or a body that is too big, never an HTML page or a 500.
"""

from __future__ import annotations

from html import escape
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask.globals import request_ctx
from werkzeug.exceptions import HTTPException

API_PREFIX = "/api/"


def wants_json() -> bool:
    """True for API paths."""
    return request.path.startswith(API_PREFIX)


def json_error(status: int, message: str, **extra: Any) -> Response:
    """A JSON error response."""
    resp = jsonify({"error": message, "status": status, **extra})
    resp.status_code = status
    return resp


def _http_error(exc: HTTPException) -> Any:
    """Render any HTTP error for its audience, keeping headers such as Retry-After."""
    status = exc.code or 500
    message = exc.description or exc.name
    if wants_json():
        resp = json_error(status, message)
    elif request_ctx.url_adapter is None:
        # The Host header was unusable (werkzeug's BadHost): the page template builds URLs,
        # which needs a host, so answer with a bare page instead of crashing in the handler.
        resp = Response(f"<!doctype html><title>{status}</title><h1>{status} "
                        f"{escape(exc.name)}</h1><p>{escape(str(message))}</p>",
                        status=status, mimetype="text/html")
    else:
        resp = Response(render_template("error.html", status=status, name=exc.name,
                                        message=message), status=status)
    for key, value in exc.get_headers():
        if key.lower() not in ("content-type", "content-length"):
            resp.headers[key] = value
    return resp


def render_http_error(exc: HTTPException) -> Any:
    """The same answer as for a raised `exc` (db_errors.py builds its 503 with it)."""
    return _http_error(exc)


def init_app(app: Flask) -> None:
    """Register the handler for every HTTP error."""
    app.register_error_handler(HTTPException, _http_error)
