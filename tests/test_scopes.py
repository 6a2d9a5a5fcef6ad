"""Scopes (API.md §1): every route and every MCP tool needs the scope this file's tables say, and a
personal access token without it is a 403 insufficient_scope (a tool result with isError on /mcp),
checked after 401 and 403 forbidden and before 404, 405 and 400. A route or a tool added without a
row here fails test_every_route_has_a_row / test_every_tool_has_a_row."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import assert_error
from flask import Blueprint, Flask

from todo_api.auth import scopes
from todo_api.mcp.tools import TOOLS

READ, WRITE, WEBHOOKS, JWT = "tasks:read", "tasks:write", "webhooks", "jwt"

# (method, route as the url map spells it) -> the scope it needs; JWT: no personal access token may call it.
ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/api/<user_id>/tasks"): READ,
    ("POST", "/api/<user_id>/tasks"): WRITE,
    ("GET", "/api/<user_id>/tasks/<task_id:task_id>"): READ,
    ("PUT", "/api/<user_id>/tasks/<task_id:task_id>"): WRITE,
    ("PATCH", "/api/<user_id>/tasks/<task_id:task_id>"): WRITE,
    ("DELETE", "/api/<user_id>/tasks/<task_id:task_id>"): WRITE,
    ("PATCH", "/api/<user_id>/tasks/<task_id:task_id>/complete"): WRITE,
    ("POST", "/api/<user_id>/tasks/<task_id:task_id>/move"): WRITE,
    ("GET", "/api/<user_id>/lists"): READ,
    ("POST", "/api/<user_id>/lists"): WRITE,
    ("GET", "/api/<user_id>/lists/<list_id:list_id>"): READ,
    ("PATCH", "/api/<user_id>/lists/<list_id:list_id>"): WRITE,
    ("POST", "/api/<user_id>/lists/<list_id:list_id>/move"): WRITE,
    ("DELETE", "/api/<user_id>/lists/<list_id:list_id>"): WRITE,
    ("GET", "/api/<user_id>/sync"): READ,
    ("GET", "/api/<user_id>/tokens"): JWT,
    ("POST", "/api/<user_id>/tokens"): JWT,
    ("DELETE", "/api/<user_id>/tokens/<token_id:token_id>"): JWT,
    ("GET", "/api/<user_id>/webhooks"): WEBHOOKS,
    ("POST", "/api/<user_id>/webhooks"): WEBHOOKS,
    ("GET", "/api/<user_id>/webhooks/<webhook_id:webhook_id>"): WEBHOOKS,
    ("PATCH", "/api/<user_id>/webhooks/<webhook_id:webhook_id>"): WEBHOOKS,
    ("DELETE", "/api/<user_id>/webhooks/<webhook_id:webhook_id>"): WEBHOOKS,
    ("POST", "/api/<user_id>/webhooks/<webhook_id:webhook_id>/test"): WEBHOOKS,
    ("GET", "/api/<user_id>/webhooks/<webhook_id:webhook_id>/deliveries"): WEBHOOKS,
}
# A webhook URL the API takes and that, were a delivery process to try it, reaches only this machine.
WEBHOOK = {"url": "https://localhost/scopes", "events": ["*"]}
TOOL_SCOPES = {
    "list_tasks": READ,
    "get_task": READ,
    "add_task": WRITE,
    "update_task": WRITE,
    "complete_task": WRITE,
    "delete_task": WRITE,
    "move_task": WRITE,
    "list_lists": READ,
    "add_list": WRITE,
    "update_list": WRITE,
    "delete_list": WRITE,
}
# What each kind of token may do.
GRANTS = {
    "tasks:read": {READ},
    "tasks:write": {READ, WRITE},
    "webhooks": {WEBHOOKS},
    "tasks:read+webhooks": {READ, WEBHOOKS},
}


def body_for(method: str, rule: str) -> dict[str, Any] | None:
    """A body the route accepts, so that an allowed call gets past validation."""
    if rule.endswith("/tokens"):
        return {"name": "n", "scopes": [READ]} if method == "POST" else None
    if "/webhooks" in rule:
        return (
            WEBHOOK
            if rule.endswith("/webhooks") and method == "POST"
            else {"description": "d"}
            if method == "PATCH"
            else None
        )
    if rule.endswith("/move"):
        return {"after": None}
    if "/lists" in rule:
        return {"name": "n"} if method in ("POST", "PATCH") else None
    if rule.endswith("/complete") or method not in ("POST", "PUT", "PATCH"):
        return None
    return {"title": "t"}


TOOL_ARGUMENTS = {
    "list_tasks": {},
    "get_task": {"task_id": 1},
    "add_task": {"title": "t"},
    "update_task": {"task_id": 1, "title": "t"},
    "complete_task": {"task_id": 1},
    "delete_task": {"task_id": 1},
    "move_task": {"task_id": 1, "after": None},
    "list_lists": {},
    "add_list": {"name": "n"},
    "update_list": {"list_id": 1, "name": "n"},
    "delete_list": {"list_id": 1},
}


def create_token(api, token_scopes: list[str]) -> dict[str, Any]:
    """A new personal access token of the user, made with the user's JWT: its metadata and token."""
    response = api.client.post(
        f"/api/{api.user_id}/tokens",
        json={"name": "test", "scopes": token_scopes},
        headers={"Authorization": f"Bearer {api.token}"},
    )
    assert response.status_code == 201, response.json
    return response.json["data"]


def make_pat(api, token_scopes: list[str]) -> str:
    return create_token(api, token_scopes)["token"]


def with_pat(api, token: str, method: str, path: str, **kwargs: Any):
    return api.client.open(path, method=method, headers={"Authorization": f"Bearer {token}"}, **kwargs)


def concrete(rule: str, user_id: str, task_id: int, webhook_id: int = 999999, list_id: int = 999999) -> str:
    return (
        rule.replace("<user_id>", user_id)
        .replace("<list_id:list_id>", str(list_id))
        .replace("<task_id:task_id>", str(task_id))
        .replace("<token_id:token_id>", "999999")
        .replace("<webhook_id:webhook_id>", str(webhook_id))
    )


def a_webhook(api, rule: str) -> int:
    """The id of a webhook of the user (made with the JWT) when the route names one."""
    if "<webhook_id:" not in rule:
        return 999999
    response = api.client.post(
        f"/api/{api.user_id}/webhooks", json=WEBHOOK, headers={"Authorization": f"Bearer {api.token}"}
    )
    assert response.status_code == 201, response.json
    return response.json["data"]["id"]


def a_list(api) -> int:
    """The id of a new list of the user (made with the JWT)."""
    response = api.client.post(
        f"/api/{api.user_id}/lists", json={"name": "scopes"}, headers={"Authorization": f"Bearer {api.token}"}
    )
    assert response.status_code == 201, response.json
    return response.json["data"]["id"]


def assert_insufficient(response, need: str) -> None:
    error = assert_error(response, 403, "insufficient_scope")
    if need == JWT:
        assert error["details"] == {}
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="api", error="insufficient_scope"'
    else:
        assert error["details"] == {"scope": need}
        challenge = response.headers["WWW-Authenticate"]
        assert challenge == f'Bearer realm="api", error="insufficient_scope", scope="{need}"'


def test_every_route_has_a_row(app):
    routes = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes == set(ROUTES), "a route under /api/ without a scope in tests/test_scopes.py's ROUTES, or one gone"


def test_every_tool_has_a_row():
    assert set(TOOLS) == set(TOOL_SCOPES), "an MCP tool without a scope in tests/test_scopes.py's TOOL_SCOPES"


@pytest.mark.parametrize("grant", sorted(GRANTS))
@pytest.mark.parametrize(("method", "rule"), sorted(ROUTES))
def test_a_route_answers_a_token_by_its_scopes(api, grant, method, rule):
    task = api.create(title="mine")
    token = make_pat(api, grant.split("+"))
    need = ROUTES[(method, rule)]
    path = concrete(rule, api.user_id, task["id"], a_webhook(api, rule), a_list(api))
    response = with_pat(api, token, method, path, json=body_for(method, rule))
    if need in GRANTS[grant]:
        assert response.status_code in (200, 201, 202), response.json
    else:
        assert_insufficient(response, need)
        assert api.get(f"/{task['id']}").json["data"]["title"] == "mine"  # nothing changed


@pytest.mark.parametrize(("method", "rule"), sorted(ROUTES))
def test_a_jwt_has_every_scope(api, method, rule):
    task = api.create()
    path = concrete(rule, api.user_id, task["id"], a_webhook(api, rule), a_list(api))
    if "token_id" in rule:
        path = path.replace("999999", str(create_token(api, [READ])["id"]))
    response = api.client.open(
        path, method=method, json=body_for(method, rule), headers={"Authorization": f"Bearer {api.token}"}
    )
    assert response.status_code in (200, 201, 202), response.json


# --- the order: 401, 403 forbidden, 403 insufficient_scope, then 404, 405, 400 ---------------------------


def test_another_users_path_is_forbidden_before_the_scope(api, other_api):
    token = make_pat(api, [READ])
    response = with_pat(api, token, "POST", other_api.base, json={"title": "t"})
    assert_error(response, 403, "forbidden")


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "then"),
    [
        ("DELETE", "/999999999", {}, 404),  # no such task
        ("DELETE", "/not-a-number", {}, 404),  # a bad id: no view sees it
        ("PATCH", "/1", {"json": {"title": 5}}, 400),  # a bad body, on a task that does not exist either
        ("POST", "", {"json": {"title": ""}}, 400),  # a bad body
        ("POST", "", {"data": "x", "content_type": "text/plain"}, 415),
        ("PUT", "", {"json": {"title": "t"}}, 405),  # no such method on the collection
        ("DELETE", "", {}, 405),
    ],
)
def test_the_scope_comes_before_404_405_and_400(api, conn, method, path, kwargs, then):
    read_only, writer = make_pat(api, [READ]), make_pat(api, [WRITE])
    assert_insufficient(with_pat(api, read_only, method, api.base + path, **kwargs), WRITE)
    assert with_pat(api, writer, method, api.base + path, **kwargs).status_code == then
    count = conn.execute("SELECT count(*) AS n FROM tasks WHERE user_id = %s", [api.user_id]).fetchone()["n"]
    assert count == 0


def test_an_unknown_collection_is_404_for_any_valid_token(api):
    token = make_pat(api, [WEBHOOKS])
    response = with_pat(api, token, "GET", f"/api/{api.user_id}/nothing-here")
    assert_error(response, 404, "not_found")


def test_an_invalid_token_is_401_before_anything(api):
    response = with_pat(api, "tdo_" + "A" * 43 + "YWxpY2U", "GET", f"/api/{api.user_id}/tokens")
    assert_error(response, 401, "unauthorized")


# --- declaring ------------------------------------------------------------------------------------


def test_create_app_refuses_an_api_blueprint_that_declares_no_scope():
    app = Flask(__name__)
    declared = Blueprint("declared", __name__, url_prefix="/api/<user_id>/declared")
    scopes.declare(declared, read=READ, write=WRITE)
    undeclared = Blueprint("things", __name__, url_prefix="/api/<user_id>/things")
    elsewhere = Blueprint("elsewhere", __name__, url_prefix="/elsewhere")
    for bp in (declared, undeclared, elsewhere):
        app.register_blueprint(bp)
    with pytest.raises(RuntimeError, match=re.escape("blueprint 'things' (/api/<user_id>/things) declares no scope")):
        scopes.collect(app)


def test_a_declaration_for_every_method_is_one_line():
    bp = Blueprint("hooks", __name__, url_prefix="/api/<user_id>/hooks")
    scopes.declare(bp, WEBHOOKS)
    app = Flask(__name__)
    app.register_blueprint(bp)
    needs = scopes.collect(app)
    assert {method: needs["hooks"].of(method) for method in ("GET", "POST", "DELETE")} == dict.fromkeys(
        ("GET", "POST", "DELETE"), WEBHOOKS
    )


# --- MCP ------------------------------------------------------------------------------------------


def mcp(api, token: str, method: str, params: dict[str, Any] | None = None):
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
    return api.client.post("/mcp", json=body, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("grant", sorted(GRANTS))
@pytest.mark.parametrize("tool", sorted(TOOL_SCOPES))
def test_a_tool_answers_a_token_by_its_scopes(api, grant, tool):
    task = api.create(title="mine")
    token = make_pat(api, grant.split("+"))
    arguments = {**TOOL_ARGUMENTS[tool]}
    if "task_id" in arguments:
        arguments["task_id"] = task["id"]
    if "list_id" in arguments:
        arguments["list_id"] = a_list(api)
    response = mcp(api, token, "tools/call", {"name": tool, "arguments": arguments})
    assert response.status_code == 200
    result = response.json["result"]
    need = TOOL_SCOPES[tool]
    if need in GRANTS[grant]:
        assert result["isError"] is False, result
    else:
        assert result["isError"] is True
        assert result["structuredContent"]["error"]["code"] == "insufficient_scope"
        assert result["structuredContent"]["error"]["details"] == {"scope": need}
        assert api.get(f"/{task['id']}").json["data"]["title"] == "mine"


@pytest.mark.parametrize("grant", sorted(GRANTS))
def test_tools_list_lists_every_tool_whatever_the_scopes(api, grant):
    token = make_pat(api, grant.split("+"))
    response = mcp(api, token, "tools/list")
    assert sorted(tool["name"] for tool in response.json["result"]["tools"]) == sorted(TOOL_SCOPES)


def test_a_read_only_tool_needs_only_tasks_read():
    for name, tool in TOOLS.items():
        assert (TOOL_SCOPES[name] == READ) == bool(tool.annotations.get("readOnlyHint")), name
