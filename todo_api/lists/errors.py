"""The lists feature's own error answers (the generic ones are platform/errors.py's)."""

from __future__ import annotations

from ..platform.errors import ApiError, not_found, validation_error

MAX_LISTS = 1000
NOT_A_LIST = "Must be the id of another of your lists, or null."


def list_not_found() -> ApiError:
    """404: the user has no list with this id (another user's list with it included: API.md §2)."""
    return not_found("No such list.")


def too_many_lists() -> ApiError:
    """409 limit_exceeded: the user has the most lists allowed (API.md §8)."""
    return ApiError(
        409, f"You have {MAX_LISTS} lists, the most allowed.", code="limit_exceeded", details={"limit": MAX_LISTS}
    )


def not_a_list(field: str) -> ApiError:
    """400 on `field`: not another list of the user, with one message whether or not the id exists."""
    return validation_error({field: [NOT_A_LIST]})
