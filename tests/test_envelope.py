"""The envelope of API.md §2 on every kind of answer, X-Request-ID, and what gets logged."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

import orjson
import pytest
from conftest import SECRET, assert_error, make_settings, make_token

from todo_api import create_app
from todo_api.platform.logs import JsonFormatter, TextFormatter


def test_success_envelope_has_data_and_meta_and_no_error(api):
    body = api.post(json={"title": "x"}).json
    assert set(body) == {"data", "meta"}
    assert set(body["meta"]) == {"request_id"}


def test_unknown_route_outside_api_is_404_envelope(client):
    assert_error(client.get("/nowhere"), 404, "not_found")


def test_method_not_allowed_outside_api_keeps_allow(client):
    response = client.post("/healthz")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize("sent", ["abc-123", "x" * 128, "!~"])
def test_sane_request_id_is_echoed(client, sent):
    response = client.get("/healthz", headers={"X-Request-ID": sent})
    assert response.headers["X-Request-ID"] == sent
    assert response.json["meta"]["request_id"] == sent


@pytest.mark.parametrize("sent", ["", "x" * 129, "has space", "tab\there", "é"])
def test_insane_request_id_is_replaced(client, sent):
    response = client.get("/healthz", headers={"X-Request-ID": sent})
    generated = response.headers["X-Request-ID"]
    assert generated != sent and 1 <= len(generated) <= 128
    assert response.json["meta"]["request_id"] == generated


def test_request_ids_differ_between_requests(client):
    assert client.get("/healthz").headers["X-Request-ID"] != client.get("/healthz").headers["X-Request-ID"]


@pytest.fixture
def crashing_app(database_url):
    app = create_app(make_settings(database_url), configure_logs=False)

    @app.get("/api/<user_id>/boom")
    def boom(user_id):
        raise RuntimeError("secret internals: SELECT * FROM tasks")

    yield app
    app.extensions["todo_api.db"].close()


def test_crash_is_500_envelope_without_internals_and_logged_with_traceback(crashing_app, caplog):
    response = crashing_app.test_client().get(
        "/api/alice/boom", headers={"X-Request-ID": "crash-1", "Authorization": f"Bearer {make_token('alice')}"}
    )
    error = assert_error(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    assert "secret internals" not in text and "Traceback" not in text and "SELECT" not in text
    assert error["details"] == {}
    logged = [r for r in caplog.records if getattr(r, "event", None) == "error"]
    assert len(logged) == 1 and logged[0].exc_info is not None
    line = json.loads(JsonFormatter().format(logged[0]))
    assert line["request_id"] == "crash-1" and "RuntimeError: secret internals" in line["exception"]


def test_request_and_write_lines_are_logged_without_task_text_or_token(api, caplog):
    caplog.set_level(logging.INFO)
    response = api.post(json={"title": "top secret title", "description": "private words", "tags": ["hidden-tag"]})
    task_id = response.json["data"]["id"]
    lines = [json.loads(JsonFormatter().format(record)) for record in caplog.records]
    request_line = next(line for line in lines if line.get("event") == "request")
    assert request_line["method"] == "POST"
    assert request_line["route"] == "/api/<user_id>/tasks"
    assert request_line["status"] == 201
    assert isinstance(request_line["duration_ms"], float)
    assert request_line["user_id"] == api.user_id
    assert request_line["request_id"] == response.headers["X-Request-ID"]
    write_line = next(line for line in lines if line.get("event") == "task.created")
    assert write_line["task_id"] == task_id and write_line["user_id"] == api.user_id
    everything = json.dumps(lines)
    for secret in ("top secret title", "private words", "hidden-tag", api.token, SECRET):
        assert secret not in everything


@pytest.mark.parametrize(
    ("method", "suffix", "body", "event"),
    [
        ("PUT", "", {"title": "t"}, "task.updated"),
        ("PATCH", "", {"title": "t"}, "task.updated"),
        ("PATCH", "/complete", None, "task.completed"),
        ("DELETE", "", None, "task.deleted"),
    ],
)
def test_each_write_logs_its_event(api, caplog, method, suffix, body, event):
    task = api.create()
    caplog.set_level(logging.INFO)
    caplog.clear()
    assert api.request(method, f"/{task['id']}{suffix}", json=body).status_code == 200
    events = [(r.event, r.task_id) for r in caplog.records if getattr(r, "event", "").startswith("task.")]
    assert events == [(event, task["id"])]


def test_reopening_logs_task_reopened(api, caplog):
    task = api.create(completed=True)
    caplog.set_level(logging.INFO)
    caplog.clear()  # the create's own line, kept when an earlier test left the root logger at INFO
    api.patch(f"/{task['id']}/complete")
    assert [r.event for r in caplog.records if getattr(r, "event", "").startswith("task.")] == ["task.reopened"]


def test_unauthenticated_request_line_has_null_user(client, caplog):
    caplog.set_level(logging.INFO)
    client.get("/api/alice/tasks")
    line = next(r for r in caplog.records if getattr(r, "event", None) == "request")
    assert line.user_id is None and line.status == 401


def test_json_formatter_writes_the_contract_fields():
    record = logging.LogRecord("todo_api.x", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    record.event = "thing"
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "hello world" and line["level"] == "WARNING" and line["logger"] == "todo_api.x"
    assert line["ts"].endswith("Z") and line["event"] == "thing"


def test_text_formatter_is_one_readable_line():
    record = logging.LogRecord("todo_api.x", logging.INFO, __file__, 1, "request", (), None)
    record.status = 200
    text = TextFormatter().format(record)
    assert "\n" not in text and "request" in text and "status=200" in text


FORGED = "mallory\n12:00:00.000 INFO    todo_api.request request status=200 user_id=alice\x1b[2K\r\u2028"


@pytest.mark.parametrize("path_user", [FORGED, "alice"], ids=["own_tasks", "forbidden"])
def test_a_crafted_sub_stays_on_its_own_text_log_line_and_passes_for_no_other_field(client, caplog, path_user):
    caplog.set_level(logging.INFO)
    token = make_token(FORGED)
    response = client.get(f"/api/{quote(path_user)}/tasks", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == (200 if path_user == FORGED else 403)

    record = next(r for r in caplog.records if getattr(r, "event", None) == "request")
    line = TextFormatter().format(record)

    assert record.user_id == FORGED
    assert line.splitlines() == [line] and "\x1b" not in line and "\u2028" not in line
    assert ' user_id="mallory\\n12:00:00.000 INFO    todo_api.request request status=200 user_id=alice' in line
    assert line.endswith('\\x1b[2K\\r\\u2028"')
    assert f"status={response.status_code} " in line


def test_text_formatter_escapes_the_message_and_keeps_plain_values_bare():
    record = logging.LogRecord("todo_api.x", logging.INFO, __file__, 1, "got %s", ("two\nlines\\n",), None)
    record.route = "/api/<user_id>/tasks"
    record.empty = ""
    text = TextFormatter().format(record)
    assert text.endswith('got two\\nlines\\\\n route=/api/<user_id>/tasks empty=""')


# API.md §2: no redirect under /api/, and the §1 order (401, then 403, then 404) holds on these paths too.
ODD_PATHS = [
    "/api//{other}/tasks/2",
    "/api/{other}//tasks/2",
    "/api/{me}//tasks",
    "/api/{me}/tasks//2",
    "/api/{me}/tasks/",
    "/api/{me}/tasks/2/",
    "/api/{me}/tasks/2/complete/",
]


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
@pytest.mark.parametrize("template", ODD_PATHS)
def test_extra_slashes_under_api_get_the_envelope_never_a_redirect(api, client, template, method):
    path = template.format(me=api.user_id, other="someone-else")
    answers = [
        client.open(path, method=method),
        api.client.open(path, method=method, headers={"Authorization": f"Bearer {api.token}"}),
    ]
    assert_error(answers[0], 401, "unauthorized")
    if path.split("/")[2] == "someone-else":
        assert_error(answers[1], 403, "forbidden")
    else:
        assert_error(answers[1], 404, "not_found")
    assert all("Location" not in answer.headers for answer in answers)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_an_unknown_key_with_a_lone_surrogate_is_a_400_in_strict_json(api, conn, method):
    """Python's json reads "\\ud800" as a lone surrogate, which strict JSON cannot carry: the key named
    in details is written with the surrogate as the text \\ud800, never a 500 or a body a strict parser refuses."""
    task = api.create(title="Keep")
    path = "" if method == "POST" else f"/{task['id']}"
    body = b'{"title": "Changed", "\\ud800": 1, "caf\\u00e9\\udfff": 2}'
    response = api.request(method, path, data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    answer = orjson.loads(response.get_data())  # strict: refuses invalid UTF-8 and lone surrogates, escaped or not
    assert answer["error"]["code"] == "validation_error"
    assert answer["error"]["details"] == {"\\ud800": ["Unknown field."], "café\\udfff": ["Unknown field."]}
    row = conn.execute("SELECT title, version FROM tasks WHERE id = %s", [task["id"]]).fetchone()
    assert (row["title"], row["version"]) == ("Keep", 1)
