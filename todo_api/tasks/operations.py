"""The task operations, one function each, shared by the REST routes (routes.py) and the MCP tools
(tools.py). Each takes the token's user and input its surface has already validated, runs its named
statements, and returns rows or raises ApiError; the surfaces translate HTTP or JSON-RPC around it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg.errors
from flask import current_app
from marshmallow import ValidationError

from ..platform import idempotency, sealing
from ..platform.db import Row, current_database
from ..platform.errors import ApiError, invalid, validation_error
from . import listing, tree, writes
from .errors import task_not_found
from .schemas import NOT_YOUR_LIST_FILTER, NOT_YOUR_TASK_FILTER

log = logging.getLogger("todo_api.tasks")
# Tombstones one forget_deletions call removes at most, so that a backlog (a user who deleted millions
# of tasks long ago) costs each sync or deletion a bounded batch, and is worked off over several.
FORGET_BATCH = 1000


@dataclass(frozen=True)
class Page:
    """One page of a listing: its tasks, the cursor of the next page (None on the last), and the
    count of every matching task when it was asked for."""

    tasks: list[Row]
    next_cursor: str | None
    total: int | None = None


@dataclass(frozen=True)
class Written:
    """A task as an update or a completion left it, and the occurrence that write created, if any."""

    task: Row
    next_occurrence: Row | None = None


def _log_write(event: str, user_id: str, task_id: int) -> None:
    log.info(event, extra={"event": event, "task_id": task_id, "user_id": user_id})


def _missing_or_moved(user_id: str, task_id: int, expected_versions: list[int] | None) -> ApiError:
    """A conditional write matched no row: 412 if the task exists at another version, else 404."""
    if expected_versions is not None and current_database().fetch_one(
        "get_task_version", {"user_id": user_id, "task_id": task_id}
    ):
        return ApiError(412)
    return task_not_found()


def list_tasks(user_id: str, options: dict[str, Any]) -> Page:
    """One page of the user's tasks for loaded ListQuerySchema `options`; 400 naming `cursor` for
    a cursor this listing did not issue."""
    _check_owned_filters(user_id, options)
    query = listing.ListQuery(options)
    codec = listing.CursorCodec(sealing.app_codec(), user_id)
    try:
        after = codec.decode(query, options["cursor"]) if options["cursor"] else None
    except ValidationError as error:
        raise invalid(error) from None
    statement, params = listing.build_list_statement(current_database().queries["list_tasks"], query, after)
    limit = options["limit"]
    params = {**params, "user_id": user_id, "page_size": limit + 1}
    total = None
    prepare = False if query.plan_depends_on_values else None
    if not options["total"]:
        rows = current_database().fetch_all(statement, params, prepare=prepare)
    else:  # the page and its count from one snapshot
        count_statement, count_params = listing.build_count_statement(current_database().queries["count_tasks"], query)
        with current_database().transaction(one_snapshot=True) as run:
            rows = run.fetch_all(statement, params, prepare=prepare)
            count = run.fetch_one(count_statement, {**count_params, "user_id": user_id}, prepare=prepare)
        total = count["total"]  # type: ignore[index]
    page = rows[:limit]
    return Page(page, codec.encode(query, page[-1]) if len(rows) > limit else None, total)


@dataclass(frozen=True)
class Deleted:
    """A task as it was when deleted, and how many subtasks went with it."""

    task: Row
    subtasks: int


def _insert_task(run: Any, user_id: str, fields: dict[str, Any]) -> Row:
    """Insert a task last among its siblings (`run`: a transaction when it goes in a list or under a
    parent, which tree.place_new checks and locks); 400 on a list_id or parent_id not the user's."""
    if fields.get("parent_id") is not None:
        fields = tree.place_new(run, user_id, fields)
    else:
        list_id = fields.get("list_id")
        if list_id is not None:
            tree.share_list(run, user_id, list_id)
        fields = {**fields, "list_id": list_id, "parent_id": None}
        fields["position"] = tree.last_position(run, user_id, list_id, None)
    try:
        task = run.fetch_one("insert_task", {**fields, "user_id": user_id})
    except psycopg.errors.ForeignKeyViolation as error:
        raise tree.refused_reference(error) from None
    assert task is not None  # INSERT ... RETURNING returns the row
    return task


def _check_owned_filters(user_id: str, options: dict[str, Any]) -> None:
    """A listing's list_id and parent_id name one of the user's lists and tasks (or `none`): a 400
    naming the parameter otherwise, with the message of an id that cannot exist."""
    database = current_database()
    if isinstance(options["list_id"], int) and not database.fetch_one(
        "find_list", {"user_id": user_id, "list_id": options["list_id"]}
    ):
        raise validation_error({"list_id": [NOT_YOUR_LIST_FILTER]})
    if isinstance(options["parent_id"], int) and not database.fetch_one(
        "get_task_version", {"user_id": user_id, "task_id": options["parent_id"]}
    ):
        raise validation_error({"parent_id": [NOT_YOUR_TASK_FILTER]})


def create_task(user_id: str, fields: dict[str, Any]) -> Row:
    """Insert a task from loaded TaskCreateSchema `fields`; returns it."""
    if fields.get("parent_id") is None and fields.get("list_id") is None:  # the inbox: no lock to take
        task = _insert_task(current_database(), user_id, fields)
    else:
        with current_database().transaction() as run:
            task = _insert_task(run, user_id, fields)
    _log_write("task.created", user_id, task["id"])
    return task


def create_task_once(
    user_id: str,
    fields: dict[str, Any],
    key: str,
    request_hash: str,
    answer: Callable[[Row], idempotency.Remembered],
) -> idempotency.Remembered:
    """create_task at most once per Idempotency-Key: the key claimed, the task inserted and `answer(task)`
    (the surface's response) remembered, all or nothing. Returns that answer, or the one remembered
    for the key by an earlier request with the same body (409 if it cannot be)."""
    with current_database().transaction() as run:
        remembered = idempotency.claim(run, user_id, key, request_hash)
        if remembered is not None:
            return remembered
        task = _insert_task(run, user_id, fields)
        first = answer(task)
        idempotency.remember(run, user_id, key, first)
    _log_write("task.created", user_id, task["id"])
    return first


def get_task(user_id: str, task_id: int) -> Row:
    """One task of the user; 404 when the user has none with this id."""
    task = current_database().fetch_one("get_task", {"user_id": user_id, "task_id": task_id})
    if task is None:
        raise task_not_found()
    return task


def update_task(
    user_id: str,
    task_id: int,
    fields: dict[str, Any],
    expected_versions: list[int] | None = None,
    *,
    partial: bool = True,
) -> Written:
    """Set the loaded `fields` (all writable ones for a replace, `partial=False`; some for a patch),
    if the version is one of `expected_versions` (None: any). Completing a recurring task creates
    its next occurrence (writes.py). 400 (a patch that leaves a rule §5 refuses), 404, 412."""
    # One statement when the task as written has no recurrence (most tasks); otherwise, if the
    # write may complete it or reshape its rule, the locked path that sees the stored task.
    locked = writes.needs_stored_task(fields, partial=partial)
    params = writes.update_params(user_id, task_id, fields, expected_versions, unless_recurring=locked)
    task = current_database().fetch_one("update_task", params)
    if task is None and locked:
        return _write_locked(user_id, task_id, fields, expected_versions, partial, "task.updated")
    if task is None:
        raise _missing_or_moved(user_id, task_id, expected_versions)
    _log_write("task.updated", user_id, task_id)
    return Written(task)


def _write_locked(
    user_id: str,
    task_id: int,
    fields: dict[str, Any],
    expected_versions: list[int] | None,
    partial: bool,
    event: str | None,
) -> Written:
    """A write that must see the stored task, in one transaction (writes.write_locked); logs it as
    `event` (None: completed or reopened, as it turned out) and the occurrence it created."""
    with current_database().transaction() as run:
        if fields.get("recurrence") is not None:  # no subtask may appear under it meanwhile (tree.py)
            run.fetch_one("lock_task_tree", {"user_id": user_id})
        task, following = writes.write_locked(run, user_id, task_id, fields, expected_versions, partial=partial)
    _log_write(event or ("task.completed" if task["completed"] else "task.reopened"), user_id, task_id)
    if following is not None:
        _log_write("task.created", user_id, following["id"])
    return Written(task, following)


def complete_task(
    user_id: str, task_id: int, completed: bool | None, expected_versions: list[int] | None = None
) -> Written:
    """Set `completed`, or toggle it when None, if the version still matches; completing a recurring
    task creates its next occurrence. 404, 412."""
    task = current_database().fetch_one(
        "set_task_completed",
        {"user_id": user_id, "task_id": task_id, "completed": completed, "expected_versions": expected_versions},
    )
    if task is None and completed is not False:  # perhaps a recurring task being completed
        return _write_locked(user_id, task_id, {"completed": completed}, expected_versions, True, None)
    if task is None:
        raise _missing_or_moved(user_id, task_id, expected_versions)
    _log_write("task.completed" if task["completed"] else "task.reopened", user_id, task_id)
    return Written(task)


def delete_task(user_id: str, task_id: int, expected_versions: list[int] | None = None) -> Deleted:
    """Delete a task and every task below it (the foreign key cascades), if the version still
    matches; returns it as it was, with the number of subtasks. 404, 412.
    Then forgets a batch of the user's deletions past the retention, if one is a day past it: users
    who never sync have them too."""
    params = {"user_id": user_id, "task_id": task_id, "expected_versions": expected_versions}
    with current_database().transaction() as run:
        run.fetch_one("lock_task_tree", {"user_id": user_id})  # no subtask added meanwhile: the count holds
        subtasks = tree.lock_subtasks(run, user_id, task_id)
        task = run.fetch_one("delete_task", {**params, "retention_days": _retention_days()})
    if task is None:
        raise _missing_or_moved(user_id, task_id, expected_versions)
    _log_write("task.deleted", user_id, task_id)
    if task["deletions_due"]:
        forget_deletions(user_id)
    return Deleted(task, len(subtasks))


def move_task(user_id: str, task_id: int, request: dict[str, Any], expected_versions: list[int] | None = None) -> Row:
    """Move a task to another list, parent or place among its siblings (API.md §9); returns it.
    400 on the field at fault, 404, 412."""
    with current_database().transaction() as run:
        task = tree.move(run, user_id, task_id, request, expected_versions)
    _log_write("task.moved", user_id, task_id)
    return task


def _retention_days() -> int:
    return current_app.config["TODO_API_SETTINGS"].sync_retention_days


def forget_deletions(user_id: str) -> None:
    """Forget up to FORGET_BATCH of the user's deletions older than SYNC_RETENTION_DAYS (docs/sync.md,
    Retention). The caller's own work has committed by now: a failure here is logged, not raised, and
    the next sync or deletion of the user tries again."""
    try:
        current_database().fetch_one(
            "forget_deletions", {"user_id": user_id, "retention_days": _retention_days(), "batch": FORGET_BATCH}
        )
    except psycopg.Error as error:
        log.warning(
            "forgetting expired deletions failed; the next sync or deletion retries",
            extra={"event": "sync.forget_failed", "user_id": user_id, "error": type(error).__name__},
        )
