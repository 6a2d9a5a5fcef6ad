"""The list operations, one function each, shared by the REST routes (routes.py) and the MCP tools
(tools.py). Each takes the token's user and input its surface has already validated.

A user's list creates and moves take the user's tree lock first (the one tasks' structural changes
take, migrations/0009): the count against the limit and the last position are then exact. Deleting a
list locks it (FOR UPDATE), which a task's foreign key check (FOR KEY SHARE) must wait for: a task
being added or moved into the list either commits first and is counted and deleted with the list,
or waits and then fails its check (a 400 on list_id, tasks/tree.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..platform import idempotency, positions
from ..platform.db import Row, Runner, current_database
from ..platform.errors import ApiError
from .errors import MAX_LISTS, list_not_found, not_a_list, too_many_lists

log = logging.getLogger("todo_api.lists")
# Idempotency keys are kept per user; a list's carry this prefix (hashed in), so that one key sent
# to /tasks and to /lists names two requests (API.md §4).
KEY_SCOPE = "lists"


@dataclass(frozen=True)
class Deleted:
    """A list as it was when deleted, and how many tasks went with it."""

    list: Row
    tasks: int


def _log_write(event: str, user_id: str, list_id: int) -> None:
    log.info(event, extra={"event": event, "list_id": list_id, "user_id": user_id})


def _missing_or_moved(user_id: str, list_id: int, expected_versions: list[int] | None) -> ApiError:
    """A conditional write matched no row: 412 if the list exists at another version, else 404."""
    if expected_versions is not None and current_database().fetch_one(
        "get_list_version", {"user_id": user_id, "list_id": list_id}
    ):
        return ApiError(412)
    return list_not_found()


def list_lists(user_id: str) -> list[Row]:
    """Every list of the user, in position order."""
    return current_database().fetch_all("list_lists", {"user_id": user_id})


def get_list(user_id: str, list_id: int) -> Row:
    """One list of the user; 404 when the user has none with this id."""
    found = current_database().fetch_one("get_list", {"user_id": user_id, "list_id": list_id})
    if found is None:
        raise list_not_found()
    return found


def _insert(run: Runner, user_id: str, name: str) -> Row:
    """A new list, last; 409 limit_exceeded at MAX_LISTS."""
    run.fetch_one("lock_lists", {"user_id": user_id})
    last = run.fetch_one("last_list_position", {"user_id": user_id})
    position = positions.between(last["position"] if last else None, None)
    params = {"user_id": user_id, "name": name, "position": position, "limit": MAX_LISTS}
    created = run.fetch_one("insert_list", params)
    if created is None:
        raise too_many_lists()
    return created


def create_list(user_id: str, fields: dict[str, Any]) -> Row:
    """Create a list from loaded ListInputSchema `fields`, last among the user's lists. 409 at the limit."""
    with current_database().transaction() as run:
        created = _insert(run, user_id, fields["name"])
    _log_write("list.created", user_id, created["id"])
    return created


def create_list_once(
    user_id: str,
    fields: dict[str, Any],
    key: str,
    request_hash: str,
    answer: Callable[[Row], idempotency.Remembered],
) -> idempotency.Remembered:
    """create_list at most once per Idempotency-Key (as tasks' create_task_once), the key scoped to
    lists: returns `answer(list)`, or the answer remembered for the key (409 if it cannot be)."""
    scoped = f"{KEY_SCOPE}:{idempotency.body_hash(key)}"
    with current_database().transaction() as run:
        remembered = idempotency.claim(run, user_id, scoped, request_hash)
        if remembered is not None:
            return remembered
        created = _insert(run, user_id, fields["name"])
        first = answer(created)
        idempotency.remember(run, user_id, scoped, first)
    _log_write("list.created", user_id, created["id"])
    return first


def rename_list(user_id: str, list_id: int, fields: dict[str, Any], expected_versions: list[int] | None) -> Row:
    """Rename a list if the version still matches. 404, 412."""
    params = {"user_id": user_id, "list_id": list_id, "name": fields["name"], "expected_versions": expected_versions}
    renamed = current_database().fetch_one("rename_list", params)
    if renamed is None:
        raise _missing_or_moved(user_id, list_id, expected_versions)
    _log_write("list.updated", user_id, list_id)
    return renamed


def move_list(user_id: str, list_id: int, request: dict[str, Any], expected_versions: list[int] | None) -> Row:
    """Put a list right after `after` (None: first; absent: last). 400 on `after`, 404, 412."""
    with current_database().transaction() as run:
        run.fetch_one("lock_lists", {"user_id": user_id})
        found = run.fetch_one("lock_list", {"user_id": user_id, "list_id": list_id})
        if found is None:
            raise list_not_found()
        if expected_versions is not None and found["version"] not in expected_versions:
            raise ApiError(412)
        position = _position_at(run, user_id, list_id, request)
        moved = run.fetch_one("move_list", {"user_id": user_id, "list_id": list_id, "position": position})
    assert moved is not None  # the row is locked: it is still there
    _log_write("list.updated", user_id, list_id)
    return moved


def _position_at(run: Runner, user_id: str, list_id: int, request: dict[str, Any]) -> str:
    """The moved list's new position; rebalances the user's lists when no key fits."""
    group = {"user_id": user_id, "list_id": list_id}
    if "after" not in request:
        last = run.fetch_one("last_list_position", group)
        key = positions.between(last["position"] if last and last["position"] else None, None)
        assert key is not None  # appending lengthens no key
        return key
    after_id = request["after"]
    neighbours = run.fetch_one("list_neighbour_positions", {**group, "after_id": after_id})
    if neighbours is None:
        raise not_a_list("after")
    key = positions.between(neighbours["before"], neighbours["following"])
    if key is not None:
        return key
    others = [row["id"] for row in run.fetch_all("lock_other_lists", group)]
    keys = positions.spread(len(others) + 1)
    place = keys.pop(0 if after_id is None else others.index(after_id) + 1)
    run.fetch_all("set_list_positions", {"user_id": user_id, "ids": others, "positions": keys})
    return place


def delete_list(user_id: str, list_id: int, expected_versions: list[int] | None) -> Deleted:
    """Delete a list and every task in it, in one transaction. 404, 412."""
    params = {"user_id": user_id, "list_id": list_id}
    with current_database().transaction() as run:
        # the tree lock first, as a create under a parent or a move takes it: neither then holds a
        # task's row that the cascade needs while waiting for this list's row
        run.fetch_one("lock_lists", {"user_id": user_id})
        found = run.fetch_one("lock_list", params)
        if found is None:
            raise list_not_found()
        if expected_versions is not None and found["version"] not in expected_versions:
            raise ApiError(412)
        tasks = run.fetch_one("count_list_tasks", params)
        deleted = run.fetch_one("delete_list", params)
    assert tasks is not None and deleted is not None
    _log_write("list.deleted", user_id, list_id)
    return Deleted(deleted, tasks["tasks"])
