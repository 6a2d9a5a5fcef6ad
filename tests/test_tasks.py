"""The task routes of API.md §4: what each does to the database and what it answers."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from conftest import assert_error, task_row

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def test_create_answers_201_with_location_etag_and_defaults(api, conn):
    response = api.post(json={"title": "Buy milk"})
    assert response.status_code == 201
    task = response.json["data"]
    assert response.headers["Location"] == f"{api.base}/{task['id']}"
    assert response.headers["ETag"] == '"1"'
    assert task == {
        "id": task["id"],
        "user_id": api.user_id,
        "title": "Buy milk",
        "description": None,
        "completed": False,
        "completed_at": None,
        "priority": "none",
        "tags": [],
        "due_at": None,
        "recurrence": None,
        "timezone": "UTC",
        "remind_at": None,
        "next_id": None,
        "list_id": None,
        "parent_id": None,
        "position": task["position"],
        "created_at": task["created_at"],
        "updated_at": task["created_at"],
        "version": 1,
    }
    assert TIMESTAMP.match(task["created_at"])
    row = task_row(conn, task["id"])
    assert row["user_id"] == api.user_id and row["title"] == "Buy milk" and row["version"] == 1


def test_create_stores_every_field_and_returns_utc_timestamps(api, conn):
    task = api.create(
        title="  Plan trip  ",
        description="  keep my spaces  ",
        completed=True,
        priority="high",
        tags=[" Home ", "home", "WORK", "errands"],
        due_at="2026-12-01T09:00:00+01:00",
    )
    assert task["title"] == "Plan trip"
    assert task["description"] == "  keep my spaces  "
    assert task["completed"] is True and TIMESTAMP.match(task["completed_at"])
    assert task["priority"] == "high"
    assert task["tags"] == ["Home", "WORK", "errands"]
    assert task["due_at"] == "2026-12-01T08:00:00Z"
    row = task_row(conn, task["id"])
    assert row["due_at"] == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert row["tags"] == ["Home", "WORK", "errands"]


def test_text_is_stored_and_returned_byte_for_byte(api, conn):
    title = 'Robert\'); DROP TABLE tasks;-- 100% "quoted" \\ ünïcødé 🎉 %(x)s {}'
    task = api.create(title=title, description="", tags=["%", "_", "'"])
    assert task["title"] == title
    assert task["description"] == ""
    fetched = api.get(f"/{task['id']}").json["data"]
    assert fetched["title"] == title and fetched["tags"] == ["%", "_", "'"]
    assert task_row(conn, task["id"])["title"] == title


def test_get_one_answers_200_with_etag(api):
    task = api.create(title="Read")
    response = api.get(f"/{task['id']}")
    assert response.status_code == 200
    assert response.headers["ETag"] == '"1"'
    assert response.json["data"] == task


def test_get_one_with_matching_if_none_match_is_304_without_body(api):
    task = api.create()
    response = api.get(f"/{task['id']}", headers={"If-None-Match": '"1"'})
    assert response.status_code == 304
    assert response.get_data() == b""
    assert response.headers["ETag"] == '"1"'
    assert api.get(f"/{task['id']}", headers={"If-None-Match": '"2"'}).status_code == 200


def test_put_replaces_every_field_and_resets_omitted_ones(api, conn):
    task = api.create(title="Old", description="d", priority="high", tags=["a"], due_at="2026-01-01T00:00:00Z")
    response = api.put(f"/{task['id']}", json={"title": "New"})
    assert response.status_code == 200
    assert response.headers["ETag"] == '"2"'
    data = response.json["data"]
    assert (data["title"], data["description"], data["priority"], data["tags"], data["due_at"]) == (
        "New",
        None,
        "none",
        [],
        None,
    )
    assert data["version"] == 2 and data["created_at"] == task["created_at"]
    assert data["updated_at"] > task["updated_at"]
    row = task_row(conn, task["id"])
    assert row["title"] == "New" and row["description"] is None and row["version"] == 2


def test_put_requires_title(api, conn):
    task = api.create(title="Keep")
    error = assert_error(api.put(f"/{task['id']}", json={"priority": "low"}), 400, "validation_error")
    assert "title" in error["details"]
    assert task_row(conn, task["id"])["version"] == 1


def test_patch_changes_only_the_fields_given(api, conn):
    task = api.create(title="Title", description="keep", priority="low", tags=["x"])
    response = api.patch(f"/{task['id']}", json={"priority": "high", "description": None})
    assert response.status_code == 200
    data = response.json["data"]
    assert data["title"] == "Title" and data["tags"] == ["x"]
    assert data["priority"] == "high" and data["description"] is None
    assert data["version"] == 2 and response.headers["ETag"] == '"2"'
    row = task_row(conn, task["id"])
    assert row["priority"] == "high" and row["description"] is None and row["title"] == "Title"


def test_patch_with_no_field_is_400_under_body(api, conn):
    task = api.create()
    error = assert_error(api.patch(f"/{task['id']}", json={}), 400, "validation_error")
    assert list(error["details"]) == ["body"]
    assert task_row(conn, task["id"])["version"] == 1


def test_version_goes_up_even_when_nothing_changed(api):
    task = api.create(title="Same")
    assert api.patch(f"/{task['id']}", json={"title": "Same"}).json["data"]["version"] == 2
    assert api.put(f"/{task['id']}", json={"title": "Same"}).json["data"]["version"] == 3


def test_patch_completed_sets_and_clears_completed_at_only_on_a_flip(api):
    task = api.create()
    done = api.patch(f"/{task['id']}", json={"completed": True}).json["data"]
    assert done["completed"] is True and TIMESTAMP.match(done["completed_at"])
    again = api.patch(f"/{task['id']}", json={"completed": True}).json["data"]
    assert again["completed_at"] == done["completed_at"] and again["version"] == 3
    reopened = api.patch(f"/{task['id']}", json={"completed": False}).json["data"]
    assert reopened["completed"] is False and reopened["completed_at"] is None


def test_complete_without_body_toggles(api, conn):
    task = api.create()
    first = api.patch(f"/{task['id']}/complete")
    assert first.status_code == 200 and first.headers["ETag"] == '"2"'
    assert first.json["data"]["completed"] is True and first.json["data"]["completed_at"]
    second = api.patch(f"/{task['id']}/complete").json["data"]
    assert second["completed"] is False and second["completed_at"] is None
    row = task_row(conn, task["id"])
    assert row["completed"] is False and row["completed_at"] is None and row["version"] == 3


def test_complete_with_body_sets_the_value(api):
    task = api.create()
    done = api.patch(f"/{task['id']}/complete", json={"completed": True}).json["data"]
    still = api.patch(f"/{task['id']}/complete", json={"completed": True}).json["data"]
    assert done["completed"] is still["completed"] is True
    assert still["completed_at"] == done["completed_at"] and still["version"] == 3


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("PATCH", "/complete", None), ("PATCH", "/complete", {"completed": True}), ("PATCH", "", {"completed": True}),
     ("PUT", "", {"title": "Done", "completed": True})],
)  # fmt: skip
def test_completing_stamps_completed_at_with_the_writes_own_time(api, conn, method, path, body):
    """completed_at and updated_at are one transaction's time (on Citus too: sql/tasks.sql)."""
    task = api.create()
    done = api.request(method, f"/{task['id']}{path}", json=body).json["data"]
    assert done["completed"] is True and done["completed_at"] == done["updated_at"] != task["updated_at"]
    row = task_row(conn, task["id"])
    assert row["completed_at"] == row["updated_at"]


@pytest.mark.parametrize("body", [{"completed": "yes"}, {"completed": None}, {}, {"done": True}])
def test_complete_with_a_bad_body_is_400_and_unchanged(api, conn, body):
    task = api.create()
    assert_error(api.patch(f"/{task['id']}/complete", json=body), 400, "validation_error")
    assert task_row(conn, task["id"])["completed"] is False


def test_delete_answers_the_deleted_task_and_removes_it(api, conn):
    task = api.create()
    api.patch(f"/{task['id']}", json={"title": "Changed"})
    response = api.delete(f"/{task['id']}")
    assert response.status_code == 200
    assert response.headers["ETag"] == '"2"'
    assert response.json["data"]["title"] == "Changed"
    assert task_row(conn, task["id"]) is None
    assert_error(api.get(f"/{task['id']}"), 404, "not_found")
    assert_error(api.delete(f"/{task['id']}"), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PUT", "", {"title": "Stolen"}),
        ("PATCH", "", {"title": "Stolen"}),
        ("PATCH", "/complete", None),
        ("DELETE", "", None),
    ],
)
def test_other_users_task_is_404_and_unchanged(api, other_api, conn, method, suffix, body):
    theirs = other_api.create(title="Private")
    response = api.request(method, f"/{theirs['id']}{suffix}", json=body)
    assert_error(response, 404, "not_found")
    row = task_row(conn, theirs["id"])
    assert row["user_id"] == other_api.user_id and row["title"] == "Private" and row["version"] == 1
    assert not row["completed"]


def test_listing_shows_only_the_users_own_tasks(api, other_api):
    mine = api.create(title="Mine")
    other_api.create(title="Theirs")
    data = api.get().json["data"]
    assert [task["id"] for task in data] == [mine["id"]]


@pytest.mark.parametrize("task_id", ["0", "-1", "abc", "1.5", "99999999999999999999", "9223372036854775808"])
def test_non_numeric_or_out_of_range_id_is_404(api, task_id):
    assert_error(api.get(f"/{task_id}"), 404, "not_found")


def test_largest_bigint_id_is_a_plain_404(api):
    assert_error(api.get("/9223372036854775807"), 404, "not_found")


def test_every_route_answers_the_task_as_the_schema_dumps_the_stored_row(api, conn):
    """Each route's task (the fast dump_task) equals TaskSchema().dump of the row as stored, field for
    field and in order (timestamps at the ends of the years, with and without a fraction;
    next_occurrence; sync)."""
    from todo_api.tasks.schemas import TaskSchema

    def stored(task_id: int) -> list[tuple[str, object]]:
        row = conn.execute("SELECT * FROM tasks WHERE id = %s", [task_id]).fetchone()
        return list(TaskSchema().dump(row).items())

    api.create(title="plain")
    api.create(
        title="full",
        description="",
        completed=True,
        priority="high",
        tags=["a", "B"],
        due_at="2026-12-01T09:00:00.123456+05:30",
    )
    for due_at in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "2026-12-01T09:00:00.5-03:00"):
        api.create(title=due_at, due_at=due_at, remind_at="2026-12-01T09:00:00.000001Z")
    recurring = api.create(
        title="recurring",
        due_at="2026-12-01T09:00:00+05:30",
        recurrence="FREQ=DAILY",
        timezone="Asia/Kolkata",
        remind_at="2026-12-01T08:00:00+05:30",
    )
    completed = api.patch(f"/{recurring['id']}/complete").json
    assert completed["data"]["next_id"]  # a row with every field set
    assert list(completed["data"].items()) == stored(recurring["id"])
    assert list(completed["meta"]["next_occurrence"].items()) == stored(completed["data"]["next_id"])

    listed = api.get("?limit=100").json["data"]
    assert len(listed) == 7
    for task in listed:
        assert list(task.items()) == stored(task["id"])
        assert list(api.get(f"/{task['id']}").json["data"].items()) == stored(task["id"])
    sync = api.client.get(f"/api/{api.user_id}/sync", headers={"Authorization": f"Bearer {api.token}"})
    synced = sync.json["data"]["tasks"]
    assert [list(task.items()) for task in synced] == [stored(task["id"]) for task in synced]

    task_id = listed[0]["id"]
    created = api.post(json={"title": "new", "due_at": "2026-12-24T18:30:00+01:00"})
    assert list(created.json["data"].items()) == stored(created.json["data"]["id"])
    patched = api.patch(f"/{task_id}", json={"title": "patched"}).json["data"]
    assert list(patched.items()) == stored(task_id)
    replaced = api.put(f"/{task_id}", json={"title": "replaced", "due_at": "2027-01-01T00:00:00Z"}).json["data"]
    assert list(replaced.items()) == stored(task_id)
    toggled = api.patch(f"/{task_id}/complete").json["data"]
    assert list(toggled.items()) == stored(task_id)
    before = stored(task_id)
    assert list(api.delete(f"/{task_id}").json["data"].items()) == before
