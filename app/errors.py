"""One JSON error shape for every status: ``{"error", "message"[, "details"]}``."""
import logging

from flask import current_app, jsonify, request
from marshmallow import ValidationError
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from .trivy import ReportError

log = logging.getLogger(__name__)

SHORT_NAMES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 408: "request_timeout", 413: "payload_too_large",
    414: "uri_too_long", 415: "unsupported_media_type", 429: "rate_limited",
    431: "header_fields_too_large", 500: "internal_error", 503: "service_unavailable",
}


class APIError(Exception):
    """An error a view raises on purpose, answered as JSON."""

    def __init__(self, status, message, details=None, headers=None):
        super().__init__(message)
        self.status, self.message, self.details = status, message, details
        self.headers = headers or {}


def error_response(status, message, details=None, headers=None):
    body = {"error": SHORT_NAMES.get(status, f"http_{status}"), "message": message}
    if details:
        body["details"] = details
    response = jsonify(body)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _details_paths(messages, prefix=""):
    """Flatten marshmallow's nested messages into ``images.0.hostname`` keys."""
    flat = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                flat.update(_details_paths(value, path))
            else:
                flat[path] = value if isinstance(value, list) else [value]
    else:
        flat[prefix or "_schema"] = messages if isinstance(messages, list) else [messages]
    return flat


def _bracket_path(dotted):
    parts = dotted.split(".")
    out = parts[0]
    for part in parts[1:]:
        out += f"[{part}]" if part.isdigit() else f".{part}"
    return out


def _reject_oversized_request():
    """Header lines and query strings past the limits gunicorn enforces are refused
    here too, as JSON, whatever server runs the app."""
    config = current_app.config
    if len(request.query_string) > config.get("MAX_QUERY_STRING_BYTES", 4096):
        return error_response(414, "The query string is too long.")
    limit = config.get("MAX_HEADER_BYTES", 8190)
    for name, value in request.headers.items():
        if len(name) + len(value) + 2 > limit:
            return error_response(431, f"A request header is longer than {limit} bytes.")
    return None


def register_error_handlers(app):
    app.before_request(_reject_oversized_request)

    @app.errorhandler(APIError)
    def api_error(e):
        return error_response(e.status, e.message, e.details, e.headers)

    @app.errorhandler(HTTPException)
    def http_error(e):
        response = e.get_response()
        status = e.code or 500
        message = e.description or e.name
        if status == 429:
            message = f"Rate limit exceeded ({e.description}); retry later."
        elif status == 413:
            limit = current_app.config.get("MAX_CONTENT_LENGTH")
            message = f"The request body is larger than the limit of {limit} bytes."
        body = error_response(status, message)
        for key, value in response.headers.items():
            if key.lower() not in ("content-type", "content-length"):
                body.headers[key] = value
        return body

    @app.errorhandler(ValidationError)
    def validation_error(e):
        details = _details_paths(e.messages)
        first_path, first_msgs = next(iter(details.items()))
        message = f"Invalid request: {_bracket_path(first_path)}: {first_msgs[0]}"
        return error_response(400, message, details)

    @app.errorhandler(ReportError)
    def report_error(e):
        dotted = e.path.replace("][", ".").replace("[", ".").replace("]", "")
        return error_response(400, f"Malformed Trivy report: {e}", {dotted: [e.message]})

    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeout)
    def database_unavailable(e):
        log.error("database unavailable: %s", type(e).__name__)
        return error_response(503, "The database is unavailable; retry later.",
                              headers={"Retry-After": "5"})

    @app.errorhandler(DataError)
    def data_error(e):
        log.warning("database refused a value: %s", type(e.orig).__name__)
        return error_response(400, "The request holds a value the database cannot store.")

    @app.errorhandler(DBAPIError)
    def database_error(e):
        if getattr(e, "connection_invalidated", False):
            return database_unavailable(e)
        log.exception("database error")
        return error_response(500, "An unexpected error occurred.")

    @app.errorhandler(Exception)
    def internal_error(e):
        log.exception("unhandled error")
        return error_response(500, "An unexpected error occurred.")
