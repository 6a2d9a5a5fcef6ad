"""Every error becomes the envelope of API.md §2: the one place errors are answered.

Views raise ApiError (or a werkzeug HTTPException); these handlers answer. A handler starts from
the exception's own response so headers such as `Allow` and `WWW-Authenticate` survive. The codes
and sentences here are HTTP's own; a feature raises ApiError with its code and message where it
has one of its own (a 409 idempotency_conflict, a 410 sync_token_expired, "No such task.").
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import psycopg.errors
from flask import Flask, Response, current_app, g
from marshmallow import ValidationError
from psycopg_pool import PoolTimeout
from werkzeug.exceptions import HTTPException

from . import metrics
from .db import CommitUnconfirmed, ServerReadOnly
from .envelope import encode_envelope

log = logging.getLogger("todo_api.errors")

RETRY_AFTER_SECONDS = "1"

# Status → the error code clients branch on, and the sentence used when the raiser gave none.
_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "The request could not be understood."),
    401: ("unauthorized", "A valid bearer token is required."),
    403: ("forbidden", "The token's user may not access this resource."),
    404: ("not_found", "No such resource."),
    405: ("method_not_allowed", "This method is not allowed on this resource."),
    409: ("conflict", "The request conflicts with the resource's current state."),
    410: ("gone", "This resource is no longer available."),
    412: ("precondition_failed", "The resource does not match If-Match."),
    413: ("payload_too_large", "The request body is larger than 64 KiB."),
    415: ("unsupported_media_type", "The request body must be application/json."),
    500: ("internal_error", "Something went wrong on our side."),
    503: ("service_unavailable", "The service is temporarily unavailable; retry shortly."),
}


# What gunicorn refuses before the app sees a request (workers.py answers these). Its own
# message is not passed on: it quotes the raw request, which may hold a token.
_REFUSALS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "The request is not valid HTTP/1.1."),
    403: ("forbidden", "The request was refused."),
    408: ("request_timeout", "The request's head or body did not arrive in time; the connection is closed."),
    414: ("uri_too_long", "The request line (method, path and query string) is over 4094 bytes."),
    413: _CODES[413],  # a chunked body whose framing alone is too long (the worker refuses it itself)
    417: ("expectation_failed", "Only Expect: 100-continue is supported."),
    431: ("request_header_fields_too_large", "A request header is over 8190 bytes, or there are over 100."),
    501: ("not_implemented", "This Transfer-Encoding is not supported."),
}


def refusal(status: int) -> tuple[str, str]:
    """The error code and message for a request gunicorn refused with `status`."""
    return _REFUSALS.get(status, _CODES[500])


class ApiError(Exception):
    """An error answer: status, code, message, details and extra headers."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        default_code, default_message = _CODES.get(status, _CODES[500])
        super().__init__(message or default_message)
        self.status = status
        self.code = code or default_code
        self.message = message or default_message
        self.details = details or {}
        self.headers = headers or {}


def validation_error(details: dict[str, list[str]]) -> ApiError:
    return ApiError(400, "The request has invalid fields.", code="validation_error", details=details)


def invalid(error: ValidationError) -> ApiError:
    """A schema's ValidationError as a validation_error naming each offending field."""
    messages = error.normalized_messages()
    return validation_error({field: _flatten(value) for field, value in messages.items()})


def _flatten(messages: Any) -> list[str]:
    """Marshmallow nests list-item errors by index; the envelope wants plain lists of sentences."""
    if isinstance(messages, dict):
        return [
            f"Item {key}: {text}" if isinstance(key, int) else text
            for key, value in messages.items()
            for text in _flatten(value)
        ]
    if isinstance(messages, list):
        return [text for item in messages for text in _flatten(item)]
    return [str(messages)]


def not_found(message: str | None = None) -> ApiError:
    return ApiError(404, message)


def envelope_response(status: int, code: str, message: str, details: dict[str, Any]) -> Response:
    error = {"code": code, "message": message, "details": details}
    body = encode_envelope(None, g.get("request_id"), error=error)
    return current_app.response_class(body, status=status, mimetype="application/json")


def _handle_api_error(error: ApiError) -> Response:
    response = envelope_response(error.status, error.code, error.message, error.details)
    response.headers.update(error.headers)
    if error.status == 503:
        response.headers.setdefault("Retry-After", RETRY_AFTER_SECONDS)  # unless the raiser knows better
    return response


def _handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    code, message = _CODES.get(status, (f"http_{status}", error.description or ""))
    response = error.get_response()  # keeps Allow, WWW-Authenticate, ...
    body = envelope_response(status, code, message, {})
    response.set_data(body.get_data())
    response.content_type = "application/json"
    return response


def database_error_kind(error: Exception) -> str:
    """Which of metrics.DATABASE_ERROR_KINDS a database error answered 503 is."""
    if isinstance(error, PoolTimeout):
        return "pool_timeout"  # every connection busy (or none could be opened) for DB_POOL_TIMEOUT
    if isinstance(error, ServerReadOnly):
        return "read_only"  # a demoted primary: a failover
    if isinstance(error, CommitUnconfirmed):
        return "commit_unconfirmed"  # the synchronous standby did not confirm in time
    if isinstance(error, psycopg.errors.QueryCanceled):
        return "timeout"  # DB_STATEMENT_TIMEOUT_MS
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate is None or sqlstate.startswith(("08", "57P")):
        return "unavailable"  # refused, lost, or the server shutting down
    return "other"


def _handle_database_unavailable(error: Exception) -> Response:
    log.warning("database unavailable", extra={"event": "db.unavailable", "error_kind": type(error).__name__})
    metrics.count_database_error(database_error_kind(error))
    if isinstance(error, psycopg.OperationalError) and not isinstance(error, psycopg.errors.QueryCanceled):
        current_app.extensions["todo_api.db"].discard_broken_connections()
    return _handle_api_error(ApiError(503))


def _handle_unexpected(error: Exception) -> Response:
    log.error("unhandled exception", exc_info=error, extra={"event": "error"})
    return _handle_api_error(ApiError(500))


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, _handle_api_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    # Pool exhausted past DB_POOL_TIMEOUT, connection refused or lost, statement cancelled.
    app.register_error_handler(PoolTimeout, _handle_database_unavailable)
    app.register_error_handler(psycopg.OperationalError, _handle_database_unavailable)
    app.register_error_handler(Exception, _handle_unexpected)
