"""Bad input gets a clear 4xx in the envelope, names the field, and writes nothing (API.md §3)."""

from __future__ import annotations

import io

import pytest
from conftest import assert_error, task_row

from todo_api.tasks.schemas import READ_ONLY_FIELDS


def count_tasks(conn, user_id: str) -> int:
    return conn.execute("SELECT count(*) AS n FROM tasks WHERE user_id = %s", [user_id]).fetchone()["n"]


@pytest.mark.parametrize(
    ("field", "ok", "bad"),
    [
        ("title", "t" * 200, "t" * 201),
        ("title", "  " + "t" * 200 + "  ", "  " + "t" * 201),
        ("title", "é" * 200, "é" * 201),
        ("title", "🎉" * 200, "🎉" * 201),
        ("description", "d" * 1000, "d" * 1001),
        ("description", "🎉" * 1000, "🎉" * 1001),
    ],
)
def test_length_limits_count_code_points_after_trimming(api, conn, field, ok, bad):
    body = {"title": "x", field: ok}
    assert api.post(json=body).status_code == 201
    error = assert_error(api.post(json={"title": "x", field: bad}), 400, "validation_error")
    assert field in error["details"]
    assert count_tasks(conn, api.user_id) == 1


@pytest.mark.parametrize("title", ["", "   ", "\t\n\u3000"])
def test_blank_title_is_rejected(api, conn, title):
    error = assert_error(api.post(json={"title": title}), 400, "validation_error")
    assert "title" in error["details"]
    assert count_tasks(conn, api.user_id) == 0


def test_missing_title_is_rejected(api):
    assert "title" in assert_error(api.post(json={}), 400, "validation_error")["details"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", None),
        ("title", 1),
        ("title", ["x"]),
        ("description", 5),
        ("completed", "yes"),
        ("completed", "true"),
        ("completed", 1),
        ("completed", None),
        ("priority", "urgent"),
        ("priority", None),
        ("priority", "HIGH"),
        ("tags", None),
        ("tags", "home"),
        ("tags", [1]),
        ("tags", [None]),
        ("tags", [""]),
        ("tags", ["   "]),
        ("tags", ["t" * 51]),
        ("tags", [f"tag{i}" for i in range(21)]),
        ("due_at", "2026-12-01T09:00:00"),
        ("due_at", "2026-12-01"),
        ("due_at", "tomorrow"),
        ("due_at", 1764579600),
        ("due_at", "2026-13-01T09:00:00Z"),
    ],
)
def test_wrong_types_and_values_are_400_naming_the_field(api, conn, field, value):
    body = {"title": "x", field: value}
    error = assert_error(api.post(json=body), 400, "validation_error")
    assert field in error["details"]
    assert all(isinstance(m, str) for m in error["details"][field])
    assert count_tasks(conn, api.user_id) == 0


def test_tag_limit_applies_after_removing_duplicates(api):
    tags = [f"tag{i}" for i in range(20)] + ["TAG0", " tag1 "]
    task = api.create(tags=tags)
    assert task["tags"] == [f"tag{i}" for i in range(20)]


def test_tag_of_fifty_characters_is_accepted(api):
    assert api.create(tags=["t" * 50])["tags"] == ["t" * 50]


@pytest.mark.parametrize(
    "body",
    [
        {"title": "nul \x00 inside"},
        {"title": "x", "description": "nul\x00"},
        {"title": "x", "tags": ["a\x00b"]},
        {"title": "lone \ud800 surrogate"},
    ],
)
def test_nul_and_invalid_unicode_are_400_not_500(api, conn, body):
    error = assert_error(api.post(json=body), 400, "validation_error")
    assert set(error["details"]) <= {"title", "description", "tags"}
    assert count_tasks(conn, api.user_id) == 0


@pytest.mark.parametrize("field", ["id", "user_id", "completed_at", "created_at", "updated_at", "version", "colour"])
def test_read_only_and_unknown_fields_are_named(api, conn, field):
    error = assert_error(api.post(json={"title": "x", field: 1}), 400, "validation_error")
    assert field in error["details"]
    assert count_tasks(conn, api.user_id) == 0


@pytest.mark.parametrize("value", [None, 1], ids=["null", "number"])
@pytest.mark.parametrize("field", READ_ONLY_FIELDS)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_read_only_fields_are_400_whatever_their_value_null_included_and_write_nothing(api, conn, method, field, value):
    task = api.create(title="Keep")
    path = "" if method == "POST" else f"/{task['id']}"
    error = assert_error(api.request(method, path, json={"title": "Changed", field: value}), 400, "validation_error")
    assert error["details"] == {field: ["This field is read-only."]}
    row = task_row(conn, task["id"])
    assert (row["title"], row["version"]) == ("Keep", 1)
    assert count_tasks(conn, api.user_id) == 1


def test_all_offending_fields_are_named_at_once(api):
    error = assert_error(api.post(json={"title": "", "priority": "x", "id": 3}), 400, "validation_error")
    assert {"title", "priority", "id"} <= set(error["details"])


def test_bad_patch_changes_nothing(api, conn):
    task = api.create(title="Keep", priority="low")
    assert_error(api.patch(f"/{task['id']}", json={"title": "New", "priority": "bad"}), 400, "validation_error")
    row = task_row(conn, task["id"])
    assert (row["title"], row["priority"], row["version"]) == ("Keep", "low", 1)


@pytest.mark.parametrize(
    "data",
    [b"{not json", b"", b"[1, 2]", b'"a string"', b"null", b'{"title": NaN}', b"\xff\xfe", b"[" * 50000],
)
def test_body_that_is_not_a_json_object_is_400_bad_request(api, conn, data):
    response = api.post(data=data, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "bad_request")
    assert count_tasks(conn, api.user_id) == 0


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonx"])
def test_body_without_json_content_type_is_415(api, conn, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = api.post(data=b'{"title": "x"}', headers=headers)
    assert_error(response, 415, "unsupported_media_type")
    assert count_tasks(conn, api.user_id) == 0


def test_json_content_type_with_charset_is_accepted(api):
    response = api.post(data=b'{"title": "x"}', headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 201


def test_body_over_64_kib_is_413(api, conn):
    body = b'{"title": "x", "description": "' + b"d" * (64 * 1024) + b'"}'
    response = api.post(data=body, headers={"Content-Type": "application/json"})
    assert_error(response, 413, "payload_too_large")
    assert count_tasks(conn, api.user_id) == 0


CHUNKED = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
TERMINATED = {"wsgi.input_terminated": True}  # what gunicorn says of a chunked body (it ends the stream)


@pytest.mark.parametrize(
    ("method", "suffix", "fields"),
    [
        ("POST", "", '"title": "x"'),
        ("PUT", "/{id}", '"title": "x"'),
        ("PATCH", "/{id}", '"title": "x"'),
        ("PATCH", "/{id}/complete", '"completed": true'),
    ],
)
def test_chunked_body_over_64_kib_is_413_like_one_with_content_length(api, conn, method, suffix, fields):
    task = api.create()
    valid_in_its_first_64_kib = ("{" + fields + "}").encode().ljust(64 * 1024 + 1)
    path = suffix.format(id=task["id"])
    response = api.request(
        method, path, input_stream=io.BytesIO(valid_in_its_first_64_kib), headers=CHUNKED, environ_overrides=TERMINATED
    )
    assert_error(response, 413, "payload_too_large")
    assert task_row(conn, task["id"])["version"] == 1
    assert count_tasks(conn, api.user_id) == 1


def test_chunked_body_of_exactly_64_kib_is_accepted(api):
    body = b'{"title": "x"}'.ljust(64 * 1024)
    response = api.post(input_stream=io.BytesIO(body), headers=CHUNKED, environ_overrides=TERMINATED)
    assert response.status_code == 201


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_update_body_rules_hold_too(api, conn, method):
    task = api.create()
    assert_error(api.request(method, f"/{task['id']}", data=b"{}", headers={}), 415, "unsupported_media_type")
    too_big = b'{"title": "' + b"t" * (65 * 1024) + b'"}'
    assert_error(
        api.request(method, f"/{task['id']}", data=too_big, headers={"Content-Type": "application/json"}),
        413,
        "payload_too_large",
    )
    assert task_row(conn, task["id"])["version"] == 1


def test_delete_with_a_non_json_body_is_415_and_keeps_the_task(api, conn):
    task = api.create()
    assert_error(
        api.delete(f"/{task['id']}", data=b"please", headers={"Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    assert task_row(conn, task["id"]) is not None


def test_complete_with_a_non_json_body_is_415(api, conn):
    task = api.create()
    response = api.patch(
        f"/{task['id']}/complete", data=b"completed=true", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert_error(response, 415, "unsupported_media_type")
    assert task_row(conn, task["id"])["version"] == 1
