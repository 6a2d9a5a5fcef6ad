"""POST /mcp: the features' operations as tools for AI agents, over the Model Context Protocol (API.md §7).

The Streamable HTTP transport in its stateless, JSON-response form: one JSON-RPC 2.0 message per
POST, one application/json answer, 202 for a notification, no event stream and no session. The
tools are the features' (tools.py collects them); a call runs one, and its ApiError becomes a tool
result with `isError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from werkzeug.exceptions import MethodNotAllowed

from ..auth import scopes
from ..auth.bearer import authenticate, is_cors_preflight
from ..platform.envelope import encode
from ..platform.errors import ApiError
from ..platform.http import InvalidJson, request_json
from ..platform.logs import add_to_request_line
from .tools import TOOLS

bp = Blueprint("mcp", __name__)

PATH = "/mcp"
PROTOCOL_VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")  # oldest to newest
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
# A method name is logged only if it looks like one (never a client's free text); tool names only if known.
_LOGGABLE_METHOD = re.compile(r"^[A-Za-z0-9_./-]{1,64}$")

INSTRUCTIONS = (
    "Tools for the signed-in user's task list (the bearer token decides whose; no tool takes a user id). "
    "Read before you write: list_tasks filters and pages, get_task reads one. Pass a task's `version` as "
    "`if_match` to update_task, complete_task or delete_task so that a change made meanwhile is not "
    "overwritten (a precondition_failed error means: read the task again). Timestamps are RFC 3339 with an "
    "offset on input and UTC on output."
)


# --- the HTTP layer ---------------------------------------------------------------------------


@bp.before_app_request
def guard_mcp_requests() -> Response | None:
    """Every request to /mcp, whatever its method: an Origin not allowed is a 403 (DNS rebinding),
    then the bearer token (401, as under /api/), and only then the method (405, Allow: POST).

    A CORS preflight from an allowed Origin needs no token (browsers never send one): it gets the
    plain OPTIONS answer, which flask-cors fills in (create_app).
    """
    if request.path != PATH:
        return None
    add_to_request_line(tool=None)  # the tool called, or the JSON-RPC method, once the body is read
    origin = request.headers.get("Origin")
    if origin is not None and not _origin_allowed(origin):
        raise ApiError(403, "Requests from this Origin may not call /mcp.")
    if is_cors_preflight():
        return current_app.make_default_options_response()
    authenticate(None)
    if isinstance(request.routing_exception, MethodNotAllowed):
        # GET would open an event stream, DELETE end a session: this stateless server has neither.
        raise MethodNotAllowed(valid_methods=["POST"])
    return None


def _origin_allowed(origin: str) -> bool:
    allowed = current_app.config["TODO_API_SETTINGS"].cors_allowed_origins
    return "*" in allowed or origin.lower() in (item.lower() for item in allowed)


@bp.post(PATH, provide_automatic_options=False)
def endpoint() -> Response:
    """One JSON-RPC message: 200 with its answer, 202 for a notification, 400 for a body that is not
    one JSON-RPC request; 401, 403, 413, 415 and 503 in the envelope."""
    try:
        message = request_json()
    except InvalidJson:
        return _error(None, PARSE_ERROR, "Parse error: the body is not valid JSON.", 400)
    if not _is_request(message):
        return _error(None, INVALID_REQUEST, "Invalid request: send one JSON-RPC 2.0 request or notification.", 400)
    method, params = message["method"], message.get("params", {})
    add_to_request_line(tool=_loggable(method, params))
    if "id" not in message:  # a notification: nothing to answer
        response = current_app.response_class(status=202)
        del response.headers["Content-Type"]
        return response
    request_id = message["id"]
    handler = _METHODS.get(method)
    if handler is None:
        return _error(request_id, METHOD_NOT_FOUND, f"Method not found: {method}.")
    return handler(request_id, params)


def _is_request(message: Any) -> bool:
    """One JSON-RPC 2.0 request (id: a string or an integer) or notification (no id), with object params."""
    return (
        isinstance(message, dict)
        and message.get("jsonrpc") == "2.0"
        and isinstance(message.get("method"), str)
        and ("id" not in message or _is_text(message["id"]) or type(message["id"]) is int)
        and isinstance(message.get("params", {}), dict)
    )


def _is_text(value: Any) -> bool:
    """A string of Unicode characters: not one with a lone surrogate ("\\ud800"), which no strict JSON
    parser accepts back, so that such an id could not be echoed (docs/mcp.md)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _loggable(method: str, params: dict[str, Any]) -> str | None:
    """The request log's `tool`: the tool's name for a call to a known tool, else the method."""
    if method == "tools/call" and isinstance(params.get("name"), str) and params["name"] in TOOLS:
        return params["name"]
    return method if _LOGGABLE_METHOD.match(method) else None


def _answer(request_id: str | int | None, body: dict[str, Any], status: int) -> Response:
    text = encode({"jsonrpc": "2.0", "id": request_id, **body})
    return current_app.response_class(text, status=status, mimetype="application/json")


def _result(request_id: str | int, result: dict[str, Any]) -> Response:
    return _answer(request_id, {"result": result}, 200)


def _error(request_id: str | int | None, code: int, message: str, status: int = 200) -> Response:
    return _answer(request_id, {"error": {"code": code, "message": message}}, status)


# --- the methods ------------------------------------------------------------------------------


def _initialize(request_id: str | int, params: dict[str, Any]) -> Response:
    requested = params.get("protocolVersion")
    agreed = requested if isinstance(requested, str) and requested in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[-1]
    return _result(
        request_id,
        {
            "protocolVersion": agreed,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "todo-api", "title": "Tasks", "version": version("todo-api")},
            "instructions": INSTRUCTIONS,
        },
    )


def _ping(request_id: str | int, params: dict[str, Any]) -> Response:
    return _result(request_id, {})


def _list_tools(request_id: str | int, params: dict[str, Any]) -> Response:
    return _result(request_id, {"tools": current_app.extensions["todo_api.mcp_tools"]})


def _call_tool(request_id: str | int, params: dict[str, Any]) -> Response:
    name, arguments = params.get("name"), params.get("arguments", {})
    if not isinstance(name, str) or name not in TOOLS:
        return _error(request_id, INVALID_PARAMS, "Unknown tool: call tools/list for the tools there are.")
    if not isinstance(arguments, dict):
        return _error(request_id, INVALID_PARAMS, "The tool's arguments must be a JSON object.")
    tool = TOOLS[name]
    try:
        scopes.check(g.scopes, scopes.of_tool(tool.annotations.get("readOnlyHint", False)))
        structured, failed = tool.run(g.user_id, arguments), False
    except ApiError as error:
        if error.status >= 500:
            raise  # the REST API's 5xx (503 with Retry-After), not a tool result
        structured, failed = {"error": {"code": error.code, "message": error.message, "details": error.details}}, True
    content = [{"type": "text", "text": encode(structured).decode()}]
    return _result(request_id, {"content": content, "structuredContent": structured, "isError": failed})


_METHODS: dict[str, Callable[[str | int, dict[str, Any]], Response]] = {
    "initialize": _initialize,
    "ping": _ping,
    "tools/list": _list_tools,
    "tools/call": _call_tool,
}
