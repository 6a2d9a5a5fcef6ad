"""Webhooks, the API side (API.md §10): registration and its rules, the secret, the limit, PATCH,
DELETE, …/test and …/deliveries, and the outbox the tasks trigger fills in the write's own transaction."""

from __future__ import annotations

import base64
import logging
import re
import uuid

import pytest
from conftest import assert_error, make_settings, make_token

from todo_api import create_app
from todo_api.tasks.schemas import TaskSchema, dump_task

URL = "https://hooks.example.com/todo?token=s3cr3t-query"


class Hooks:
    """A test client for one user's /webhooks routes."""

    def __init__(self, api):
        self.api = api
        self.base = f"/api/{api.user_id}/webhooks"

    def request(self, method: str, path: str = "", **kwargs):
        headers = {"Authorization": f"Bearer {self.api.token}", **kwargs.pop("headers", {})}
        return self.api.client.open(self.base + path, method=method, headers=headers, **kwargs)

    def create(self, **fields):
        response = self.request("POST", json={"url": URL, "events": ["*"], **fields})
        assert response.status_code == 201, response.json
        return response.json["data"]


@pytest.fixture
def hooks(api, conn):
    """The user's webhooks, removed afterwards (with their deliveries): a delivery process started
    later in the session must find nothing to send to these made-up hosts."""
    yield Hooks(api)
    conn.execute("DELETE FROM webhooks WHERE user_id = %s", [api.user_id])


def deliveries(conn, user_id: str) -> list[dict]:
    return conn.execute(
        "SELECT * FROM webhook_deliveries WHERE user_id = %s ORDER BY created_at, event", [user_id]
    ).fetchall()


def test_create_answers_201_with_location_etag_and_a_whsec_secret_shown_once(hooks, conn):
    response = hooks.request("POST", json={"url": URL, "events": ["task.created", "task.created", "reminder.due"]})
    assert response.status_code == 201
    webhook = response.json["data"]
    assert response.headers["Location"] == f"{hooks.base}/{webhook['id']}"
    assert response.headers["ETag"] == '"1"'
    assert webhook["events"] == ["task.created", "reminder.due"]
    assert webhook["active"] is True and webhook["disabled_reason"] is None and webhook["version"] == 1
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", webhook["secret"])
    assert len(base64.b64decode(webhook["secret"][6:])) == 32
    read = hooks.request("GET", f"/{webhook['id']}")
    assert read.status_code == 200 and "secret" not in read.json["data"]
    listed = hooks.request("GET")
    assert [item["id"] for item in listed.json["data"]] == [webhook["id"]]
    assert "secret" not in listed.json["data"][0]
    stored = conn.execute("SELECT secret FROM webhooks WHERE id = %s", [webhook["id"]]).fetchone()
    assert stored["secret"] == webhook["secret"]


def test_idempotency_key_creates_one_webhook_and_a_retry_gets_the_first_answer(hooks, conn):
    headers = {"Idempotency-Key": "register-once"}
    body = {"url": URL, "events": ["task.created"]}
    first = hooks.request("POST", json=body, headers=headers)
    again = hooks.request("POST", json={"events": ["task.created"], "url": URL}, headers=headers)  # equal as JSON
    assert first.status_code == again.status_code == 201
    assert again.json["data"] == first.json["data"] and "secret" in again.json["data"]
    assert (again.headers["Location"], again.headers["ETag"]) == (first.headers["Location"], first.headers["ETag"])
    assert again.json["meta"]["request_id"] != first.json["meta"]["request_id"]
    conflict = hooks.request("POST", json={**body, "description": "other"}, headers=headers)
    assert_error(conflict, 409, "idempotency_conflict")
    assert hooks.api.post(json={"title": "A"}, headers=headers).status_code == 201  # another route: another request
    rows = conn.execute("SELECT id FROM webhooks WHERE user_id = %s", [hooks.api.user_id]).fetchall()
    assert [row["id"] for row in rows] == [first.json["data"]["id"]]


def test_a_webhook_refused_with_an_idempotency_key_is_not_remembered(hooks, conn):
    headers = {"Idempotency-Key": "fix-and-retry"}
    error = assert_error(
        hooks.request("POST", json={"url": "http://x/", "events": ["*"]}, headers=headers), 400, "validation_error"
    )
    assert list(error["details"]) == ["url"]
    assert hooks.request("POST", json={"url": URL, "events": ["*"]}, headers=headers).status_code == 201
    bad_key = hooks.request("POST", json={"url": URL, "events": ["*"]}, headers={"Idempotency-Key": "a b"})
    assert list(assert_error(bad_key, 400, "validation_error")["details"]) == ["Idempotency-Key"]
    assert (
        conn.execute("SELECT count(*) FROM webhooks WHERE user_id = %s", [hooks.api.user_id]).fetchone()["count"] == 1
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/",
        "ftp://hooks.example.com/",
        "/relative",
        "https://user:pw@hooks.example.com/",
        "https://hooks.example.com/#part",
        "https://hooks.example.com/" + "a" * 2030,
        "https://hooks.example.com/\x00",
        "https://hooks.example.com/a b",
        "https://127.0.0.1/",
        "https://2130706433/",
        "https://10.1.2.3/",
        "https://192.168.0.1/",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[fc00::1]/",
        "https://[fe80::1]/",
        "https://224.0.0.1/",
        "https://0.0.0.0/",
        "https://240.0.0.1/",
        "https://hooks.example.com:99999/",
        12,
    ],
)
def test_a_url_outside_the_rules_is_a_400_naming_url_and_registers_nothing(hooks, conn, url):
    error = assert_error(hooks.request("POST", json={"url": url, "events": ["*"]}), 400, "validation_error")
    assert list(error["details"]) == ["url"]
    assert (
        conn.execute("SELECT count(*) FROM webhooks WHERE user_id = %s", [hooks.api.user_id]).fetchone()["count"] == 0
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": URL}, "events"),
        ({"events": ["*"]}, "url"),
        ({"url": URL, "events": []}, "events"),
        ({"url": URL, "events": ["task.exploded"]}, "events"),
        ({"url": URL, "events": ["*", "task.created"]}, "events"),
        ({"url": URL, "events": ["webhook.test"]}, "events"),
        ({"url": URL, "events": ["*"], "description": "x" * 201}, "description"),
        ({"url": URL, "events": ["*"], "description": "a\x00b"}, "description"),
        ({"url": URL, "events": ["*"], "active": "yes"}, "active"),
        ({"url": URL, "events": ["*"], "secret": "whsec_mine"}, "secret"),
        ({"url": URL, "events": ["*"], "disabled_reason": None}, "disabled_reason"),
        ({"url": URL, "events": ["*"], "colour": "red"}, "colour"),
    ],
)
def test_bad_fields_are_a_400_naming_them(hooks, body, field):
    error = assert_error(hooks.request("POST", json=body), 400, "validation_error")
    assert field in error["details"]


def test_an_eleventh_webhook_is_a_409_limit_exceeded(hooks, conn):
    for _ in range(10):
        hooks.create()
    error = assert_error(hooks.request("POST", json={"url": URL, "events": ["*"]}), 409, "limit_exceeded")
    assert error["details"] == {"limit": 10}
    assert (
        conn.execute("SELECT count(*) FROM webhooks WHERE user_id = %s", [hooks.api.user_id]).fetchone()["count"] == 10
    )


def test_registrations_at_once_never_pass_the_limit(hooks, app, conn):
    import threading

    for _ in range(8):
        hooks.create()
    answers: list[int] = []

    def register() -> None:
        client = app.test_client()
        response = client.post(
            hooks.base, json={"url": URL, "events": ["*"]}, headers={"Authorization": f"Bearer {hooks.api.token}"}
        )
        answers.append(response.status_code)

    threads = [threading.Thread(target=register) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [201, 201, 409, 409, 409]
    assert (
        conn.execute("SELECT count(*) FROM webhooks WHERE user_id = %s", [hooks.api.user_id]).fetchone()["count"] == 10
    )


def test_http_and_private_addresses_are_allowed_only_where_configured(database_url, conn):
    settings = make_settings(database_url)
    settings = type(settings)(
        **{**settings.__dict__, "webhooks": type(settings.webhooks)(allow_http=True, allow_private=True)}
    )
    app = create_app(settings, configure_logs=False)
    try:
        user_id = f"user-{uuid.uuid4().hex[:12]}"
        response = app.test_client().post(
            f"/api/{user_id}/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "events": ["*"]},
            headers={"Authorization": f"Bearer {make_token(user_id)}"},
        )
        assert response.status_code == 201, response.json
    finally:
        app.extensions["todo_api.db"].close()
        conn.execute("DELETE FROM webhooks WHERE user_id = %s", [user_id])


def test_patch_changes_fields_bumps_the_version_and_honours_if_match(hooks):
    webhook = hooks.create(description="first")
    path = f"/{webhook['id']}"
    stale = hooks.request("PATCH", path, json={"description": "late"}, headers={"If-Match": '"9"'})
    assert_error(stale, 412, "precondition_failed")
    response = hooks.request(
        "PATCH", path, json={"events": ["task.deleted"], "active": False}, headers={"If-Match": '"1"'}
    )
    assert response.status_code == 200
    assert response.headers["ETag"] == '"2"'
    data = response.json["data"]
    assert (data["events"], data["active"], data["description"], data["version"]) == (
        ["task.deleted"],
        False,
        "first",
        2,
    )
    assert_error(hooks.request("PATCH", path, json={}), 400, "validation_error")
    assert_error(hooks.request("PATCH", path, json={"id": 3}), 400, "validation_error")
    assert hooks.request("GET", path, headers={"If-None-Match": '"2"'}).status_code == 304


def test_setting_active_true_clears_disabled_reason(hooks, conn):
    webhook = hooks.create()
    conn.execute(
        "UPDATE webhooks SET active = false, disabled_reason = 'gone' WHERE user_id = %s AND id = %s",
        [hooks.api.user_id, webhook["id"]],
    )
    assert hooks.request("GET", f"/{webhook['id']}").json["data"]["disabled_reason"] == "gone"
    data = hooks.request("PATCH", f"/{webhook['id']}", json={"active": True}).json["data"]
    assert (data["active"], data["disabled_reason"]) == (True, None)


def test_delete_answers_the_webhook_and_drops_its_deliveries(hooks, conn):
    webhook = hooks.create()
    hooks.api.create(title="queues one")
    assert len(deliveries(conn, hooks.api.user_id)) == 1
    response = hooks.request("DELETE", f"/{webhook['id']}")
    assert response.status_code == 200 and response.json["data"]["id"] == webhook["id"]
    assert deliveries(conn, hooks.api.user_id) == []
    assert_error(hooks.request("GET", f"/{webhook['id']}"), 404, "not_found")
    assert_error(hooks.request("DELETE", f"/{webhook['id']}"), 404, "not_found")


def test_another_users_webhook_is_404_and_unchanged(hooks, other_api):
    webhook = hooks.create()
    other = Hooks(other_api)
    for method, path in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/test"), ("GET", "/deliveries")):
        kwargs = {"json": {"active": False}} if method == "PATCH" else {}
        assert_error(other.request(method, f"/{webhook['id']}{path}", **kwargs), 404, "not_found")
    assert hooks.request("GET", f"/{webhook['id']}").json["data"]["active"] is True


def test_another_users_token_is_403(hooks, other_api):
    response = hooks.api.client.get(hooks.base, headers={"Authorization": f"Bearer {other_api.token}"})
    assert_error(response, 403, "forbidden")
    assert_error(hooks.api.client.get(hooks.base), 401, "unauthorized")


def test_post_test_answers_202_with_a_pending_delivery_of_the_webhook_as_get_returns_it(hooks, conn):
    webhook = hooks.create(events=["task.deleted"])
    response = hooks.request("POST", f"/{webhook['id']}/test")
    assert response.status_code == 202
    delivery = response.json["data"]
    assert (delivery["event"], delivery["status"], delivery["attempts"]) == ("webhook.test", "pending", 0)
    assert delivery["next_attempt_at"] is not None and delivery["last_status"] is None
    row = conn.execute("SELECT payload FROM webhook_deliveries WHERE id = %s", [delivery["id"]]).fetchone()
    assert row["payload"]["type"] == "webhook.test"
    assert row["payload"]["data"] == hooks.request("GET", f"/{webhook['id']}").json["data"]


def test_deliveries_are_listed_newest_first_and_every_one_once_across_pages(hooks, conn):
    webhook = hooks.create()
    for number in range(5):
        hooks.api.create(title=f"task {number}")
    seen, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = hooks.request("GET", f"/{webhook['id']}/deliveries", query_string=query)
        assert page.status_code == 200
        seen += page.json["data"]
        cursor = page.json["meta"]["next_cursor"]
        if cursor is None:
            break
    stored = conn.execute(
        "SELECT id FROM webhook_deliveries WHERE user_id = %s ORDER BY created_at DESC, id DESC", [hooks.api.user_id]
    ).fetchall()
    assert [item["id"] for item in seen] == [str(row["id"]) for row in stored]
    assert len(seen) == 5 and {item["event"] for item in seen} == {"task.created"}


def test_a_cursor_of_another_webhook_or_a_bad_limit_is_a_400(hooks):
    first, second = hooks.create(), hooks.create()
    for _ in range(3):
        hooks.api.create()
    cursor = hooks.request("GET", f"/{first['id']}/deliveries", query_string={"limit": 1}).json["meta"]["next_cursor"]
    other = hooks.request("GET", f"/{second['id']}/deliveries", query_string={"cursor": cursor})
    assert "cursor" in assert_error(other, 400, "validation_error")["details"]
    for query in ({"limit": 0}, {"limit": 101}, {"cursor": "nope"}, {"colour": "red"}):
        assert_error(hooks.request("GET", f"/{first['id']}/deliveries", query_string=query), 400, "validation_error")


# --- the outbox: events written by the tasks trigger, in the write's transaction ------------------


def test_each_task_write_queues_its_event_for_each_subscribed_active_webhook(hooks, conn):
    everything = hooks.create()
    completions = hooks.create(events=["task.completed", "task.uncompleted"])
    paused = hooks.create(active=False)
    api = hooks.api
    task = api.create(title="Buy milk")
    api.patch(f"/{task['id']}", json={"priority": "high"})
    api.patch(f"/{task['id']}/complete")
    api.patch(f"/{task['id']}", json={"completed": True})  # already completed: an update
    api.patch(f"/{task['id']}/complete", json={"completed": False})
    api.delete(f"/{task['id']}")
    rows = conn.execute(
        "SELECT webhook_id, event FROM webhook_deliveries WHERE user_id = %s ORDER BY created_at",
        [api.user_id],
    ).fetchall()
    by_hook = {
        hook["id"]: [row["event"] for row in rows if row["webhook_id"] == hook["id"]]
        for hook in (everything, completions, paused)
    }
    assert by_hook[everything["id"]] == [
        "task.created",
        "task.updated",
        "task.completed",
        "task.updated",
        "task.uncompleted",
        "task.deleted",
    ]
    assert by_hook[completions["id"]] == ["task.completed", "task.uncompleted"]
    assert by_hook[paused["id"]] == []


def test_the_payload_is_the_task_as_the_api_returns_it_with_the_commit_timestamp(hooks, conn):
    hooks.create(events=["task.updated", "task.deleted"])
    api = hooks.api
    task = api.create(
        title="Ünïcode ✓ 'quoted'",
        description=None,
        tags=["home", "Work"],
        due_at="2026-12-01T09:00:00.5+01:00",
        recurrence="FREQ=WEEKLY;BYDAY=TU",
        timezone="Europe/Berlin",
        remind_at="2026-12-01T08:30:00+01:00",
    )
    updated = api.patch(f"/{task['id']}", json={"description": "now with text"}).json["data"]
    deleted = api.delete(f"/{task['id']}").json["data"]
    rows = {row["event"]: row["payload"] for row in deliveries(conn, api.user_id)}
    assert rows["task.updated"] == {"type": "task.updated", "timestamp": updated["updated_at"], "data": updated}
    assert rows["task.deleted"]["data"] == deleted
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", rows["task.deleted"]["timestamp"])


def test_task_json_in_sql_equals_dump_task_and_the_schema_for_every_field(hooks, conn):
    api = hooks.api
    created = api.create(
        title="edge", completed=True, due_at="0001-01-01T00:00:00Z", remind_at="9999-12-31T23:59:59.000001Z"
    )
    row = conn.execute(
        "SELECT t.*, task_json(t) AS json FROM tasks t WHERE user_id = %s AND id = %s",
        [api.user_id, created["id"]],
    ).fetchone()
    assert row["json"] == dump_task(row) == TaskSchema().dump(row) == created
    assert list(row["json"]) == sorted(row["json"], key=lambda key: (len(key), key))  # jsonb: every key, no more
    assert set(row["json"]) == set(TaskSchema().fields)


def test_a_write_that_rolls_back_queues_nothing(hooks, conn, database_url):
    hooks.create()
    from conftest import connect

    with connect(database_url) as other:
        other.execute("INSERT INTO tasks (user_id, title) VALUES (%s, 'never')", [hooks.api.user_id])
        assert (
            other.execute("SELECT count(*) FROM webhook_deliveries WHERE user_id = %s", [hooks.api.user_id]).fetchone()[
                0
            ]
            == 1
        )
        other.rollback()
    assert deliveries(conn, hooks.api.user_id) == []


def test_a_user_without_webhooks_gets_no_deliveries(api, conn):
    task = api.create()
    api.delete(f"/{task['id']}")
    assert deliveries(conn, api.user_id) == []


def test_log_lines_carry_ids_but_never_the_url_query_or_the_secret(hooks, caplog):
    caplog.set_level(logging.INFO, logger="todo_api.webhooks")
    webhook = hooks.create()
    hooks.request("PATCH", f"/{webhook['id']}", json={"description": "private words"})
    hooks.request("DELETE", f"/{webhook['id']}")
    # the request lines (todo_api.request) are captured too once an earlier test set that logger to INFO
    records = [record for record in caplog.records if record.name == "todo_api.webhooks"]
    events = [record.__dict__.get("event") for record in records]
    assert events == ["webhook.created", "webhook.updated", "webhook.deleted"]
    for record in records:
        assert record.webhook_id == webhook["id"] and record.user_id == hooks.api.user_id
        text = repr(record.__dict__)
        assert "s3cr3t-query" not in text and webhook["secret"] not in text and "private words" not in text
