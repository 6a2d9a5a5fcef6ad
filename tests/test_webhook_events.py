"""The events of lists and subtasks (API.md §10 with §8, §9; migration 0012): list.created, list.updated
and list.deleted, one list.deleted and no task.deleted for the tasks that went with their list, one
task.completed per subtask completed with its parent, task events carrying list_id, parent_id and
position, a move as task.updated."""

from __future__ import annotations

import pytest
from test_webhooks import Hooks, deliveries

from todo_api.lists.schemas import dump_list


@pytest.fixture
def hooks(api, conn):
    """The user's webhook (every event), removed afterwards with its deliveries."""
    hooks = Hooks(api)
    hooks.create()
    yield hooks
    conn.execute("DELETE FROM webhooks WHERE user_id = %s", [api.user_id])


def lists(api, method: str, path: str = "", **kwargs):
    response = api.client.open(
        f"/api/{api.user_id}/lists{path}", method=method, headers={"Authorization": f"Bearer {api.token}"}, **kwargs
    )
    assert response.status_code in (200, 201), response.json
    return response.json


def events(conn, user_id: str) -> list[tuple[str, int]]:
    """Each queued delivery's event and its data's id, in the order they were queued."""
    rows = conn.execute(
        "SELECT event, payload FROM webhook_deliveries WHERE user_id = %s ORDER BY created_at, id", [user_id]
    ).fetchall()
    return [(row["event"], row["payload"]["data"]["id"]) for row in rows]


def test_a_lists_life_sends_created_updated_and_deleted_with_the_list_as_the_api_returns_it(hooks, conn):
    api = hooks.api
    created = lists(api, "POST", json={"name": "Groceries"})["data"]
    renamed = lists(api, "PATCH", f"/{created['id']}", json={"name": "Food"})["data"]
    other = lists(api, "POST", json={"name": "Work"})["data"]
    moved = lists(api, "POST", f"/{created['id']}/move", json={})["data"]  # last: after Work
    deleted = lists(api, "DELETE", f"/{created['id']}")["data"]
    rows = [row for row in deliveries(conn, api.user_id) if row["event"].startswith("list.")]
    sent = [
        (row["event"], row["payload"]["data"]) for row in sorted(rows, key=lambda r: r["payload"]["data"]["version"])
    ]
    mine = [(event, data) for event, data in sent if data["id"] == created["id"]]
    assert [event for event, _ in mine] == ["list.created", "list.updated", "list.updated", "list.deleted"]
    assert [data for _, data in mine] == [created, renamed, moved, deleted]
    assert ("list.created", other) in sent
    stored = conn.execute("SELECT * FROM lists WHERE user_id = %s AND id = %s", [api.user_id, other["id"]]).fetchone()
    assert (
        dump_list(stored)
        == other
        == conn.execute(
            "SELECT list_json(l) AS j FROM lists l WHERE user_id = %s AND id = %s", [api.user_id, other["id"]]
        ).fetchone()["j"]
    )


def test_the_tasks_deleted_with_their_list_send_nothing_of_their_own(hooks, conn):
    api = hooks.api
    groceries = lists(api, "POST", json={"name": "Groceries"})["data"]
    milk = api.create(title="Milk", list_id=groceries["id"])
    api.create(title="Oat milk", parent_id=milk["id"])
    inbox = api.create(title="Elsewhere")
    conn.execute("DELETE FROM webhook_deliveries WHERE user_id = %s", [api.user_id])

    answer = lists(api, "DELETE", f"/{groceries['id']}")
    assert answer["meta"]["deleted_tasks"] == 2
    assert events(conn, api.user_id) == [("list.deleted", groceries["id"])]
    api.delete(f"/{inbox['id']}")
    assert events(conn, api.user_id)[-1] == ("task.deleted", inbox["id"])


def test_completing_a_parent_sends_one_task_completed_for_it_and_each_open_subtask(hooks, conn):
    api = hooks.api
    parent = api.create(title="Trip")
    children = [api.create(title=f"Step {n}", parent_id=parent["id"]) for n in range(3)]
    done = api.create(title="Booked", parent_id=parent["id"], completed=True)
    conn.execute("DELETE FROM webhook_deliveries WHERE user_id = %s", [api.user_id])

    response = api.patch(f"/{parent['id']}/complete", json={"completed": True})
    assert response.status_code == 200
    sent = events(conn, api.user_id)
    assert sorted(sent) == sorted([("task.completed", parent["id"])] + [("task.completed", c["id"]) for c in children])
    assert ("task.completed", done["id"]) not in sent


def test_a_task_event_carries_list_parent_and_position_and_a_move_is_task_updated(hooks, conn):
    api = hooks.api
    work = lists(api, "POST", json={"name": "Work"})["data"]
    parent = api.create(title="Report", list_id=work["id"])
    child = api.create(title="Draft", parent_id=parent["id"])
    row = conn.execute(
        "SELECT payload FROM webhook_deliveries"
        " WHERE user_id = %s AND event = 'task.created' AND payload->'data'->>'id' = %s",
        [api.user_id, str(child["id"])],
    ).fetchone()
    data = row["payload"]["data"]
    assert (data["list_id"], data["parent_id"], data["position"]) == (work["id"], parent["id"], child["position"])
    conn.execute("DELETE FROM webhook_deliveries WHERE user_id = %s", [api.user_id])

    moved = api.client.post(
        f"/api/{api.user_id}/tasks/{child['id']}/move",
        json={"parent_id": None},
        headers={"Authorization": f"Bearer {api.token}"},
    )
    assert moved.status_code == 200, moved.json
    (row,) = deliveries(conn, api.user_id)
    assert row["event"] == "task.updated"
    assert row["payload"]["data"] == moved.json["data"]
    assert row["payload"]["data"]["parent_id"] is None
