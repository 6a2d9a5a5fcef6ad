"""The part of the OpenAPI document every feature stands on, and what a feature needs to describe its
own routes without importing the openapi surface: the envelope and error components of API.md §2,
the shared headers and parameters, the helpers that refer to them, and the patterns of the shared
field types (platform/fields.py)."""

from __future__ import annotations

import sys
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import fields, validate

from .errors import refusal
from .fields import Text, Timestamp

BEARER = "bearerAuth"
JSON = "application/json"
# Every route under /api/ can answer these; the rest are listed per operation.
API_ERRORS = (401, 403, 500, 503)
BODY_ERRORS = (400, 413, 415)


def _python_whitespace() -> str:
    """What str.strip() removes, as regex class ranges. Spelled out because `\\s` differs between
    ECMA 262 (JSON Schema's dialect: no U+001C-U+001F or U+0085, but U+FEFF) and Python."""
    points = [code for code in range(sys.maxunicode + 1) if chr(code).isspace()]
    runs: list[list[int]] = []
    for code in points:
        if runs and code == runs[-1][1] + 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return "".join(f"\\u{low:04x}" + (f"-\\u{high:04x}" if high > low else "") for low, high in runs)


# Text the schemas accept: no NUL anywhere, and for trimmed fields at least one character that
# str.strip() keeps.
NO_NUL = r"^[^\u0000]*$"
NOT_BLANK = rf"^[^\u0000]*[^\u0000{_python_whitespace()}][^\u0000]*$"
VISIBLE_ASCII = r"^[\x21-\x7e]+$"
# RFC 3339 with an offset, as `Timestamp` reads it: no year 0, no leap second, at most 9 fraction digits.
TIMESTAMP = (
    r"^(?!0000)[0-9]{4}-[0-9]{2}-[0-9]{2}"  # a date, not in year 0
    r"[Tt][0-9]{2}:[0-9]{2}:(?!60)[0-9]{2}(\.[0-9]{1,9})?"  # a time, no leap second
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"  # an offset
)

# Refused by gunicorn before the app sees the request (limit_request_line, limit_request_field_size, and
# the read deadlines); the worker (platform/workers.py) answers in the envelope, with errors.refusal's texts.
SERVER_LIMITS: dict[int, str] = {408: "RequestTimeout", 414: "UriTooLong", 431: "RequestHeaderFieldsTooLarge"}

# API.md §2: status → (response component, the error codes it carries, when).
ERRORS: dict[int, tuple[str, tuple[str, ...], str]] = {
    400: (
        "BadRequest",
        ("validation_error", "bad_request"),
        "`validation_error`: a field, query parameter or header fails its rule; `error.details` maps each "
        "offending name (or `body` for the body as a whole) to a list of messages. `bad_request`: the body is "
        "not valid JSON, or not a JSON object.",
    ),
    401: (
        "Unauthorized",
        ("unauthorized",),
        "`unauthorized`: the bearer token is missing, malformed, badly signed, expired, or has the wrong "
        "issuer or audience. `WWW-Authenticate` says which (RFC 6750).",
    ),
    403: (
        "Forbidden",
        ("forbidden", "insufficient_scope"),
        "`forbidden`: the token's user is not the `{user_id}` of the path. `insufficient_scope`: a personal "
        "access token without the scope this route needs, named in `error.details.scope` and in the "
        "`WWW-Authenticate` challenge's `scope` (none on the /tokens routes, which no such token may call).",
    ),
    404: (
        "NotFound",
        ("not_found",),
        "`not_found`: this user has no such task (even if another user has that id), the id is out of range, "
        "or (under /docs) no such file.",
    ),
    409: (
        "IdempotencyConflict",
        ("idempotency_conflict",),
        "`idempotency_conflict`: this `Idempotency-Key` was used with a different body, or a request with it "
        "is still in flight.",
    ),
    412: (
        "PreconditionFailed",
        ("precondition_failed",),
        "`precondition_failed`: `If-Match` does not match the task's current version; nothing was changed.",
    ),
    413: ("PayloadTooLarge", ("payload_too_large",), "`payload_too_large`: the body is over 64 KiB."),
    415: (
        "UnsupportedMediaType",
        ("unsupported_media_type",),
        "`unsupported_media_type`: the request has a body that is not `application/json`.",
    ),
    500: (
        "InternalError",
        ("internal_error",),
        "`internal_error`: something unexpected; logged on the server with the request id.",
    ),
    503: (
        "ServiceUnavailable",
        ("service_unavailable",),
        "`service_unavailable`: the database is unreachable, the pool is exhausted, or a statement timed out. "
        "Retry after `Retry-After` seconds.",
    ),
}


def add_shared_components(spec: APISpec, plugin: MarshmallowPlugin) -> None:
    """The bearer scheme, the envelope's Meta and Error, the shared headers, parameters and error
    responses; and how Text and Timestamp fields show in every schema converted after."""
    plugin.map_to_openapi_type(Timestamp, "string", "date-time")
    assert plugin.converter is not None
    plugin.converter.add_attribute_function(text_rules)
    spec.components.security_scheme(BEARER, {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema(
        "Meta",
        {
            "type": "object",
            "properties": {
                "request_id": {
                    "type": "string",
                    "description": "The request's `X-Request-ID`.",
                    "examples": ["4f1c2b9e8d7a4e6f9a0b1c2d3e4f5a6b"],
                }
            },
            "required": ["request_id"],
        },
    )
    spec.components.schema(
        "Error",
        {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "snake_case; what clients branch on."},
                "message": {"type": "string", "minLength": 1, "description": "A human sentence."},
                "details": {
                    "type": "object",
                    "description": "For `validation_error`: each offending field, query parameter or header "
                    "(or `body`) → a list of messages. Otherwise usually empty.",
                },
            },
            "required": ["code", "message", "details"],
            "additionalProperties": False,
        },
    )
    error_envelope = envelope({"type": "null"})
    error_envelope["properties"]["error"] = "Error"
    error_envelope["required"].append("error")
    spec.components.schema("ErrorEnvelope", error_envelope)
    spec.components.header(
        "X-Request-ID",
        {
            "description": "The request id: the client's own when it sent a sane one, else generated. "
            "Also `meta.request_id`.",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": VISIBLE_ASCII},
        },
    )
    spec.components.header(
        "ETag",
        {
            "description": 'The task\'s version as a strong entity tag, `"<version>"`: send it back in `If-Match`.',
            "required": True,
            "schema": {"type": "string", "pattern": r'^"[1-9][0-9]*"$'},
        },
    )
    spec.components.header(
        "Location",
        {
            "description": "The new task's URL.",
            "required": True,
            "schema": {"type": "string", "format": "uri-reference"},
        },
    )
    spec.components.header(
        "Retry-After",
        {
            "description": "Seconds to wait before retrying.",
            "required": True,
            "schema": {"type": "string", "pattern": r"^[0-9]+$"},
        },
    )
    spec.components.header(
        "WWW-Authenticate",
        {
            "description": 'The bearer challenge (RFC 6750): `Bearer realm="api"`, plus `error="invalid_token"` and '
            "`error_description` when a token was sent and refused.",
            "required": True,
            "schema": {"type": "string", "pattern": "^Bearer "},
        },
    )
    spec.components.parameter(
        "user_id",
        "path",
        {
            # No length rule here: a user id the token cannot carry is a 401 or 403, not a 400.
            "description": "The token's user (its `sub` claim, 1-255 characters).",
            "schema": {"type": "string"},
        },
    )
    spec.components.parameter(
        "X-Request-ID",
        "header",
        {
            "description": "Optional request id, echoed in the response and logs when it is 1-128 visible ASCII "
            "characters; any other value is replaced by a generated one.",
            "schema": {"type": "string"},
        },
    )
    spec.components.parameter(
        "If-Match",
        "header",
        {
            "description": 'Change the task only if its version is this: `"<version>"` from `ETag` (or `*`). '
            "A mismatch is a 412 and changes nothing. Without it, the last write wins.",
            "schema": {"type": "string"},
        },
    )
    spec.components.parameter(
        "If-None-Match",
        "header",
        {
            "description": 'Answer 304 without a body when the task\'s `ETag` matches (weak comparison: `W/"3"` '
            'matches `"3"`), or with `*`.',
            "schema": {"type": "string"},
        },
    )
    spec.components.parameter(
        "Idempotency-Key",
        "header",
        {
            "description": "Makes the create safe to retry: a retry with the same key and the same body within "
            "24 hours returns the first response (same status, `data`, `Location` and `ETag`) and creates "
            "nothing; the same key with another body, or while the first is in flight, is a 409. Scoped to the "
            "user. 1-255 visible ASCII characters, else a 400 naming the header.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": VISIBLE_ASCII},
        },
    )
    _add_error_responses(spec)


def text_rules(self: Any, field: fields.Field, **kwargs: Any) -> dict[str, Any]:
    """apispec attribute function: what `Text` and `Timestamp` refuse, as a pattern."""
    if isinstance(field, Timestamp):
        return {"pattern": TIMESTAMP}
    if not isinstance(field, Text):
        return {}
    must_have_text = field.strip and any(
        isinstance(rule, validate.Length) and (rule.min or 0) >= 1 for rule in field.validators
    )
    return {"pattern": NOT_BLANK if must_have_text else NO_NUL}


def not_modified(noun: str) -> dict[str, Any]:
    """The 304 of a GET of one versioned resource (`noun`: "the task") under If-None-Match."""
    return {
        "description": f"`If-None-Match` matched: {noun} has not changed. No body.",
        "headers": {"ETag": "ETag", "X-Request-ID": "X-Request-ID"},
    }


def json_content(schema: str | dict[str, Any]) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


def envelope(data: str | dict[str, Any], meta: str = "Meta") -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"data": data, "meta": meta},
        "required": ["data", "meta"],
        "additionalProperties": False,
    }


def add_query_parameters(
    spec: APISpec, converter: Any, schema_class: type, prefix: str, descriptions: dict[str, str]
) -> None:
    """`schema_class`'s fields as query parameters named `<prefix>.<name>`, each with its description."""
    for parameter in converter.schema2parameters(schema_class, location="query"):
        schema = parameter["schema"]
        if isinstance(schema["type"], list):  # load_default=None means "absent", never a null in a query string
            schema["type"] = next(kind for kind in schema["type"] if kind != "null")
        if schema.get("default", "") is None:
            del schema["default"]
        if parameter["name"] == "priority":  # one parameter, comma-separated: ?priority=low,high
            parameter["explode"] = False
            schema["minItems"] = 1  # `?priority=` names no priority: a 400
        parameter["description"] = descriptions[parameter["name"]]
        spec.components.parameter(f"{prefix}.{parameter['name']}", "query", parameter)


def _add_error_responses(spec: APISpec) -> None:
    limits = {}
    for status, name in SERVER_LIMITS.items():
        code, message = refusal(status)
        limits[status] = (name, (code,), message)
    for status, (name, codes, when) in {**ERRORS, **limits}.items():
        add_error_response(spec, status, name, codes, when)


def add_error_response(spec: APISpec, status: int, name: str, codes: tuple[str, ...], when: str) -> None:
    """An error response component: the error envelope with `codes`, described by `when`."""
    headers: dict[str, Any] = {"X-Request-ID": "X-Request-ID"}
    if status == 401:
        headers["WWW-Authenticate"] = "WWW-Authenticate"
    if status == 403:
        headers["WWW-Authenticate"] = {
            "description": 'With `insufficient_scope` only: `Bearer realm="api", error="insufficient_scope", '
            'scope="<needed>"` (RFC 6750).',
            "schema": {"type": "string", "pattern": "^Bearer "},
        }
    if status == 503:
        headers["Retry-After"] = "Retry-After"
    schema = {
        "allOf": [
            "ErrorEnvelope",
            {"properties": {"error": {"properties": {"code": {"enum": list(codes)}}}}},
        ]
    }
    spec.components.response(name, {"description": when, "headers": headers, "content": json_content(schema)})


def errors(*statuses: int, own: dict[int, str] | None = None) -> dict[str, str]:
    """The error responses of an operation: its statuses of API.md §2 (ERRORS), those its feature
    declared itself (`own`: status → response component), and the HTTP server's limits."""
    names = {status: ERRORS[status][0] for status in statuses}
    names.update(own or {})
    names.update(SERVER_LIMITS)
    return {str(status): names[status] for status in sorted(names)}
