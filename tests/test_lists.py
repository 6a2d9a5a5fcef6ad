"""Lists (API.md §8): CRUD, order, the limit, deletion with the list's tasks, and a task's list_id."""

from __future__ import annotations

import logging

import pytest
from conftest import assert_error, task_row

from todo_api.lists.schemas import ListSchema, dump_list

NOT_YOUR_LIST = "Must be the id of one of your lists, or null."


def lists(api, path: str = "", method: str = "GET", **kwargs):
    headers = {"Authorization": f"Bearer {api.token}", **kwargs.pop("headers", {})}
    return api.client.open(f"/api/{api.user_id}/lists{path}", method=method, headers=headers, **kwargs)


def new_list(api, name: str = "Groceries") -> dict:
    response = lists(api, method="POST", json={"name": name})
    assert response.status_code == 201, response.json
    return response.json["data"]


def test_create_answers_201_with_location_etag_and_the_list_last(api, conn):
    first = new_list(api, "  Groceries  ")
    response = lists(api, method="POST", json={"name": "Work"})
    assert response.status_code == 201
    second = response.json["data"]
    assert response.headers["Location"] == f"/api/{api.user_id}/lists/{second['id']}"
    assert response.headers["ETag"] == '"1"'
    assert first["name"] == "Groceries" and first["version"] == 1 and first["user_id"] == api.user_id
    assert first["position"] < second["position"]
    row = conn.execute("SELECT name, position FROM lists WHERE id = %s", [second["id"]]).fetchone()
    assert row == {"name": "Work", "position": second["position"]}
    listed = lists(api).json
    assert [item["id"] for item in listed["data"]] == [first["id"], second["id"]]
    assert listed["meta"]["count"] == 2


def test_dump_list_equals_the_schema(api):
    created = new_list(api)
    assert dump_list(created | {"created_at": None, "updated_at": None}) == ListSchema().dump(
        created | {"created_at": None, "updated_at": None}
    )


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"name": 5}, "name"),
        ({"name": "ok", "position": "a0"}, "position"),
        ({"name": "ok", "colour": "red"}, "colour"),
    ],
)
def test_bad_bodies_are_a_400_naming_the_field_and_create_nothing(api, conn, body, field):
    error = assert_error(lists(api, method="POST", json=body), 400, "validation_error")
    assert field in error["details"]
    assert conn.execute("SELECT count(*) FROM lists WHERE user_id = %s", [api.user_id]).fetchone()["count"] == 0


def test_get_rename_and_conditional_requests(api):
    created = new_list(api)
    path = f"/{created['id']}"
    assert lists(api, path, headers={"If-None-Match": '"1"'}).status_code == 304
    assert assert_error(lists(api, path, "PATCH", json={}), 400, "validation_error")["details"].keys() == {"body"}
    assert_error(lists(api, path, "PATCH", json={"name": "X"}, headers={"If-Match": '"7"'}), 412, "precondition_failed")
    renamed = lists(api, path, "PATCH", json={"name": "Shopping"}, headers={"If-Match": '"1"'})
    assert renamed.status_code == 200 and renamed.headers["ETag"] == '"2"'
    assert renamed.json["data"]["name"] == "Shopping" and renamed.json["data"]["version"] == 2


def test_another_users_list_is_a_404_and_its_id_a_400_with_the_message_of_a_missing_one(api, other_api, conn):
    theirs = new_list(other_api)
    for method in ("GET", "PATCH", "DELETE"):
        assert_error(lists(api, f"/{theirs['id']}", method, json={"name": "mine"}), 404, "not_found")
    for list_id in (theirs["id"], 10**12, 0, -3):
        error = assert_error(api.post(json={"title": "T", "list_id": list_id}), 400, "validation_error")
        assert error["details"] == {"list_id": [NOT_YOUR_LIST]}
    assert conn.execute("SELECT count(*) FROM tasks WHERE user_id = %s", [api.user_id]).fetchone()["count"] == 0
    assert lists(other_api, f"/{theirs['id']}").json["data"]["name"] == "Groceries"


def test_move_reorders_and_after_must_be_another_of_the_users_lists(api, other_api):
    a, b, c = (new_list(api, name) for name in "abc")
    moved = lists(api, f"/{c['id']}/move", "POST", json={"after": None})
    assert moved.status_code == 200 and moved.json["data"]["version"] == 2
    lists(api, f"/{a['id']}/move", "POST", json={"after": b["id"]})
    assert [item["name"] for item in lists(api).json["data"]] == ["c", "b", "a"]
    lists(api, f"/{c['id']}/move", "POST", json={})
    assert [item["name"] for item in lists(api).json["data"]] == ["b", "a", "c"]
    theirs = new_list(other_api)
    for after in (theirs["id"], a["id"] + 10**6, a["id"]):
        error = assert_error(lists(api, f"/{a['id']}/move", "POST", json={"after": after}), 400, "validation_error")
        assert list(error["details"]) == ["after"]


def test_the_1001st_list_is_a_409_limit_exceeded(api, conn):
    conn.execute(
        "INSERT INTO lists (user_id, name, position) SELECT %s, 'L' || n, 'a0' FROM generate_series(1, 1000) AS n",
        [api.user_id],
    )
    error = assert_error(lists(api, method="POST", json={"name": "one more"}), 409, "limit_exceeded")
    assert error["details"] == {"limit": 1000}
    assert conn.execute("SELECT count(*) FROM lists WHERE user_id = %s", [api.user_id]).fetchone()["count"] == 1000


def test_idempotency_key_is_scoped_to_the_route(api, conn):
    headers = {"Idempotency-Key": "same-key"}
    first = lists(api, method="POST", json={"name": "A"}, headers=headers)
    again = lists(api, method="POST", json={"name": "A"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json["data"] == first.json["data"] and again.headers["Location"] == first.headers["Location"]
    assert_error(lists(api, method="POST", json={"name": "B"}, headers=headers), 409, "idempotency_conflict")
    assert api.post(json={"title": "A"}, headers=headers).status_code == 201  # another route: another request
    assert conn.execute("SELECT count(*) FROM lists WHERE user_id = %s", [api.user_id]).fetchone()["count"] == 1


def test_delete_takes_the_lists_tasks_and_subtasks_with_it(api, conn, caplog):
    groceries = new_list(api)
    kept = api.create()
    milk = api.create(list_id=groceries["id"])
    step = api.create(parent_id=milk["id"])
    assert step["list_id"] == groceries["id"]
    caplog.set_level(logging.INFO, logger="todo_api.lists")
    assert_error(lists(api, f"/{groceries['id']}", "DELETE", headers={"If-Match": '"9"'}), 412, "precondition_failed")
    response = lists(api, f"/{groceries['id']}", "DELETE")
    assert response.status_code == 200 and response.headers["ETag"] == '"1"'
    assert response.json["data"]["id"] == groceries["id"] and response.json["meta"]["deleted_tasks"] == 2
    assert task_row(conn, milk["id"]) is None and task_row(conn, step["id"]) is None
    assert task_row(conn, kept["id"]) is not None
    assert_error(lists(api, f"/{groceries['id']}"), 404, "not_found")
    error = assert_error(api.post(json={"title": "late", "list_id": groceries["id"]}), 400, "validation_error")
    assert error["details"] == {"list_id": [NOT_YOUR_LIST]}
    assert "Groceries" not in caplog.text and "list.deleted" in caplog.text


def test_list_id_is_set_on_post_and_read_only_in_put_and_patch(api):
    groceries = new_list(api)
    task = api.create(list_id=groceries["id"])
    assert task["list_id"] == groceries["id"] and task["parent_id"] is None
    for method in (api.put, api.patch):
        error = assert_error(method(f"/{task['id']}", json={"title": "T", "list_id": None}), 400, "validation_error")
        assert error["details"] == {"list_id": ["This field is read-only."]}


def test_sync_carries_lists_and_deleted_lists_and_the_tasks_a_deletion_took(api):
    from test_sync import synced, walk

    kept, doomed = new_list(api, "kept"), new_list(api, "doomed")
    inside = api.create(list_id=doomed["id"])
    first = synced(api)
    assert {item["id"] for item in first["data"]["lists"]} == {kept["id"], doomed["id"]}
    assert first["data"]["deleted_lists"] == [] and first["data"]["deleted"] == []
    token = first["meta"]["sync_token"]
    renamed = lists(api, f"/{kept['id']}", "PATCH", json={"name": "renamed"}).json["data"]
    lists(api, f"/{doomed['id']}", "DELETE")
    tasks, deleted, _, answers = walk(api, token, limit=1)  # one item an answer: lists count against limit
    changed = [item for answer in answers for item in answer["data"]["lists"]]
    gone = [item["id"] for answer in answers for item in answer["data"]["deleted_lists"]]
    assert changed == [renamed] and gone == [doomed["id"]]
    assert tasks == [] and [item["id"] for item in deleted] == [inside["id"]]
    assert all(
        sum(len(answer["data"][key]) for key in ("tasks", "deleted", "lists", "deleted_lists")) <= 1
        for answer in answers
    )


def test_moving_a_list_between_two_that_leave_no_room_rebalances_the_lists(api, conn):
    a, b, c = (new_list(api, name) for name in "abc")
    conn.execute("UPDATE lists SET position = %s WHERE id = %s", ["a0" + "V" * 62, a["id"]])
    conn.execute("UPDATE lists SET position = %s WHERE id = %s", ["a0" + "V" * 61 + "W", b["id"]])
    conn.execute("UPDATE lists SET position = %s WHERE id = %s", ["a1", c["id"]])
    versions = {row["id"]: row["version"] for row in lists(api).json["data"]}
    assert lists(api, f"/{c['id']}/move", "POST", json={"after": a["id"]}).status_code == 200
    listed = lists(api).json["data"]
    assert [item["name"] for item in listed] == ["a", "c", "b"]
    assert all(len(item["position"]) <= 64 for item in listed)
    assert all(item["version"] == versions[item["id"]] + 1 for item in listed)  # each rewritten once
