"""Subtasks (API.md §9): parent_id on POST, depth, recurrence, completion and deletion cascading down."""

from __future__ import annotations

import pytest
from conftest import assert_error, task_row
from test_lists import new_list

NOT_YOUR_TASK = "Must be the id of one of your tasks, or null."
RECURRENCE = {"recurrence": "FREQ=DAILY", "due_at": "2026-12-01T09:00:00Z"}


def chain(api, levels: int) -> list[dict]:
    """A top-level task and `levels - 1` tasks each under the previous one."""
    tasks = [api.create(title="level 1")]
    for level in range(2, levels + 1):
        tasks.append(api.create(title=f"level {level}", parent_id=tasks[-1]["id"]))
    return tasks


def test_a_subtask_takes_its_parents_list_and_goes_last_among_its_siblings(api):
    groceries = new_list(api)
    parent = api.create(list_id=groceries["id"])
    first = api.create(parent_id=parent["id"])
    second = api.create(parent_id=parent["id"], list_id=groceries["id"])
    assert first["list_id"] == second["list_id"] == groceries["id"]
    assert first["parent_id"] == parent["id"] and first["position"] < second["position"]


def test_a_list_id_other_than_the_parents_is_a_400_on_list_id(api, conn):
    groceries = new_list(api)
    parent = api.create(list_id=groceries["id"])
    for list_id in (None, new_list(api, "Work")["id"]):
        error = assert_error(
            api.post(json={"title": "T", "parent_id": parent["id"], "list_id": list_id}), 400, "validation_error"
        )
        assert list(error["details"]) == ["list_id"]
    assert conn.execute("SELECT count(*) FROM tasks WHERE user_id = %s", [api.user_id]).fetchone()["count"] == 1


def test_a_parent_that_is_not_the_users_is_a_400_with_one_message(api, other_api):
    theirs = other_api.create()
    for parent_id in (theirs["id"], theirs["id"] + 10**9, 0, 2**63):
        error = assert_error(api.post(json={"title": "T", "parent_id": parent_id}), 400, "validation_error")
        assert error["details"] == {"parent_id": [NOT_YOUR_TASK]}
    error = assert_error(api.post(json={"title": "T", "parent_id": "1"}), 400, "validation_error")
    assert list(error["details"]) == ["parent_id"]


def test_depth_stops_at_level_4(api, conn):
    tasks = chain(api, 4)
    error = assert_error(api.post(json={"title": "level 5", "parent_id": tasks[-1]["id"]}), 400, "validation_error")
    assert list(error["details"]) == ["parent_id"]
    assert conn.execute("SELECT count(*) FROM tasks WHERE user_id = %s", [api.user_id]).fetchone()["count"] == 4


def test_recurring_tasks_neither_have_nor_are_subtasks(api):
    recurring = api.create(**RECURRENCE)
    error = assert_error(api.post(json={"title": "T", "parent_id": recurring["id"]}), 400, "validation_error")
    assert list(error["details"]) == ["parent_id"]
    parent = api.create()
    error = assert_error(
        api.post(json={"title": "T", "parent_id": parent["id"], **RECURRENCE}), 400, "validation_error"
    )
    assert list(error["details"]) == ["parent_id"]
    child = api.create(parent_id=parent["id"])
    for task in (parent, child):
        for method in (api.patch, api.put):
            response = method(f"/{task['id']}", json={"title": "T", **RECURRENCE})
            assert list(assert_error(response, 400, "validation_error")["details"]) == ["recurrence"]
    assert api.get(f"/{parent['id']}").json["data"]["version"] == 1


@pytest.mark.parametrize("how", ["complete", "patch", "put", "toggle"])
def test_completing_a_task_completes_every_task_below_it_each_with_its_own_version(api, conn, how):
    top, middle, bottom = chain(api, 3)
    done = api.create(parent_id=top["id"], completed=True)
    path = f"/{top['id']}"
    response = {
        "complete": lambda: api.patch(path + "/complete", json={"completed": True}),
        "toggle": lambda: api.patch(path + "/complete"),
        "patch": lambda: api.patch(path, json={"completed": True}),
        "put": lambda: api.put(path, json={"title": "level 1", "completed": True}),
    }[how]()
    assert response.status_code == 200 and response.json["data"]["completed"] is True
    for task in (middle, bottom):
        row = task_row(conn, task["id"])
        assert row["completed"] and row["completed_at"] is not None and row["version"] == 2
    assert task_row(conn, done["id"])["version"] == 1  # already completed: unchanged


def test_reopening_changes_no_subtask_and_completing_a_subtask_no_parent(api, conn):
    top, child = chain(api, 2)
    api.patch(f"/{child['id']}/complete", json={"completed": True})
    assert task_row(conn, top["id"])["completed"] is False
    api.patch(f"/{top['id']}/complete", json={"completed": True})
    api.patch(f"/{top['id']}/complete", json={"completed": False})
    assert task_row(conn, child["id"])["completed"] is True


def test_deleting_a_task_deletes_its_subtree_and_counts_it(api, conn):
    top, middle, bottom = chain(api, 3)
    sibling = api.create(parent_id=top["id"])
    other = api.create()
    response = api.delete(f"/{top['id']}")
    assert response.status_code == 200 and response.json["meta"]["deleted_subtasks"] == 3
    for task in (top, middle, bottom, sibling):
        assert task_row(conn, task["id"]) is None
    assert task_row(conn, other["id"]) is not None
    assert api.delete(f"/{other['id']}").json["meta"]["deleted_subtasks"] == 0
