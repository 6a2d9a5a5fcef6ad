"""Liveness and readiness probes: no auth, answered in the envelope."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from flask import Blueprint, Response, current_app

from .apidoc import envelope, errors, json_content
from .errors import ApiError
from .http import json_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive (no database access). 200."""
    return json_response({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """The database answers and, in JWKS mode, signing keys are at hand. 200, or 503 with Retry-After.

    `jwks` is "ok", "stale" (cached keys still verify, the endpoint is failing: still ready),
    "unreachable" (no key was ever fetched: not ready) or "disabled" (no JWKS configured).
    """
    checks = {"database": _database_status(), "jwks": _jwks_status()}
    if checks["database"] != "ok":
        raise ApiError(503, "The database is not reachable.", details=checks)
    if checks["jwks"] == "unreachable":
        raise ApiError(503, "No signing keys could be fetched from the JWKS endpoint.", details=checks)
    return json_response({"status": "ok", **checks})


def _database_status() -> str:
    try:
        current_app.extensions["todo_api.db"].ping()
    except Exception:
        return "unreachable"
    return "ok"


def _jwks_status() -> str:
    jwks = current_app.extensions["todo_api.jwks"]
    return "disabled" if jwks is None else jwks.status()


def add_to_spec(spec: APISpec, converter: Any) -> None:
    """The probes in the OpenAPI document."""
    spec.tag({"name": "probes", "description": "Liveness and readiness (no auth)."})
    spec.components.schema(
        "HealthEnvelope",
        envelope(
            {
                "type": "object",
                "properties": {"status": {"const": "ok"}},
                "required": ["status"],
                "additionalProperties": False,
            }
        ),
    )
    spec.components.schema(
        "ReadyEnvelope",
        envelope(
            {
                "type": "object",
                "properties": {
                    "status": {"const": "ok"},
                    "database": {"const": "ok"},
                    "jwks": {
                        "enum": ["ok", "stale", "disabled"],
                        "description": "`stale`: cached keys still verify while the JWKS endpoint fails; "
                        "`disabled`: no JWKS configured. With no key ever fetched the answer is a 503.",
                    },
                },
                "required": ["status", "database", "jwks"],
                "additionalProperties": False,
            }
        ),
    )
    public: dict[str, Any] = {"security": [], "parameters": ["X-Request-ID"]}
    request_id = {"X-Request-ID": "X-Request-ID"}
    spec.path(
        "/healthz",
        operations={
            "get": {
                **public,
                "operationId": "healthz",
                "summary": "Liveness: the process answers (no database access)",
                "tags": ["probes"],
                "responses": {
                    "200": {"description": "Alive.", "headers": request_id, "content": json_content("HealthEnvelope")},
                    **errors(500),
                },
            }
        },
    )
    spec.path(
        "/readyz",
        operations={
            "get": {
                **public,
                "operationId": "readyz",
                "summary": "Readiness: the database answers and, with JWKS, signing keys are at hand",
                "tags": ["probes"],
                "responses": {
                    "200": {"description": "Ready.", "headers": request_id, "content": json_content("ReadyEnvelope")},
                    **errors(500, 503),
                },
            }
        },
    )
