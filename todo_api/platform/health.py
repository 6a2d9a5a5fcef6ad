"""Liveness and readiness probes: no auth, answered in the envelope."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g

from .envelope import encode_envelope
from .errors import ApiError

bp = Blueprint("health", __name__)


def _ok(data: dict[str, str]) -> Response:
    return current_app.response_class(encode_envelope(data, g.request_id), mimetype="application/json")


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive (no database access). 200."""
    return _ok({"status": "ok"})


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
    return _ok({"status": "ok", **checks})


def _database_status() -> str:
    try:
        current_app.extensions["todo_api.db"].ping()
    except Exception:
        return "unreachable"
    return "ok"


def _jwks_status() -> str:
    jwks = current_app.extensions["todo_api.jwks"]
    return "disabled" if jwks is None else jwks.status()
