"""The tasks feature's own error answers (the generic ones are platform/errors.py's)."""

from __future__ import annotations

from ..platform.errors import ApiError, not_found, validation_error

# One message whether or not the id exists (API.md §8, §9): an answer never tells another user's ids.
NOT_YOUR_LIST = "Must be the id of one of your lists, or null."
NOT_YOUR_TASK = "Must be the id of one of your tasks, or null."
NOT_A_SIBLING = "Must be the id of a task among the siblings at the destination (not the task itself), or null."
NOT_PARENTS_LIST = "A subtask is always in its parent's list."
TOO_DEEP = "A subtask can be at most 4 levels deep (moving a task moves its subtasks with it)."
CYCLE = "A task cannot go under itself or one of its own subtasks."
RECURRING_PARENT = "A task with a recurrence cannot have subtasks."
RECURRING_SUBTASK = "A subtask cannot have a recurrence."


def task_not_found() -> ApiError:
    """404: the user has no task with this id (another user's task with it included: API.md §2)."""
    return not_found("No such task.")


def invalid_field(field: str, message: str) -> ApiError:
    """400 validation_error naming one field."""
    return validation_error({field: [message]})
