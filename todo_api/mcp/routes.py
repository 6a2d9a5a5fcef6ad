"""POST /mcp: the task operations as tools for AI agents, over the Model Context Protocol (API.md §7).

The Streamable HTTP transport in its stateless, JSON-response form: one JSON-RPC 2.0 message per
POST, one application/json answer, 202 for a notification, no event stream and no session. Each
tool translates its arguments into the input of a function of operations.py (the one the REST view
calls) and its ApiError into a tool result with `isError`; the tools' JSON Schemas are taken from
the OpenAPI document, which is generated from the marshmallow schemas that validate both surfaces.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from flask import Blueprint, Response, current_app, g, json, request
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import MethodNotAllowed

from ..auth.bearer import authenticate, is_cors_preflight
from ..platform.envelope import encode
from ..platform.errors import ApiError, invalid, not_found, validation_error
from ..tasks import operations
from ..tasks.routes import MAX_TASK_ID  # the id column is a bigint: a larger id names no task
from ..tasks.schemas import complete_input, dump_task, list_query, task_input, task_patch

bp = Blueprint("mcp", __name__)

PATH = "/mcp"
PROTOCOL_VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")  # oldest to newest
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
MAX_VERSION = 2**31 - 1  # the version column is an integer: a larger if_match matches no version
# A method name is logged only if it looks like one (never a client's free text); tool names only if known.
_LOGGABLE_METHOD = re.compile(r"^[A-Za-z0-9_./-]{1,64}$")

INSTRUCTIONS = (
    "Tools for the signed-in user's task list (the bearer token decides whose; no tool takes a user id). "
    "Read before you write: list_tasks filters and pages, get_task reads one. Pass a task's `version` as "
    "`if_match` to update_task, complete_task or delete_task so that a change made meanwhile is not "
    "overwritten (a precondition_failed error means: read the task again). Timestamps are RFC 3339 with an "
    "offset on input and UTC on output."
)


@dataclass(frozen=True)
class Tool:
    """One tool: what tools/list shows, and how a call runs (user id, arguments → structured result)."""

    name: str
    title: str
    description: str
    annotations: dict[str, bool]
    run: Callable[[str, dict[str, Any]], dict[str, Any]]

    def listing(self, schemas: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
        input_schema, output_schema = schemas[self.name]
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": input_schema,
            "outputSchema": output_schema,
            "annotations": {"title": self.title, **self.annotations, "openWorldHint": False},
        }


# --- the HTTP layer ---------------------------------------------------------------------------


@bp.before_app_request
def guard_mcp_requests() -> Response | None:
    """Every request to /mcp, whatever its method: an Origin not allowed is a 403 (DNS rebinding),
    then the bearer token (401, as under /api/), and only then the method (405, Allow: POST).

    A CORS preflight from an allowed Origin needs no token (browsers never send one): it gets the
    plain OPTIONS answer, which flask-cors fills in (todo_api/__init__.py).
    """
    if request.path != PATH:
        return None
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
    raw = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    if request.mimetype != "application/json":
        raise ApiError(415)
    try:
        message = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _error(None, PARSE_ERROR, "Parse error: the body is not valid JSON.", 400)
    if not _is_request(message):
        return _error(None, INVALID_REQUEST, "Invalid request: send one JSON-RPC 2.0 request or notification.", 400)
    method, params = message["method"], message.get("params", {})
    g.mcp_tool = _loggable(method, params)
    if "id" not in message:  # a notification: nothing to answer
        response = current_app.response_class(status=202)
        del response.headers["Content-Type"]
        return response
    request_id = message["id"]
    handler = _METHODS.get(method)
    if handler is None:
        return _error(request_id, METHOD_NOT_FOUND, f"Method not found: {method}.")
    return handler(request_id, params)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


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
    try:
        structured, failed = TOOLS[name].run(g.user_id, arguments), False
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


# --- the tools: arguments in, an operation, the result out ------------------------------------


def _arguments(
    arguments: dict[str, Any],
    schema: Schema | None = None,
    *,
    partial: bool = False,
    own: tuple[str, ...] = (),
    refused: tuple[str, ...] = (),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a call's arguments into the tool's own (`task_id`, `if_match`), checked here, and the
    rest, loaded by the REST API's schema. Every problem at once, as one validation_error."""
    errors: dict[str, list[str]] = {}
    mine: dict[str, Any] = {}
    for name in own:
        if name not in arguments:
            if name == "task_id":
                errors[name] = ["Missing data for required field."]
            continue
        value = arguments[name]
        if type(value) is not int or value < 1:
            errors[name] = ["Must be a positive integer."]
        mine[name] = value
    rest = {name: value for name, value in arguments.items() if name not in own}
    for name in [name for name in rest if schema is None or name in refused]:
        errors[name] = ["Unknown field."]
        del rest[name]
    loaded: dict[str, Any] = {}
    if schema is not None:
        try:
            loaded = schema.load(rest, partial=partial)
        except ValidationError as error:
            errors.update(invalid(error).details)
    if errors:
        raise validation_error(errors)
    if mine.get("task_id", 1) > MAX_TASK_ID:
        raise not_found()
    return mine, loaded


def _expected_versions(mine: dict[str, Any]) -> list[int] | None:
    if "if_match" not in mine:
        return None
    return [mine["if_match"]] if mine["if_match"] <= MAX_VERSION else []


def list_tasks(user_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    _, options = _arguments(arguments, list_query, refused=LIST_REFUSED)
    page = operations.list_tasks(user_id, options)
    return {"tasks": [dump_task(task) for task in page.tasks], "next_cursor": page.next_cursor}


def get_task(user_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    mine, _ = _arguments(arguments, own=("task_id",))
    return dump_task(operations.get_task(user_id, mine["task_id"]))


def add_task(user_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    _, fields = _arguments(arguments, task_input)
    return operations.create_task(user_id, fields).data


def update_task(user_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    mine, fields = _arguments(arguments, task_patch, own=("task_id", "if_match"))
    return dump_task(operations.update_task(user_id, mine["task_id"], fields, _expected_versions(mine)).task)


def complete_task(user_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    mine, loaded = _arguments(arguments, complete_input, partial=True, own=("task_id", "if_match"))
    written = operations.complete_task(user_id, mine["task_id"], loaded.get("completed"), _expected_versions(mine))
    result = dump_task(written.task)
    if written.next_occurrence is not None:
        result["next_occurrence"] = dump_task(written.next_occurrence)
    return result


def delete_task(user_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    mine, _ = _arguments(arguments, own=("task_id", "if_match"))
    return dump_task(operations.delete_task(user_id, mine["task_id"], _expected_versions(mine)))


_READ = {"readOnlyHint": True, "idempotentHint": True}
TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            "list_tasks",
            "List tasks",
            "List the user's tasks, newest first unless `sort` says otherwise, filtered by status, priority, "
            "tags, a search text, or due and reminder dates. Returns one page: `tasks` and `next_cursor`; "
            "to read the next page call again with `cursor` set to `next_cursor` and the same filters and "
            "sort (`next_cursor` is null on the last page).",
            _READ,
            list_tasks,
        ),
        Tool(
            "get_task",
            "Read a task",
            "Read one of the user's tasks by its id. A task that does not exist (or is not the user's) is a "
            "not_found error.",
            _READ,
            get_task,
        ),
        Tool(
            "add_task",
            "Add a task",
            "Create a task for the user. Only `title` is required; omitted fields take their defaults. "
            "Returns the new task, with its `id` and `version`. Calling it twice creates two tasks.",
            {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False},
            add_task,
        ),
        Tool(
            "update_task",
            "Change a task",
            "Change some fields of a task: give `task_id` and at least one field; the others keep their "
            "values (`description`, `due_at` and the other nullable fields take null to clear them). Pass the "
            "`version` you last read as `if_match` to change it only if nobody changed it since "
            "(precondition_failed otherwise). Returns the task as changed.",
            {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": True},
            update_task,
        ),
        Tool(
            "complete_task",
            "Complete or reopen a task",
            "Mark a task completed (`completed: true`) or not completed (`completed: false`); without "
            "`completed` it toggles, so prefer giving it. `if_match` as for update_task. Returns the task; "
            "when completing a recurring task created its next occurrence, that new task is under "
            "`next_occurrence`.",
            {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False},
            complete_task,
        ),
        Tool(
            "delete_task",
            "Delete a task",
            "Delete a task for good (there is no undo). `if_match` as for update_task. Returns the task as it "
            "was before the deletion.",
            {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": True},
            delete_task,
        ),
    )
}


# --- the tools' JSON Schemas, from the OpenAPI document ---------------------------------------

# Listing parameters that are no tool argument: list_tasks' result has no total.
LIST_REFUSED = ("total",)
# Where an argument's meaning differs from the query parameter's wording (arrays, not repeats).
LIST_ARGUMENT_WORDING = {
    "priority": "One or more priorities: tasks with any of them.",
    "tag": "Tasks carrying every tag given (case-insensitive).",
    "cursor": "Opaque: `next_cursor` of the previous page, with the same sort and filters.",
}
TASK_ID = {
    "type": "integer",
    "minimum": 1,
    "description": "The task's `id`. An id the user has no task with is a not_found error.",
}
IF_MATCH = {
    "type": "integer",
    "minimum": 1,
    "description": "The task's `version` as you last read it: the change is made only if the task is still at "
    "that version, else a precondition_failed error and nothing changes. Omit it to change it whatever "
    "its version.",
}


def tool_listing(document: dict[str, Any]) -> list[dict[str, Any]]:
    """tools/list's `tools`: each tool's schemas built from the document's components, themselves
    generated from schemas.py, so a field added there shows up here with no second edit."""
    components = copy.deepcopy(document["components"])
    schemas = components["schemas"]
    task = schemas["Task"]
    list_arguments = {}
    for key, parameter in components["parameters"].items():
        name = parameter["name"]
        if key.startswith("list.") and name not in LIST_REFUSED:
            description = LIST_ARGUMENT_WORDING.get(name, parameter["description"])
            list_arguments[name] = {**parameter["schema"], "description": description}
    # The REST bodies' own descriptions speak of HTTP (a 400); each tool has its description.
    add = {key: value for key, value in schemas["TaskInput"].items() if key != "description"}
    patch = schemas["TaskPatch"]
    update = _object({"task_id": TASK_ID, **patch["properties"], "if_match": IF_MATCH}, required=["task_id"])
    completed = {
        **schemas["CompleteInput"]["properties"]["completed"],
        "description": "true: completed, false: not completed; omitted: toggle.",
    }
    with_occurrence = {
        **task,
        "properties": {
            **task["properties"],
            "next_occurrence": {
                **task,
                "description": "The next occurrence of a recurring task, when this completion created one.",
            },
        },
    }
    schema_pairs = {
        "list_tasks": (
            _object(list_arguments),
            _object(
                {
                    "tasks": {"type": "array", "items": task},
                    "next_cursor": {
                        "type": ["string", "null"],
                        "description": "Pass as `cursor` for the next page; null on the last page.",
                    },
                },
                required=["tasks", "next_cursor"],
            ),
        ),
        "get_task": (_object({"task_id": TASK_ID}, required=["task_id"]), task),
        "add_task": (add, task),
        "update_task": (update, task),
        "complete_task": (
            _object({"task_id": TASK_ID, "completed": completed, "if_match": IF_MATCH}, ["task_id"]),
            with_occurrence,
        ),
        "delete_task": (_object({"task_id": TASK_ID, "if_match": IF_MATCH}, required=["task_id"]), task),
    }
    return [tool.listing(schema_pairs) for tool in TOOLS.values()]


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema
