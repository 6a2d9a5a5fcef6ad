"""How a task is written: the parameters of `update_task` (built here only), and the writes that
must see the stored task (API.md §5): a PATCH of a recurrence's fields, checked as the task it
leaves, and a completion, which creates the next occurrence of a recurring task.

Most writes are the one `update_task` statement, which leaves alone a task that has a recurrence
when the write may complete it or reshape its rule (`unless_recurring`). Those, the locked writes,
run in one transaction that locks the task first (`lock_task`, SELECT ... FOR UPDATE): the
check and the write see the same row, and of two requests completing one task at the same moment
the second waits, then finds `next_id` set and creates nothing. The successor is inserted before
the completed task is written, so the task's version goes up once, with `next_id` in that write.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..platform.db import Row, Runner
from ..platform.errors import ApiError, validation_error
from . import recurrence, tree
from .errors import RECURRING_PARENT, RECURRING_SUBTASK, invalid_field, task_not_found
from .schemas import recurrence_errors

log = logging.getLogger("todo_api.tasks")

WRITABLE_FIELDS = (
    "title",
    "description",
    "completed",
    "priority",
    "tags",
    "due_at",
    "recurrence",
    "timezone",
    "remind_at",
)
RULE_FIELDS = frozenset(("recurrence", "due_at", "timezone"))
COPIED_FIELDS = ("user_id", "title", "description", "priority", "tags", "timezone", "list_id")


def needs_stored_task(fields: Mapping[str, Any], *, partial: bool) -> bool:
    """Whether a write must lock and read the task first: it may complete it (`completed` true, or
    None for a toggle), it gives the task a recurrence (not for a subtask or a parent, §9), or it is
    a PATCH (`partial`) of a field the recurrence rules span."""
    return (
        fields.get("completed", False) is not False
        or fields.get("recurrence") is not None
        or (partial and not RULE_FIELDS.isdisjoint(fields))
    )


def update_params(
    user_id: str,
    task_id: int,
    fields: Mapping[str, Any],
    expected_versions: list[int] | None,
    *,
    next_id: int | None = None,
    unless_recurring: bool = False,
) -> dict[str, Any]:
    """The parameters of `update_task` that set `fields` (the others keep their values)."""
    params = {field: fields.get(field) for field in WRITABLE_FIELDS}
    params.update(
        user_id=user_id,
        task_id=task_id,
        fields=list(fields),
        expected_versions=expected_versions,
        next_id=next_id,
        unless_recurring=unless_recurring,
    )
    return params


def write_locked(
    run: Runner,
    user_id: str,
    task_id: int,
    fields: Mapping[str, Any],
    expected_versions: list[int] | None,
    *,
    partial: bool,
    now: datetime | None = None,
) -> tuple[Row, Row | None]:
    """Write `fields` (`completed: None` toggles) to a locked task; returns it as written and the
    occurrence the write created (or None). Raises 404, 412, or a 400 when a PATCH would leave a
    recurrence its §5 rules refuse; PUT and POST bodies are checked by the schema."""
    stored = run.fetch_one("lock_task", {"user_id": user_id, "task_id": task_id})
    if stored is None:
        raise task_not_found()
    if expected_versions is not None and stored["version"] not in expected_versions:
        raise ApiError(412)
    if "completed" in fields and fields["completed"] is None:
        fields = {**fields, "completed": not stored["completed"]}
    task = {**stored, **fields}
    if partial and not RULE_FIELDS.isdisjoint(fields) and (errors := recurrence_errors(task, fields)):
        raise validation_error(errors)
    completing = task["completed"] and not stored["completed"]
    subtasks = tree.lock_subtasks(run, user_id, task_id) if completing or fields.get("recurrence") else []
    if fields.get("recurrence") is not None:
        _check_recurrence_in_tree(stored, subtasks)
    successor = None
    if completing and task["recurrence"] and stored["next_id"] is None:
        successor = _insert_successor(run, task, now or datetime.now(UTC))
    next_id = successor["id"] if successor else None
    # expected_versions=None: they were checked above, on the locked row
    written = run.fetch_one("update_task", update_params(user_id, task_id, fields, None, next_id=next_id))
    assert written is not None  # the row is locked: it is still there
    if completing:
        tree.complete_subtasks(run, user_id, subtasks)
    return written, successor


def _check_recurrence_in_tree(stored: Row, subtasks: list[Row]) -> None:
    """A recurrence only on a task that is neither a subtask nor a parent (API.md §9): 400 otherwise."""
    if stored["parent_id"] is not None:
        raise invalid_field("recurrence", RECURRING_SUBTASK)
    if subtasks:
        raise invalid_field("recurrence", RECURRING_PARENT)


def _insert_successor(run: Runner, task: Row, now: datetime) -> Row | None:
    """Insert the next occurrence of a task being completed (API.md §5), or None if the rule has ended
    or cannot be followed (docs/recurring-tasks.md): the completion stands either way."""
    try:
        following = recurrence.next_occurrence(
            recurrence.parse_rule(task["recurrence"], stored=True), task["due_at"], task["timezone"], now
        )
    except recurrence.RuleError:
        log.warning(
            "no next occurrence: the stored rule cannot be followed",
            extra={"event": "task.recurrence_failed", "task_id": task["id"], "user_id": task["user_id"]},
        )
        return None
    if following is None:
        return None
    remind_at = None
    if task["remind_at"] is not None:
        try:  # the same time ahead of its due_at; none if that falls outside the years 1-9999
            remind_at = following.due_at - (task["due_at"] - task["remind_at"])
        except OverflowError:
            remind_at = None
    params = {field: task[field] for field in COPIED_FIELDS}
    params.update(completed=False, due_at=following.due_at, recurrence=following.recurrence, remind_at=remind_at)
    params.update(parent_id=None, position=tree.last_position(run, task["user_id"], task["list_id"], None))
    return run.fetch_one("insert_task", params)
