"""POST /mcp driven by the official MCP Python SDK (its Streamable HTTP client and ClientSession)
against a real gunicorn on 127.0.0.1, checked against the database and the server's log."""

from __future__ import annotations

import json
import uuid
from typing import Any

import anyio
import httpx2
import pytest
import requests
from conftest import SECRET, make_token, task_row
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

TOOLS = [
    "list_tasks", "get_task", "add_task", "update_task", "complete_task", "move_task", "delete_task",
    "list_lists", "add_list", "update_list", "delete_list",
]  # fmt: skip


@pytest.fixture
def server(start_gunicorn, database_url):
    return start_gunicorn({"DATABASE_URL": database_url, "BETTER_AUTH_SECRET": SECRET, "LOG_FORMAT": "json"}, workers=1)


async def session_run(url: str, token: str) -> dict[str, Any]:
    """Connect as an agent would, call every tool once, and return what came back."""
    seen: dict[str, Any] = {}
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        seen["initialize"] = await session.initialize()
        seen["tools"] = (await session.list_tools()).tools
        await session.send_ping()
        added = await session.call_tool("add_task", {"title": "Water the plants", "tags": ["home"], "priority": "high"})
        task_id = added.structured_content["id"]
        seen["add_task"] = added
        seen["get_task"] = await session.call_tool("get_task", {"task_id": task_id})
        seen["list_tasks"] = await session.call_tool("list_tasks", {"tag": ["HOME"], "priority": ["high"]})
        seen["update_task"] = await session.call_tool(
            "update_task", {"task_id": task_id, "title": "Water them", "if_match": 1}
        )
        seen["complete_task"] = await session.call_tool("complete_task", {"task_id": task_id, "completed": True})
        seen["add_list"] = await session.call_tool("add_list", {"name": "Garden"})
        list_id = seen["add_list"].structured_content["id"]
        seen["update_list"] = await session.call_tool("update_list", {"list_id": list_id, "name": "Plants"})
        seen["list_lists"] = await session.call_tool("list_lists", {})
        seen["move_task"] = await session.call_tool("move_task", {"task_id": task_id, "list_id": list_id})
        seen["stale"] = await session.call_tool("delete_task", {"task_id": task_id, "if_match": 1})
        seen["kept"] = await session.call_tool("get_task", {"task_id": task_id})
        seen["delete_task"] = await session.call_tool("delete_task", {"task_id": task_id, "if_match": 4})
        seen["missing"] = await session.call_tool("get_task", {"task_id": task_id})
        seen["delete_list"] = await session.call_tool("delete_list", {"list_id": list_id})
        seen["task_id"] = task_id
    return seen


@pytest.mark.process
def test_the_sdk_client_initializes_lists_and_calls_every_tool(server, conn):
    user_id = f"agent-{uuid.uuid4().hex[:12]}"
    token = make_token(user_id)
    seen = anyio.run(session_run, f"{server.url}/mcp", token)

    assert seen["initialize"].protocol_version == "2025-11-25"
    assert seen["initialize"].server_info.name == "todo-api"
    assert [tool.name for tool in seen["tools"]] == TOOLS
    by_name = {tool.name: tool for tool in seen["tools"]}
    assert by_name["delete_task"].annotations.destructive_hint is True
    assert by_name["get_task"].annotations.read_only_hint is True

    for name in TOOLS:  # the SDK has checked each success against the tool's outputSchema
        assert seen[name].is_error is False, (name, seen[name])
        assert json.loads(seen[name].content[0].text) == seen[name].structured_content
    task_id = seen["task_id"]
    assert seen["add_task"].structured_content["user_id"] == user_id
    assert seen["get_task"].structured_content == seen["add_task"].structured_content
    assert [task["id"] for task in seen["list_tasks"].structured_content["tasks"]] == [task_id]
    assert seen["update_task"].structured_content["title"] == "Water them"
    assert seen["complete_task"].structured_content["completed"] is True
    assert seen["stale"].is_error is True
    assert seen["stale"].structured_content["error"]["code"] == "precondition_failed"
    assert seen["kept"].structured_content["version"] == 4  # the stale delete changed nothing
    assert seen["delete_task"].structured_content["id"] == task_id
    assert seen["missing"].structured_content["error"]["code"] == "not_found"
    assert task_row(conn, task_id) is None

    assert server.stop() == 0
    text = server.log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    calls = [line for line in lines if line.get("event") == "request" and line.get("route") == "/mcp"]
    assert {line["tool"] for line in calls} >= {"initialize", "notifications/initialized", "tools/list", "ping", *TOOLS}
    assert all(line["user_id"] == user_id for line in calls)
    assert [line["event"] for line in lines if line.get("event", "").startswith("task.")] == [
        "task.created",
        "task.updated",
        "task.completed",
        "task.moved",
        "task.deleted",
    ]
    assert "Water" not in text and token not in text and '"event": "error"' not in text


@pytest.mark.process
def test_the_sdk_client_gets_the_rest_401_without_a_valid_token(server):
    async def connect() -> None:
        async with (
            httpx2.AsyncClient(headers={"Authorization": "Bearer nope"}, timeout=10) as http,
            streamable_http_client(f"{server.url}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()

    with pytest.raises(Exception, match="unhandled errors"):  # the SDK's MCPError, in anyio's ExceptionGroup
        anyio.run(connect)
    answer = requests.post(f"{server.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=10)
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert server.stop() == 0
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    refused = [line for line in lines if line.get("event") == "request" and line.get("route") == "/mcp"]
    assert refused and {(line["status"], line["user_id"]) for line in refused} == {(401, None)}


@pytest.mark.process
def test_a_chunked_body_is_413_past_64_kib_and_read_whole_up_to_it(server):
    headers = {"Authorization": f"Bearer {make_token('chunky')}", "Content-Type": "application/json"}
    for path in ("/mcp", "/api/chunky/tasks"):
        for size, status in ((64 * 1024 + 1, 413), (64 * 1024, None)):
            head = b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "'
            body = head + b"x" * (size - len(head) - 3) + b'"}}'
            assert len(body) == size
            chunks = (body[start : start + 8192] for start in range(0, len(body), 8192))  # no Content-Length
            answer = requests.post(f"{server.url}{path}", data=chunks, headers=headers, timeout=10)
            if status == 413:
                assert answer.status_code == 413, (path, answer.text[:200])
                assert answer.json()["error"]["code"] == "payload_too_large"
            else:  # read whole: /mcp answers the ping, /api/ refuses the fields (not a parse error)
                assert answer.status_code in (200, 400), (path, answer.text[:200])
                assert "not valid JSON" not in answer.text
