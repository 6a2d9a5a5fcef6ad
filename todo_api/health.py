"""Liveness and readiness probes: no auth, answered in the envelope."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, json

from .errors import ApiError
from .schemas import envelope

bp = Blueprint("health", __name__)


def _ok(data: dict[str, str]) -> Response:
    return current_app.response_class(json.dumps(envelope(data, g.request_id)), mimetype="application/json")


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive (no database access). 200."""
    return _ok({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """The database answers. 200, or 503 with Retry-After."""
    try:
        current_app.extensions["todo_api.db"].ping()
    except Exception:
        raise ApiError(503, "The database is not reachable.", details={"database": "unreachable"}) from None
    return _ok({"status": "ok", "database": "ok"})
