"""The webhooks feature's own error answers (the generic ones are platform/errors.py's)."""

from __future__ import annotations

from ..platform.errors import ApiError, not_found


def webhook_not_found() -> ApiError:
    """404: the user has no webhook with this id (another user's included)."""
    return not_found("No such webhook.")


def too_many_webhooks(limit: int) -> ApiError:
    """409 limit_exceeded: the user has the most webhooks allowed already."""
    return ApiError(
        409,
        f"A user may have at most {limit} webhooks: delete one first.",
        code="limit_exceeded",
        details={"limit": limit},
    )
