"""POST /mcp (API.md §7) through Flask's test client: the HTTP checks and their order, the JSON-RPC
protocol, each tool checked against the database, isolation between users, hostile input, logging,
and tool schemas generated from the marshmallow schemas."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import jsonschema
import orjson
import pytest
from conftest import assert_error, free_port, make_settings, make_token, task_row

from todo_api import create_app
from todo_api.platform.fields import ReadOnly
from todo_api.platform.logs import JsonFormatter
from todo_api.tasks.schemas import (
    READ_ONLY_FIELDS,
    ListQuerySchema,
    TaskCreateSchema,
    TaskPatchSchema,
    TaskSchema,
)

TOOL_NAMES = [
    "list_tasks", "get_task", "add_task", "update_task", "complete_task", "move_task", "delete_task",
    "list_lists", "add_list", "update_list", "delete_list",
]  # fmt: skip


class Mcp:
    """A test client speaking JSON-RPC to /mcp for one user."""

    def __init__(self, client, user_id: str):
        self.client = client
        self.user_id = user_id
        self.token = make_token(user_id)
        self.next_id = 0

    def post(self, body: Any, *, headers: dict[str, str] | None = None, content_type: str = "application/json"):
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        all_headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        return self.client.post("/mcp", data=data, headers=all_headers, content_type=content_type)

    def rpc(self, method: str, params: Any = None, **kwargs: Any):
        self.next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            message["params"] = params
        response = self.post(message, **kwargs)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.json["id"] == self.next_id
        return response.json

    def call(self, name: str, **arguments: Any) -> dict[str, Any]:
        """tools/call; the result, checked to carry the same JSON in content and structuredContent."""
        result = self.rpc("tools/call", {"name": name, "arguments": arguments})["result"]
        assert [item["type"] for item in result["content"]] == ["text"]
        assert json.loads(result["content"][0]["text"]) == result["structuredContent"]
        return result

    def ok(self, name: str, **arguments: Any) -> dict[str, Any]:
        result = self.call(name, **arguments)
        assert result["isError"] is False, result
        return result["structuredContent"]

    def error(self, name: str, code: str, **arguments: Any) -> dict[str, Any]:
        result = self.call(name, **arguments)
        assert result["isError"] is True, result
        error = result["structuredContent"]["error"]
        assert set(result["structuredContent"]) == {"error"}
        assert error["code"] == code, error
        assert set(error) == {"code", "message", "details"} and error["message"]
        return error


def new_user() -> str:
    return f"mcp-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def mcp(client) -> Mcp:
    return Mcp(client, new_user())


@pytest.fixture
def other_mcp(client) -> Mcp:
    return Mcp(client, new_user())


def count_tasks(conn, user_id: str) -> int:
    return conn.execute("SELECT count(*) AS n FROM tasks WHERE user_id = %s", [user_id]).fetchone()["n"]


def assert_jsonrpc_error(response, status: int, code: int, request_id: Any) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.json
    assert body["jsonrpc"] == "2.0" and body["id"] == request_id and "result" not in body
    assert body["error"]["code"] == code and body["error"]["message"]


# --- HTTP: order of checks, 401, 403, 405, 413, 415, 503 ----------------------------------------


@pytest.mark.parametrize(
    ("authorization", "challenge"),
    [
        (None, 'Bearer realm="api"'),
        ("Basic dXNlcjpwYXNz", 'Bearer realm="api"'),
        ("Bearer not-a-jwt", 'error="invalid_token"'),
        ("Bearer " + make_token("someone", secret="another-secret-that-is-long-enough-0123"), 'error="invalid_token"'),
    ],
)
@pytest.mark.parametrize("method", ["POST", "GET", "DELETE", "PUT"])
def test_without_a_valid_token_every_method_is_the_rest_401(client, authorization, challenge, method):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.open("/mcp", method=method, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert_error(response, 401, "unauthorized")
    assert challenge in response.headers["WWW-Authenticate"]


def test_an_expired_token_is_401_like_the_rest_api(client):
    token = make_token("someone", exp=1_000_000)
    response = client.post(
        "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert_error(response, 401, "unauthorized")
    assert "expired" in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"])
def test_other_methods_are_405_with_allow_post(mcp, method):
    response = mcp.client.open("/mcp", method=method, headers={"Authorization": f"Bearer {mcp.token}"})
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    if method != "HEAD":
        assert_error(response, 405, "method_not_allowed")


@pytest.fixture(scope="module")
def origin_app(database_url):
    app = create_app(make_settings(database_url, cors_allowed_origins=("https://app.example",)), configure_logs=False)
    app.testing = True
    yield app
    app.extensions["todo_api.db"].close()


@pytest.mark.parametrize("token", [True, False])
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_an_origin_not_allowed_is_403_before_the_token(client, origin_app, token, method):
    headers = {"Origin": "https://evil.example"}
    if token:
        headers["Authorization"] = f"Bearer {make_token('someone')}"
    for app_client in (client, origin_app.test_client()):  # no origins configured, or another one
        response = app_client.open(
            "/mcp", method=method, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}
        )
        assert_error(response, 403, "forbidden")


@pytest.mark.parametrize("origin", ["https://app.example", "HTTPS://APP.EXAMPLE"])
def test_an_allowed_origin_passes(origin_app, origin):
    headers = {"Origin": origin, "Authorization": f"Bearer {make_token('someone')}"}
    response = origin_app.test_client().post(
        "/mcp", headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}
    )
    assert response.status_code == 200 and response.json["result"] == {}


def test_a_body_over_64_kib_is_413(mcp, conn):
    title = "x" * (64 * 1024)
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "add_task", "arguments": {"title": title}},
    }
    assert_error(mcp.post(message), 413, "payload_too_large")
    assert count_tasks(conn, mcp.user_id) == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_a_body_that_is_not_json_typed_is_415(mcp, content_type):
    response = mcp.post('{"jsonrpc": "2.0", "id": 1, "method": "ping"}', content_type=content_type)
    assert_error(response, 415, "unsupported_media_type")


def test_a_database_outage_is_503_with_retry_after(database_url):
    dead = f"postgresql://todo@127.0.0.1:{free_port()}/todo"
    app = create_app(make_settings(dead, db_pool_timeout=0.5), configure_logs=False)
    try:
        client = Mcp(app.test_client(), "outage-user")
        response = client.post(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "get_task", "arguments": {"task_id": 1}},
            }
        )
        assert_error(response, 503, "service_unavailable")
        assert response.headers["Retry-After"].isdigit()
    finally:
        app.extensions["todo_api.db"].close()


# --- the protocol ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2025-03-26", "2025-06-18", "2025-11-25"])
def test_initialize_agrees_to_a_supported_version(mcp, version):
    result = mcp.rpc(
        "initialize", {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    )["result"]
    assert result["protocolVersion"] == version
    assert result["capabilities"] == {"tools": {"listChanged": False}}
    assert result["serverInfo"]["name"] == "todo-api"
    assert result["instructions"]


@pytest.mark.parametrize("version", ["2024-11-05", "2026-07-28", "1.0", "", None, 20250618, ["2025-06-18"], {"v": 1}])
def test_initialize_answers_the_newest_version_to_any_other(mcp, version):
    params = {"capabilities": {}} if version is None else {"protocolVersion": version}
    assert mcp.rpc("initialize", params)["result"]["protocolVersion"] == "2025-11-25"


def test_ping_answers_an_empty_result(mcp):
    assert mcp.rpc("ping")["result"] == {}


@pytest.mark.parametrize(
    "method", ["notifications/initialized", "notifications/cancelled", "notifications/whatever", "ping"]
)
def test_a_notification_is_202_with_no_body(mcp, method):
    response = mcp.post({"jsonrpc": "2.0", "method": method, "params": {}})
    assert response.status_code == 202
    assert response.get_data() == b""


@pytest.mark.parametrize("method", ["server/discover", "resources/list", "prompts/list", "tools/List", "x" * 1000])
def test_an_unknown_method_is_32601_with_the_request_id(mcp, method):
    response = mcp.post({"jsonrpc": "2.0", "id": "abc", "method": method})
    assert_jsonrpc_error(response, 200, -32601, "abc")


@pytest.mark.parametrize(
    "body",
    ["", "{", "nope", '{"jsonrpc": "2.0",}', "NaN", '{"a": Infinity}', b"\xff\xfe{}", "[" * 60_000, "1" * 5000],
    ids=["empty", "open", "word", "trailing-comma", "nan", "infinity", "not-utf8", "deep", "huge-int"],
)
def test_unparseable_json_is_32700_with_http_400_and_null_id(mcp, body):
    assert_jsonrpc_error(mcp.post(body), 400, -32700, None)


@pytest.mark.parametrize(
    "message",
    [
        [{"jsonrpc": "2.0", "id": 1, "method": "ping"}],
        [],
        5,
        "ping",
        None,
        {"id": 1, "method": "ping"},
        {"jsonrpc": "1.0", "id": 1, "method": "ping"},
        {"jsonrpc": 2.0, "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "2.0", "id": 1, "method": 5},
        {"jsonrpc": "2.0", "id": 1, "method": None},
        {"jsonrpc": "2.0", "id": None, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1.5, "method": "ping"},
        {"jsonrpc": "2.0", "id": True, "method": "ping"},
        {"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"},
        {"jsonrpc": "2.0", "id": [1], "method": "ping"},
        {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1]},
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": "list_tasks"},
        {"jsonrpc": "2.0", "id": 1, "result": {}},
    ],
    ids=lambda message: json.dumps(message)[:40],
)
def test_anything_but_one_request_is_32600_with_http_400_and_null_id(mcp, message):
    assert_jsonrpc_error(mcp.post(json.dumps(message)), 400, -32600, None)


@pytest.mark.parametrize("request_id", ["a", "", 0, -7, 2**70, "\u00e9\U0001f600"])
def test_the_answer_carries_the_request_id_as_sent(mcp, request_id):
    response = mcp.post({"jsonrpc": "2.0", "id": request_id, "method": "ping"})
    assert response.status_code == 200 and response.json["id"] == request_id


def test_an_id_that_is_not_unicode_text_is_32600_with_a_null_id_in_strict_json(mcp):
    """A lone surrogate cannot be echoed in strict JSON (RFC 8259 §8.2, RFC 7493): such an id is no
    JSON-RPC string, and the request is invalid (docs/mcp.md)."""
    response = mcp.post('{"jsonrpc": "2.0", "id": "a\\ud800", "method": "ping"}')
    assert response.status_code == 400
    answer = orjson.loads(response.get_data())  # strict: refuses lone surrogates, escaped or not
    assert answer["id"] is None and answer["error"]["code"] == -32600 and "result" not in answer


def test_an_id_with_an_escaped_surrogate_pair_is_echoed(mcp):
    response = mcp.post('{"jsonrpc": "2.0", "id": "\\ud83d\\ude00", "method": "ping"}')
    assert response.status_code == 200
    assert orjson.loads(response.get_data()) == {"jsonrpc": "2.0", "id": "\U0001f600", "result": {}}


def test_lone_surrogates_elsewhere_in_a_message_still_answer_strict_json(mcp, conn):
    unknown_method = mcp.post('{"jsonrpc": "2.0", "id": 1, "method": "x\\udfff"}')
    assert orjson.loads(unknown_method.get_data())["error"]["code"] == -32601
    call = '{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": %s}'
    unknown_tool = mcp.post(call % '{"name": "\\ud800", "arguments": {}}')
    assert orjson.loads(unknown_tool.get_data())["error"]["code"] == -32602
    bad_argument = mcp.post(call % '{"name": "add_task", "arguments": {"title": "x", "\\ud800": 1}}')
    result = orjson.loads(bad_argument.get_data())["result"]
    assert result["isError"] is True
    assert result["structuredContent"]["error"]["details"] == {"\\ud800": ["Unknown field."]}
    assert orjson.loads(result["content"][0]["text"]) == result["structuredContent"]
    assert count_tasks(conn, mcp.user_id) == 0


@pytest.mark.parametrize(
    "params",
    [
        {"name": "no_such_tool", "arguments": {}},
        {"name": "LIST_TASKS"},
        {"arguments": {}},
        {"name": None},
        {"name": ["list_tasks"]},
        {"name": {"a": 1}},
        {"name": "list_tasks", "arguments": []},
        {"name": "list_tasks", "arguments": "status=pending"},
        {"name": "list_tasks", "arguments": None},
        {"name": "get_task", "arguments": 5},
    ],
    ids=lambda params: json.dumps(params)[:40],
)
def test_an_unknown_tool_or_arguments_that_are_not_an_object_are_32602(mcp, params):
    response = mcp.post({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params})
    assert_jsonrpc_error(response, 200, -32602, 9)


# --- tools/list: schemas from schemas.py, annotations, descriptions ------------------------------


@pytest.fixture
def tools(mcp) -> dict[str, dict[str, Any]]:
    return {tool["name"]: tool for tool in mcp.rpc("tools/list")["result"]["tools"]}


def writable(schema_class) -> set[str]:
    return {name for name, field in schema_class().fields.items() if not isinstance(field, ReadOnly)}


def test_tools_list_has_the_six_tools_with_descriptions(tools):
    assert list(tools) == TOOL_NAMES
    for tool in tools.values():
        assert len(tool["description"]) > 40 and tool["title"]
        jsonschema.Draft202012Validator.check_schema(tool["inputSchema"])
        jsonschema.Draft202012Validator.check_schema(tool["outputSchema"])
        assert tool["inputSchema"]["type"] == tool["outputSchema"]["type"] == "object"
        assert tool["inputSchema"]["additionalProperties"] is False
        assert "user_id" not in tool["inputSchema"]["properties"]


def test_add_task_schemas_have_every_field_of_the_marshmallow_schemas(tools):
    add = tools["add_task"]
    assert set(add["inputSchema"]["properties"]) == writable(TaskCreateSchema)
    assert add["inputSchema"]["required"] == ["title"]
    for name in ("get_task", "add_task", "update_task", "complete_task", "delete_task"):
        assert set(TaskSchema().fields) <= set(tools[name]["outputSchema"]["properties"]), name
    assert set(tools["list_tasks"]["outputSchema"]["properties"]["tasks"]["items"]["properties"]) == set(
        TaskSchema().fields
    )


def test_other_tools_take_the_rest_apis_parameters_plus_their_own(tools):
    assert set(tools["update_task"]["inputSchema"]["properties"]) == writable(TaskPatchSchema) | {"task_id", "if_match"}
    assert set(tools["list_tasks"]["inputSchema"]["properties"]) == set(ListQuerySchema().fields) - {"total"}
    assert set(tools["get_task"]["inputSchema"]["properties"]) == {"task_id"}
    assert set(tools["complete_task"]["inputSchema"]["properties"]) == {"task_id", "completed", "if_match"}
    assert set(tools["delete_task"]["inputSchema"]["properties"]) == {"task_id", "if_match"}
    for name in ("get_task", "update_task", "complete_task", "delete_task"):
        assert tools[name]["inputSchema"]["required"] == ["task_id"]
        assert tools[name]["inputSchema"]["properties"]["task_id"]["type"] == "integer"
    listing = tools["list_tasks"]["inputSchema"]["properties"]
    assert listing["priority"]["type"] == listing["tag"]["type"] == "array"
    assert listing["limit"]["type"] == "integer"


def test_annotations_follow_the_contract(tools):
    hints = {name: tool["annotations"] for name, tool in tools.items()}
    assert {name for name, hint in hints.items() if hint.get("readOnlyHint")} == {
        "list_tasks",
        "get_task",
        "list_lists",
    }
    assert {name for name, hint in hints.items() if hint.get("destructiveHint")} == {"delete_task", "delete_list"}
    for name in ("add_task", "update_task", "complete_task", "move_task", "add_list", "update_list"):
        assert hints[name]["destructiveHint"] is False
    idempotent = {name for name, hint in hints.items() if hint.get("idempotentHint")}
    assert idempotent == {
        "get_task",
        "list_tasks",
        "update_task",
        "delete_task",
        "list_lists",
        "update_list",
        "delete_list",
    }


# --- each tool, checked against the database ----------------------------------------------------


def test_add_task_creates_the_task_and_returns_it(mcp, conn, tools):
    task = mcp.ok(
        "add_task",
        title="  Buy milk ",
        tags=["home", "HOME", "errands"],
        priority="high",
        due_at="2026-12-01T09:00:00+01:00",
    )
    jsonschema.validate(task, tools["add_task"]["outputSchema"])
    row = task_row(conn, task["id"])
    assert row["user_id"] == mcp.user_id and row["title"] == "Buy milk" and row["priority"] == "high"
    assert row["tags"] == ["home", "errands"] and task["due_at"] == "2026-12-01T08:00:00Z" and task["version"] == 1


def test_get_task_returns_the_stored_task(mcp, tools):
    created = mcp.ok("add_task", title="Read me")
    got = mcp.ok("get_task", task_id=created["id"])
    jsonschema.validate(got, tools["get_task"]["outputSchema"])
    assert got == created


def test_list_tasks_filters_and_pages_with_next_cursor(mcp, tools):
    for index in range(5):
        mcp.ok(
            "add_task",
            title=f"Task {index}",
            priority="high" if index % 2 else "low",
            tags=["odd"] if index % 2 else [],
        )
    page = mcp.ok("list_tasks", priority=["high", "medium"], tag=["ODD"], sort="title")
    jsonschema.validate(page, tools["list_tasks"]["outputSchema"])
    assert [task["title"] for task in page["tasks"]] == ["Task 1", "Task 3"] and page["next_cursor"] is None
    seen, cursor = [], None
    while True:
        arguments = {"limit": 2, "sort": "title", **({"cursor": cursor} if cursor else {})}
        page = mcp.ok("list_tasks", **arguments)
        seen += [task["title"] for task in page["tasks"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"Task {index}" for index in range(5)]


def test_list_tasks_agrees_with_the_rest_listing(mcp, client):
    for index in range(3):
        mcp.ok("add_task", title=f"Same {index}", completed=index == 1)
    rest = client.get(
        f"/api/{mcp.user_id}/tasks?status=pending&sort=-title", headers={"Authorization": f"Bearer {mcp.token}"}
    )
    assert mcp.ok("list_tasks", status="pending", sort="-title")["tasks"] == rest.json["data"]


def test_update_task_changes_only_the_fields_given(mcp, conn, tools):
    task = mcp.ok("add_task", title="Before", description="kept", tags=["a"])
    updated = mcp.ok("update_task", task_id=task["id"], title="After", due_at=None, if_match=1)
    jsonschema.validate(updated, tools["update_task"]["outputSchema"])
    row = task_row(conn, task["id"])
    assert (row["title"], row["description"], row["tags"], row["version"]) == ("After", "kept", ["a"], 2)
    assert updated["version"] == 2 and updated["title"] == "After"


@pytest.mark.parametrize("name", ["update_task", "complete_task", "delete_task"])
def test_a_stale_if_match_is_precondition_failed_and_changes_nothing(mcp, conn, name):
    task = mcp.ok("add_task", title="Guarded")
    mcp.ok("update_task", task_id=task["id"], title="Moved on")
    arguments = {"task_id": task["id"], "if_match": 1, **({"title": "Lost"} if name == "update_task" else {})}
    mcp.error(name, "precondition_failed", **arguments)
    row = task_row(conn, task["id"])
    assert row is not None and (row["title"], row["version"], row["completed"]) == ("Moved on", 2, False)


@pytest.mark.parametrize("if_match", [2**31, 2**63, 2**70])
def test_an_if_match_past_any_version_is_precondition_failed(mcp, conn, if_match):
    task = mcp.ok("add_task", title="Guarded")
    mcp.error("delete_task", "precondition_failed", task_id=task["id"], if_match=if_match)
    assert task_row(conn, task["id"]) is not None


def test_complete_task_sets_toggles_and_has_no_next_occurrence_for_a_plain_task(mcp, conn, tools):
    task = mcp.ok("add_task", title="Do it")
    done = mcp.ok("complete_task", task_id=task["id"], completed=True, if_match=1)
    jsonschema.validate(done, tools["complete_task"]["outputSchema"])
    assert done["completed"] is True and done["completed_at"] and "next_occurrence" not in done
    again = mcp.ok("complete_task", task_id=task["id"], completed=True)
    assert again["completed_at"] == done["completed_at"] and again["version"] == 3
    reopened = mcp.ok("complete_task", task_id=task["id"])
    assert reopened["completed"] is False and reopened["completed_at"] is None
    row = task_row(conn, task["id"])
    assert (row["completed"], row["completed_at"], row["version"]) == (False, None, 4)


def test_delete_task_removes_the_task_and_returns_it(mcp, conn, tools):
    task = mcp.ok("add_task", title="Gone soon")
    deleted = mcp.ok("delete_task", task_id=task["id"], if_match=1)
    jsonschema.validate(deleted, tools["delete_task"]["outputSchema"])
    assert deleted == task and task_row(conn, task["id"]) is None
    mcp.error("delete_task", "not_found", task_id=task["id"])


def test_a_write_is_logged_once_as_in_rest(mcp, caplog):
    caplog.set_level(logging.INFO)
    task = mcp.ok("add_task", title="Logged")
    mcp.ok("complete_task", task_id=task["id"])
    events = [(r.event, r.task_id, r.user_id) for r in caplog.records if getattr(r, "event", "").startswith("task.")]
    assert events == [("task.created", task["id"], mcp.user_id), ("task.completed", task["id"], mcp.user_id)]


# --- validation and hostile arguments: a tool error, never a 500, nothing written --------------

TASK_ID_REFUSED = ["1", 0, -1, 1.5, 1.0, True, None, "abc", [1], {"id": 1}, "\x00"]
OWN = "<the user's own task>"  # replaced by the id of a task the user has
BAD_ARGUMENTS = [
    ("get_task", {}, "task_id"),
    *[("get_task", {"task_id": value}, "task_id") for value in TASK_ID_REFUSED],
    ("get_task", {"task_id": OWN, "user_id": "someone-else"}, "user_id"),
    ("delete_task", {"task_id": OWN, "if_match": 0}, "if_match"),
    ("delete_task", {"task_id": OWN, "if_match": "1"}, "if_match"),
    ("delete_task", {"task_id": OWN, "if_match": True}, "if_match"),
    ("add_task", {}, "title"),
    ("add_task", {"title": "a\x00b"}, "title"),
    ("add_task", {"title": 1}, "title"),
    ("add_task", {"title": "   "}, "title"),
    ("add_task", {"title": "ok", "user_id": "someone-else"}, "user_id"),
    ("add_task", {"title": "ok", "id": 5}, "id"),
    ("add_task", {"title": "ok", "bogus": 1}, "bogus"),
    ("add_task", {"title": "ok", "due_at": "2026-12-01T09:00:00"}, "due_at"),
    ("add_task", {"title": "ok", "tags": "home"}, "tags"),
    ("add_task", {"title": "ok", "completed": "yes"}, "completed"),
    ("add_task", {"title": "ok", "description": "\x00"}, "description"),
    ("update_task", {"task_id": OWN}, "body"),
    ("update_task", {"task_id": OWN, "if_match": 3}, "body"),
    ("update_task", {"task_id": OWN, "title": None}, "title"),
    ("update_task", {"task_id": OWN, "version": 9}, "version"),
    ("complete_task", {"task_id": OWN, "completed": "yes"}, "completed"),
    ("complete_task", {"task_id": OWN, "completed": None}, "completed"),
    ("complete_task", {"task_id": OWN, "title": "x"}, "title"),
    ("list_tasks", {"limit": 0}, "limit"),
    ("list_tasks", {"limit": 101}, "limit"),
    ("list_tasks", {"limit": "5"}, "limit"),
    ("list_tasks", {"limit": True}, "limit"),
    ("list_tasks", {"limit": 5.5}, "limit"),
    ("list_tasks", {"priority": "high"}, "priority"),
    ("list_tasks", {"priority": ["urgent"]}, "priority"),
    ("list_tasks", {"tag": "home"}, "tag"),
    ("list_tasks", {"sort": "colour"}, "sort"),
    ("list_tasks", {"status": "done"}, "status"),
    ("list_tasks", {"cursor": "made.up"}, "cursor"),
    ("list_tasks", {"q": "\x00"}, "q"),
    ("list_tasks", {"due_before": "tomorrow"}, "due_before"),
    ("list_tasks", {"total": True}, "total"),
    ("list_tasks", {"user_id": "someone-else"}, "user_id"),
]


@pytest.mark.parametrize(("name", "arguments", "field"), BAD_ARGUMENTS, ids=lambda x: json.dumps(x)[:30])
def test_bad_arguments_are_a_validation_error_naming_them(mcp, conn, name, arguments, field):
    own = mcp.ok("add_task", title="Mine")
    arguments = {**arguments, "task_id": own["id"]} if arguments.get("task_id") == OWN else arguments
    error = mcp.error(name, "validation_error", **arguments)
    assert field in error["details"], error
    assert all(isinstance(message, str) for messages in error["details"].values() for message in messages)
    row = task_row(conn, own["id"])
    assert (row["title"], row["version"]) == ("Mine", 1) and count_tasks(conn, mcp.user_id) == 1


@pytest.mark.parametrize("value", [None, 1], ids=["null", "number"])
@pytest.mark.parametrize("field", READ_ONLY_FIELDS)
@pytest.mark.parametrize("name", ["add_task", "update_task"])
def test_read_only_fields_are_refused_whatever_their_value_null_included(mcp, conn, name, field, value):
    own = mcp.ok("add_task", title="Mine")
    arguments = {"title": "Changed", field: value, **({"task_id": own["id"]} if name == "update_task" else {})}
    error = mcp.error(name, "validation_error", **arguments)
    assert error["details"] == {field: ["This field is read-only."]}
    row = task_row(conn, own["id"])
    assert (row["title"], row["version"]) == ("Mine", 1) and count_tasks(conn, mcp.user_id) == 1


def test_every_problem_is_named_at_once(mcp):
    error = mcp.error("update_task", "validation_error", task_id="x", title="", priority="urgent", user_id="y")
    assert set(error["details"]) == {"task_id", "title", "priority", "user_id"}


@pytest.mark.parametrize("task_id", [2**31, 2**63 - 1, 2**63, 2**70, 10**400])
@pytest.mark.parametrize("name", ["get_task", "update_task", "complete_task", "delete_task"])
def test_a_positive_task_id_naming_no_task_is_not_found_however_large(mcp, name, task_id):
    arguments = {"task_id": task_id, **({"title": "x"} if name == "update_task" else {})}
    mcp.error(name, "not_found", **arguments)


def test_a_huge_request_never_yields_a_500(mcp, conn):
    many = {f"field{index}": index for index in range(3000)}
    error = mcp.error("add_task", "validation_error", title="x", **many)
    assert len(error["details"]) == 3000
    nested: Any = "x"
    for _ in range(500):
        nested = [nested]
    mcp.error("add_task", "validation_error", title="x", tags=nested)
    assert count_tasks(conn, mcp.user_id) == 0


# --- isolation ---------------------------------------------------------------------------------


def _task_calls(task_id: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("get_task", {"task_id": task_id}),
        ("update_task", {"task_id": task_id, "title": "Hijacked"}),
        ("update_task", {"task_id": task_id, "title": "Hijacked", "if_match": 1}),
        ("complete_task", {"task_id": task_id}),
        ("complete_task", {"task_id": task_id, "completed": True, "if_match": 1}),
        ("delete_task", {"task_id": task_id}),
        ("delete_task", {"task_id": task_id, "if_match": 1}),
    ]


@pytest.mark.parametrize("intruder", ["another user", "a user with no tasks at all"])
def test_no_tool_reads_or_writes_another_users_task(client, mcp, conn, intruder):
    secret_title, secret_tag = f"Secret {uuid.uuid4().hex}", f"tag-{uuid.uuid4().hex[:8]}"
    victim = mcp.ok("add_task", title=secret_title, description="private notes", tags=[secret_tag])
    other = Mcp(client, new_user() if intruder == "another user" else f"nobody-{uuid.uuid4().hex}")
    if intruder == "another user":
        other.ok("add_task", title="Their own")
    answers = []
    for name, arguments in _task_calls(victim["id"]):
        other.error(name, "not_found", **arguments)
        answers.append(
            other.post(
                {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
            )
        )
    for arguments in ({}, {"q": "Secret"}, {"tag": [secret_tag]}, {"status": "pending", "sort": "title", "limit": 100}):
        listed = other.ok("list_tasks", **arguments)
        assert victim["id"] not in [task["id"] for task in listed["tasks"]]
        answers.append(
            other.post(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "tools/call",
                    "params": {"name": "list_tasks", "arguments": arguments},
                }
            )
        )
    for answer in answers:
        text = answer.get_data(as_text=True)
        assert secret_title not in text and "private notes" not in text and secret_tag not in text
        assert mcp.user_id not in text
    row = task_row(conn, victim["id"])
    assert (row["user_id"], row["title"], row["completed"], row["version"]) == (mcp.user_id, secret_title, False, 1)


def test_another_users_cursor_is_a_validation_error_naming_cursor(mcp, other_mcp):
    for index in range(3):
        mcp.ok("add_task", title=f"Paged {index}")
    other_mcp.ok("add_task", title="Mine")
    cursor = mcp.ok("list_tasks", limit=1, sort="created_at")["next_cursor"]
    assert cursor
    error = other_mcp.error("list_tasks", "validation_error", limit=1, sort="created_at", cursor=cursor)
    assert set(error["details"]) == {"cursor"}


def test_add_task_always_creates_for_the_tokens_user(mcp, other_mcp, conn):
    task = other_mcp.ok("add_task", title="For me")
    assert task["user_id"] == other_mcp.user_id and task_row(conn, task["id"])["user_id"] == other_mcp.user_id
    assert count_tasks(conn, mcp.user_id) == 0


# --- logging -------------------------------------------------------------------------------------


def test_each_call_logs_one_request_line_naming_the_tool_and_no_text(mcp, caplog):
    caplog.set_level(logging.INFO)
    title = f"Confidential {uuid.uuid4().hex}"
    task = mcp.ok("add_task", title=title, tags=["private-tag"])
    caplog.clear()
    mcp.ok("get_task", task_id=task["id"])
    mcp.rpc("tools/list")
    mcp.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
    mcp.post({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": title, "arguments": {}}})
    mcp.post({"jsonrpc": "2.0", "id": 1, "method": title})
    mcp.post("{")
    mcp.error("update_task", "validation_error", task_id=task["id"], title=title + "\x00")
    lines = [json.loads(JsonFormatter().format(record)) for record in caplog.records]
    requests = [line for line in lines if line.get("event") == "request"]
    assert [(line["route"], line["tool"]) for line in requests] == [
        ("/mcp", "get_task"),
        ("/mcp", "tools/list"),
        ("/mcp", "notifications/initialized"),
        ("/mcp", "tools/call"),
        ("/mcp", None),
        ("/mcp", None),
        ("/mcp", "update_task"),
    ]
    assert all(line["user_id"] == mcp.user_id and line["method"] == "POST" for line in requests)
    logged = "\n".join(json.dumps(line) for line in lines)
    assert title not in logged and "private-tag" not in logged and mcp.token not in logged


def test_rest_request_lines_have_no_tool_field(mcp, caplog):
    caplog.set_level(logging.INFO)
    mcp.client.get(f"/api/{mcp.user_id}/tasks", headers={"Authorization": f"Bearer {mcp.token}"})
    line = next(record for record in caplog.records if getattr(record, "event", None) == "request")
    assert not hasattr(line, "tool")


def test_complete_task_of_a_recurring_task_returns_its_next_occurrence(mcp, tools):
    task = mcp.ok(
        "add_task",
        title="Stand-up",
        due_at="2027-03-26T09:30:00+01:00",
        recurrence="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
        timezone="Europe/Berlin",
    )
    done = mcp.ok("complete_task", task_id=task["id"])
    jsonschema.validate(done, tools["complete_task"]["outputSchema"])
    following = done["next_occurrence"]
    assert done["next_id"] == following["id"] and following["due_at"] == "2027-03-29T07:30:00Z"
    assert "next_occurrence" not in mcp.ok("complete_task", task_id=task["id"], completed=True)


@pytest.mark.parametrize("rule", ["FREQ=YEARLY;BYMONTH=2;BYDAY=53MO", "FREQ=YEARLY;BYMONTH=2;BYDAY=1MO,51MO"])
def test_a_rule_the_library_failed_on_is_a_validation_error_in_every_tool(mcp, conn, rule):
    due = "2033-01-10T09:00:00Z"  # 2033 starts on a Saturday: dateutil raised an IndexError on both rules
    error = mcp.error("add_task", "validation_error", title="t", due_at=due, recurrence=rule)
    assert error["details"] == {
        "recurrence": ["With BYMONTH, a BYDAY ordinal counts within the month: 1 to 5 or -5 to -1."]
    }
    task = mcp.ok("add_task", title="t", due_at=due)
    mcp.error("update_task", "validation_error", task_id=task["id"], recurrence=rule)
    assert count_tasks(conn, mcp.user_id) == 1 and task_row(conn, task["id"])["version"] == 1


def test_a_rule_stored_before_ordinals_were_capped_completes_and_moves_through_the_tools(mcp, conn):
    rule = "FREQ=YEARLY;BYMONTH=2;BYDAY=1MO,51MO"  # as an earlier version accepted it
    task_id = conn.execute(
        "INSERT INTO tasks (user_id, title, due_at, recurrence) VALUES (%s, 'stored', %s, %s) RETURNING id",
        [mcp.user_id, "2033-02-07T09:00:00Z", rule],
    ).fetchone()["id"]
    moved = mcp.ok("update_task", task_id=task_id, due_at="2034-02-06T09:00:00Z")
    assert (moved["due_at"], moved["recurrence"]) == ("2034-02-06T09:00:00Z", rule)
    done = mcp.ok("complete_task", task_id=task_id)
    assert done["next_occurrence"]["due_at"] == "2035-02-05T09:00:00Z"


# --- lists, subtasks and order (API.md §7, §8, §9) ---------------------------------------------------


def named(mcp, tool: str, **arguments: Any) -> dict[str, Any]:
    """A tool call with a `name` argument (which Mcp.ok's own first parameter would take)."""
    result = mcp.rpc("tools/call", {"name": tool, "arguments": arguments})["result"]
    assert result["isError"] is False, result
    return result["structuredContent"]


def test_list_tools_and_move_task_act_as_the_rest_api(mcp, conn):
    groceries = named(mcp, "add_list", name="Groceries")
    assert mcp.ok("list_lists") == {"lists": [groceries]}
    renamed = named(mcp, "update_list", list_id=groceries["id"], name="Food", if_match=1)
    assert renamed["name"] == "Food" and renamed["version"] == 2
    parent = mcp.ok("add_task", title="Milk", list_id=groceries["id"])
    child = mcp.ok("add_task", title="Oat", parent_id=parent["id"])
    loose = mcp.ok("add_task", title="Loose")
    assert child["list_id"] == groceries["id"]
    listed = mcp.ok("list_tasks", list_id="none", parent_id="none", sort="position")
    assert [task["id"] for task in listed["tasks"]] == [loose["id"]]
    listed = mcp.ok("list_tasks", parent_id=parent["id"], sort="-position")
    assert [task["id"] for task in listed["tasks"]] == [child["id"]]
    moved = mcp.ok("move_task", task_id=loose["id"], parent_id=parent["id"], after=None)
    assert moved["parent_id"] == parent["id"] and moved["list_id"] == groceries["id"] and moved["version"] == 2
    assert list(mcp.error("move_task", "validation_error", task_id=parent["id"], parent_id=child["id"])["details"]) == [
        "parent_id"
    ]
    mcp.error("delete_list", "precondition_failed", list_id=groceries["id"], if_match=1)
    deleted = mcp.ok("delete_list", list_id=groceries["id"])
    assert deleted["deleted_tasks"] == 3 and deleted["id"] == groceries["id"]
    assert task_row(conn, loose["id"]) is None
    mcp.error("delete_list", "not_found", list_id=groceries["id"])
    assert list(mcp.error("list_tasks", "validation_error", list_id=groceries["id"])["details"]) == ["list_id"]
