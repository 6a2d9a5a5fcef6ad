"""The task tree and its order (API.md §8, §9): where a new task goes, moves, and what a completion
or a deletion does to the subtasks.

Every change of the tree's shape (a create under a parent, a move, a deletion) first takes the user's
tree lock (`lock_task_tree`, one row per user, held to commit), then locks the task rows it writes,
then writes. So the checks of depth and cycles see every earlier change of the tree, and two moves
that would together make a cycle run one after the other: the second sees the first and is refused.
Row locks come before any write, whose sync trigger then locks the user's change counter: the lock
order of docs/sync.md (rows, then counter) holds, and a plain PATCH of one task never deadlocks with
a move. Top-level creates take no lock: two at once in one group may take the same position, which
the order breaks by id (and a later move between the two rebalances the group).

A list that is deleted while a task is added or moved into it: the foreign key (migrations/0009)
makes the insert or update wait for the deletion and then fail, answered as the 400 on `list_id`.
A deletion takes the tree lock, the list's row, the rows of its tasks, then (its tombstones) the
user's sync counter; so a task created in a list takes the list's row (`share_list`) before its
insert takes the counter, and a move, which holds the counter when its foreign key checks the list,
holds the tree lock too, so it never waits for a deletion that waits for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import psycopg.errors

from ..platform import positions
from ..platform.db import Row, Runner
from ..platform.errors import ApiError
from .errors import (
    CYCLE,
    NOT_A_SIBLING,
    NOT_PARENTS_LIST,
    NOT_YOUR_LIST,
    NOT_YOUR_TASK,
    RECURRING_PARENT,
    RECURRING_SUBTASK,
    TOO_DEEP,
    invalid_field,
    task_not_found,
)

MAX_DEPTH = 4
# The foreign keys of migrations/0009 (on Citus a shard's constraint carries a numeric suffix).
_FOREIGN_KEY_FIELDS = {"tasks_list_fk": ("list_id", NOT_YOUR_LIST), "tasks_parent_fk": ("parent_id", NOT_YOUR_TASK)}


def refused_reference(error: psycopg.errors.ForeignKeyViolation) -> ApiError:
    """A write whose list_id or parent_id named no row of the user (or one deleted meanwhile): the 400
    on that field, with the one message an id that never existed gets."""
    # Citus relays a worker's error without its constraint field: its message names the constraint
    constraint = error.diag.constraint_name or error.diag.message_primary or ""
    for name, (field, message) in _FOREIGN_KEY_FIELDS.items():
        if re.search(rf"\b{name}(_\d+)?\b", constraint):
            return invalid_field(field, message)
    raise error


def share_list(run: Runner, user_id: str, list_id: int) -> None:
    """Hold one of the user's lists for a task created in it (400 on `list_id` if it is not one): the
    list before the user's sync counter, as a list's deletion takes them, so the two never deadlock."""
    if run.fetch_one("share_list", {"user_id": user_id, "list_id": list_id}) is None:
        raise invalid_field("list_id", NOT_YOUR_LIST)


def _siblings(user_id: str, list_id: int | None, parent_id: int | None, task_id: int | None = None) -> dict[str, Any]:
    return {"user_id": user_id, "list_id": list_id, "parent_id": parent_id, "task_id": task_id}


def last_position(
    run: Any, user_id: str, list_id: int | None, parent_id: int | None, task_id: int | None = None
) -> str:
    """A position after every sibling in the group (`task_id`, a task being moved, left out)."""
    if list_id is None and parent_id is None and task_id is None:  # a plain create: the prepared read
        last = run.fetch_one("last_inbox_position", {"user_id": user_id})
    else:
        last = run.fetch_one("last_sibling_position", _siblings(user_id, list_id, parent_id, task_id), prepare=False)
    key = positions.between(last["position"] if last else None, None)
    assert key is not None  # appending lengthens no key: the integer part counts up
    return key


def place_new(run: Runner, user_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """`fields` of a task being created under a parent, with its list and position; 400 on
    `parent_id` (not the user's, too deep, a recurring parent or a recurring subtask) or `list_id`
    (not the parent's). Takes the tree lock: no move can make the parent deeper meanwhile."""
    run.fetch_one("lock_task_tree", {"user_id": user_id})
    chain = run.fetch_all("task_ancestry", {"user_id": user_id, "task_id": fields["parent_id"]})
    if not chain:
        raise invalid_field("parent_id", NOT_YOUR_TASK)
    parent = chain[0]
    if fields.get("recurrence") is not None:
        raise invalid_field("parent_id", RECURRING_SUBTASK)
    if parent["recurrence"] is not None:
        raise invalid_field("parent_id", RECURRING_PARENT)
    if len(chain) + 1 > MAX_DEPTH:
        raise invalid_field("parent_id", TOO_DEEP)
    if "list_id" in fields and fields["list_id"] != parent["list_id"]:
        raise invalid_field("list_id", NOT_PARENTS_LIST)
    position = last_position(run, user_id, parent["list_id"], fields["parent_id"])
    return {**fields, "list_id": parent["list_id"], "position": position}


def move(
    run: Runner, user_id: str, task_id: int, request: Mapping[str, Any], expected_versions: list[int] | None
) -> Row:
    """Move a task (API.md §9, Moving) as `request` says ({parent_id, list_id, after}, one or more);
    returns it as moved. 404, 412, 400 on the field at fault."""
    run.fetch_one("lock_task_tree", {"user_id": user_id})
    subtree = run.fetch_all("lock_subtree", {"user_id": user_id, "task_id": task_id})
    if not subtree:
        raise task_not_found()
    task = subtree[0]
    if expected_versions is not None and task["version"] not in expected_versions:
        raise ApiError(412)
    parent_id, list_id = _destination(run, user_id, task, subtree, request)
    position = _position_at(run, user_id, task_id, list_id, parent_id, request)
    params = {"user_id": user_id, "task_id": task_id, "list_id": list_id, "parent_id": parent_id, "position": position}
    try:
        moved = run.fetch_one("move_task", params)
        below = [row["id"] for row in subtree[1:]]
        if below:
            run.fetch_all("move_subtasks", {"user_id": user_id, "ids": below, "list_id": list_id})
    except psycopg.errors.ForeignKeyViolation as error:
        raise refused_reference(error) from None
    assert moved is not None  # the row is locked: it is still there
    return moved


def _destination(
    run: Runner, user_id: str, task: Row, subtree: list[Row], request: Mapping[str, Any]
) -> tuple[int | None, int | None]:
    """The parent and list a move takes the task to, checked: 400 on `parent_id` (not the user's, a
    cycle, too deep, recurrence) or `list_id` (a subtask's list is its parent's)."""
    parent_id = request.get("parent_id", task["parent_id"])
    if parent_id is None:
        list_id = request.get("list_id", task["list_id"])
        return None, list_id
    chain = run.fetch_all("task_ancestry", {"user_id": user_id, "task_id": parent_id})
    if not chain:
        raise invalid_field("parent_id", NOT_YOUR_TASK)
    if any(row["id"] == task["id"] for row in chain):
        raise invalid_field("parent_id", CYCLE)
    if task["recurrence"] is not None:
        raise invalid_field("parent_id", RECURRING_SUBTASK)
    if chain[0]["recurrence"] is not None:
        raise invalid_field("parent_id", RECURRING_PARENT)
    height = max(row["depth"] for row in subtree)
    if len(chain) + height > MAX_DEPTH:
        raise invalid_field("parent_id", TOO_DEEP)
    list_id = chain[0]["list_id"]
    if "list_id" in request and request["list_id"] != list_id:
        raise invalid_field("list_id", NOT_PARENTS_LIST)
    return parent_id, list_id


def _position_at(
    run: Runner, user_id: str, task_id: int, list_id: int | None, parent_id: int | None, request: Mapping[str, Any]
) -> str:
    """The moved task's position in its new group: after `after` (None: first), or last; rebalances
    the group when no key fits between the neighbours."""
    if "after" not in request:
        return last_position(run, user_id, list_id, parent_id, task_id)
    group = _siblings(user_id, list_id, parent_id, task_id)
    after_id = request["after"]
    before = None
    if after_id is not None:
        found = run.fetch_one("sibling_position", {**group, "after_id": after_id})
        if found is None:
            raise invalid_field("after", NOT_A_SIBLING)
        before = found["position"]
    following = run.fetch_one("next_sibling_position", {**group, "after_id": after_id, "after_position": before})
    key = positions.between(before, following["position"] if following else None)
    return key if key is not None else _rebalance(run, group, after_id)


def _rebalance(run: Runner, group: dict[str, Any], after_id: int | None) -> str:
    """Rewrite the positions of a sibling group with short, evenly spread keys, leaving a place for
    the moved task right after `after_id` (None: first); returns that place's key. Each sibling
    whose position changes gets version + 1 (and so appears in sync)."""
    siblings = [row["id"] for row in run.fetch_all("lock_siblings", group)]
    index = 0 if after_id is None else siblings.index(after_id) + 1
    keys = positions.spread(len(siblings) + 1)
    place = keys.pop(index)
    run.fetch_all("set_positions", {"user_id": group["user_id"], "ids": siblings, "positions": keys})
    return place


def lock_subtasks(run: Runner, user_id: str, task_id: int) -> list[Row]:
    """Every task below `task_id`, locked (none when it has no subtasks or does not exist)."""
    return run.fetch_all("lock_subtree", {"user_id": user_id, "task_id": task_id})[1:]


def complete_subtasks(run: Runner, user_id: str, subtasks: list[Row]) -> None:
    """Complete the locked `subtasks` that are not: each its own completed_at and version + 1."""
    ids = [row["id"] for row in subtasks if not row["completed"]]
    if ids:
        run.fetch_all("complete_subtasks", {"user_id": user_id, "ids": ids})
