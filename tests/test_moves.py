"""…/move (API.md §9, Moving): destination rules, cycles, depth, `after`, and the races — two
opposite moves, concurrent creates and moves in one group, a list deleted while tasks are added."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from conftest import Api, assert_error, task_row
from test_lists import lists, new_list
from test_subtasks import chain

ROUNDS = 15


def move(api, task_id: int, **body):
    return api.post(f"/{task_id}/move", json=body)


def order(api, **filters) -> list[int]:
    """The ids of a sibling group in the order a user sees (sort=position), every page walked."""
    ids, cursor = [], None
    while True:
        query = {"sort": "position", "limit": 100, **filters, **({"cursor": cursor} if cursor else {})}
        body = api.get(query_string=query).json
        ids += [task["id"] for task in body["data"]]
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return ids


def test_move_after_a_sibling_first_and_last(api, conn):
    a, b, c = (api.create(title=name) for name in "abc")
    response = move(api, c["id"], after=None)
    assert response.status_code == 200 and response.headers["ETag"] == '"2"'
    assert order(api, list_id="none", parent_id="none") == [c["id"], a["id"], b["id"]]
    move(api, c["id"], after=a["id"])
    assert order(api, list_id="none", parent_id="none") == [a["id"], c["id"], b["id"]]
    move(api, a["id"], parent_id=None)  # absent after: last
    assert order(api, list_id="none", parent_id="none") == [c["id"], b["id"], a["id"]]
    assert task_row(conn, b["id"])["version"] == 1  # no other item rewritten


def test_moving_under_a_parent_brings_the_subtree_into_its_list(api, conn):
    groceries = new_list(api)
    top, child = chain(api, 2)
    target = api.create(list_id=groceries["id"])
    moved = move(api, top["id"], parent_id=target["id"]).json["data"]
    assert moved["parent_id"] == target["id"] and moved["list_id"] == groceries["id"] and moved["version"] == 2
    assert task_row(conn, child["id"])["list_id"] == groceries["id"] and task_row(conn, child["id"])["version"] == 2
    back = move(api, top["id"], parent_id=None, list_id=None).json["data"]
    assert back["parent_id"] is None and back["list_id"] is None
    assert task_row(conn, child["id"])["list_id"] is None and task_row(conn, child["id"])["version"] == 3


@pytest.mark.parametrize(
    "body, field",
    [({}, "body"), ({"colour": 1}, "colour"), ({"after": "x"}, "after"), ({"parent_id": True}, "parent_id")],
)
def test_bad_move_bodies_are_a_400(api, body, field):
    task = api.create()
    assert field in assert_error(move(api, task["id"], **body), 400, "validation_error")["details"]


def test_cycles_depth_after_and_list_rules(api, other_api, conn):
    top, middle, bottom = chain(api, 3)
    for parent in (top, middle, bottom):  # itself, or below itself
        assert list(assert_error(move(api, top["id"], parent_id=parent["id"]), 400, "validation_error")["details"]) == [
            "parent_id"
        ]
    deep = chain(api, 2)
    error = assert_error(move(api, deep[0]["id"], parent_id=bottom["id"]), 400, "validation_error")
    assert list(error["details"]) == ["parent_id"]  # 4 + 2 levels
    theirs = other_api.create()
    for after in (theirs["id"], top["id"] + 10**9, middle["id"]):  # another user's, none, not a sibling
        assert list(assert_error(move(api, top["id"], after=after), 400, "validation_error")["details"]) == ["after"]
    assert list(assert_error(move(api, top["id"], after=top["id"]), 400, "validation_error")["details"]) == ["after"]
    error = assert_error(move(api, middle["id"], list_id=new_list(api)["id"]), 400, "validation_error")
    assert list(error["details"]) == ["list_id"]  # a subtask's list is its parent's
    assert_error(move(api, theirs["id"], after=None), 404, "not_found")
    assert_error(
        api.post(f"/{top['id']}/move", json={"after": None}, headers={"If-Match": '"5"'}), 412, "precondition_failed"
    )
    assert [task_row(conn, task["id"])["version"] for task in (top, middle, bottom)] == [1, 1, 1]


def test_moving_into_another_users_list_is_a_400_with_one_message(api, other_api):
    task = api.create()
    theirs = new_list(other_api)
    for list_id in (theirs["id"], theirs["id"] + 10**9):
        error = assert_error(move(api, task["id"], list_id=list_id), 400, "validation_error")
        assert error["details"] == {"list_id": ["Must be the id of one of your lists, or null."]}


def race(app, user_id: str, *jobs: Callable[[Api], object]) -> list:
    """Run each job on its own thread and test client, all released at once; their results."""
    start = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)

    def run(index: int, job: Callable[[Api], object]) -> None:
        api = Api(app.test_client(), user_id)
        start.wait(timeout=10)
        results[index] = job(api)

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def ancestors_within_limits(conn, user_id: str) -> None:
    """No cycle and no task below level 4 among the user's tasks."""
    rows = conn.execute("SELECT id, parent_id FROM tasks WHERE user_id = %s", [user_id]).fetchall()
    parents = {row["id"]: row["parent_id"] for row in rows}
    for task_id in parents:
        seen, current = [], task_id
        while current is not None:
            assert current not in seen, f"cycle through {seen}"
            seen.append(current)
            current = parents[current]
        assert len(seen) <= 4, f"{task_id} is at level {len(seen)}"


def test_two_opposite_moves_never_make_a_cycle(app, api, conn):
    for _ in range(ROUNDS):
        a, b = api.create(title="a"), api.create(title="b")
        answers = race(
            app,
            api.user_id,
            lambda other, a=a, b=b: move(other, a["id"], parent_id=b["id"]).status_code,
            lambda other, a=a, b=b: move(other, b["id"], parent_id=a["id"]).status_code,
        )
        assert sorted(answers) in ([200, 400], [200, 409]), answers
        ancestors_within_limits(conn, api.user_id)


def test_racing_moves_never_go_past_level_4(app, api, conn):
    for _ in range(ROUNDS // 3):
        left, right = chain(api, 2), chain(api, 2)  # each two levels: together they would make 4 + more
        answers = race(
            app,
            api.user_id,
            lambda other, left=left, right=right: move(other, left[0]["id"], parent_id=right[1]["id"]).status_code,
            lambda other, left=left, right=right: move(other, right[0]["id"], parent_id=left[1]["id"]).status_code,
        )
        assert 200 in answers
        ancestors_within_limits(conn, api.user_id)


def test_concurrent_creates_and_moves_in_one_group_leave_a_total_order_with_nothing_lost(app, api):
    parent = api.create(title="group")
    members = [api.create(parent_id=parent["id"])["id"] for _ in range(4)]
    for round_number in range(ROUNDS // 3):
        created = race(
            app,
            api.user_id,
            *(
                lambda other: other.post(json={"title": "new", "parent_id": parent["id"]}).json["data"]["id"]
                for _ in range(2)
            ),
            lambda other, first=members[0], last=members[-1]: move(other, first, after=last).status_code,
            lambda other, last=members[-1]: move(other, last, after=None).status_code,
            lambda other, second=members[1], third=members[2]: move(other, second, after=third).status_code,
        )
        assert created[2:] == [200, 200, 200]
        members += created[:2]
        seen = order(api, parent_id=parent["id"])
        assert sorted(seen) == sorted(members), f"round {round_number}"
        assert len(set(seen)) == len(seen)


def test_a_list_deleted_while_tasks_are_added_to_it_leaves_no_orphan(app, api, conn):
    for _ in range(ROUNDS // 3):
        doomed = new_list(api, "doomed")
        parent = api.create(list_id=doomed["id"])
        loose = api.create()
        answers = race(
            app,
            api.user_id,
            lambda other, doomed=doomed: lists(other, f"/{doomed['id']}", "DELETE").status_code,
            lambda other, doomed=doomed: other.post(json={"title": "late", "list_id": doomed["id"]}).status_code,
            lambda other, parent=parent: other.post(json={"title": "late", "parent_id": parent["id"]}).status_code,
            lambda other, doomed=doomed, loose=loose: move(other, loose["id"], list_id=doomed["id"]).status_code,
        )
        assert answers[0] == 200 and set(answers[1:]) <= {201, 200, 400}, answers
        orphans = conn.execute(
            "SELECT count(*) FROM tasks t WHERE t.user_id = %s AND t.list_id IS NOT NULL"
            " AND NOT EXISTS (SELECT FROM lists l WHERE l.user_id = t.user_id AND l.id = t.list_id)",
            [api.user_id],
        ).fetchone()["count"]
        assert orphans == 0


def test_a_recurrence_given_while_a_subtask_is_created_under_the_task_never_both(app, api, conn):
    recurrence = {"recurrence": "FREQ=DAILY", "due_at": "2027-01-04T09:00:00Z"}
    for _ in range(ROUNDS // 3):
        task = api.create()
        answers = race(
            app,
            api.user_id,
            lambda other, task=task: other.patch(f"/{task['id']}", json=recurrence).status_code,
            lambda other, task=task: other.post(json={"title": "step", "parent_id": task["id"]}).status_code,
        )
        assert answers in ([200, 400], [400, 201]), answers
        row = task_row(conn, task["id"])
        children = conn.execute("SELECT count(*) FROM tasks WHERE parent_id = %s", [task["id"]]).fetchone()["count"]
        assert row["recurrence"] is None or children == 0
