"""The tasks feature's own error answers (the generic ones are platform/errors.py's)."""

from __future__ import annotations

from ..platform.errors import ApiError, not_found


def task_not_found() -> ApiError:
    """404: the user has no task with this id (another user's task with it included: API.md §2)."""
    return not_found("No such task.")
