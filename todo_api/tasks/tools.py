"""The task operations as MCP tools (API.md §7): each translates its arguments into the input of the
function of operations.py that the REST route calls, and its result into a tool result; the mcp
package serves them (an ApiError becomes a result with `isError`). Their JSON Schemas are taken from
the OpenAPI document, generated from the marshmallow schemas that validate both surfaces."""

from __future__ import annotations

from typing import Any

from ..platform.http import MAX_ID
from ..platform.tools import Tool, expected_versions, object_schema, split_arguments
from . import operations
from .errors import task_not_found
from .schemas import complete_input, dump_task, list_query, move_input, task_create, task_patch

OWN = ("task_id", "if_match")


def _task_id(mine: dict[str, Any]) -> int:
    """The `task_id` argument; one past the bigint ids names no task."""
    if mine["task_id"] > MAX_ID:
        raise task_not_found()
    return mine["task_id"]


def list_tasks(user_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    _, options = split_arguments(arguments, list_query, refused=LIST_REFUSED)
    page = operations.list_tasks(user_id, options)
    return {"tasks": [dump_task(task) for task in page.tasks], "next_cursor": page.next_cursor}


def get_task(user_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    mine, _ = split_arguments(arguments, own=("task_id",), required=("task_id",))
    return dump_task(operations.get_task(user_id, _task_id(mine)))


def add_task(user_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    _, fields = split_arguments(arguments, task_create)
    return dump_task(operations.create_task(user_id, fields))


def update_task(user_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    mine, fields = split_arguments(arguments, task_patch, own=OWN, required=("task_id",))
    return dump_task(operations.update_task(user_id, _task_id(mine), fields, expected_versions(mine)).task)


def complete_task(user_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    mine, loaded = split_arguments(arguments, complete_input, partial=True, own=OWN, required=("task_id",))
    written = operations.complete_task(user_id, _task_id(mine), loaded.get("completed"), expected_versions(mine))
    result = dump_task(written.task)
    if written.next_occurrence is not None:
        result["next_occurrence"] = dump_task(written.next_occurrence)
    return result


def move_task(user_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    mine, request = split_arguments(arguments, move_input, own=OWN, required=("task_id",))
    return dump_task(operations.move_task(user_id, _task_id(mine), request, expected_versions(mine)))


def delete_task(user_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    mine, _ = split_arguments(arguments, own=OWN, required=("task_id",))
    return dump_task(operations.delete_task(user_id, _task_id(mine), expected_versions(mine)).task)


_READ = {"readOnlyHint": True, "idempotentHint": True}
TOOLS = (
    Tool(
        "list_tasks",
        "List tasks",
        "List the user's tasks, newest first unless `sort` says otherwise, filtered by status, priority, "
        'tags, a search text, due and reminder dates, a list (`list_id`; "none": the inbox) or a parent '
        '(`parent_id`; "none": top level). `sort: "position"` with `list_id` and `parent_id` gives the order '
        "the user sees. Returns one page: `tasks` and `next_cursor`; "
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
        "`list_id` puts it in a list (see list_lists), `parent_id` under another task (it then takes that "
        "task's list; at most 4 levels). It goes last among its siblings. "
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
        "move_task",
        "Move a task",
        "Move a task, with its subtasks, to another list (`list_id`, null: the inbox), under another task "
        "(`parent_id`, null: top level), or to another place among its siblings (`after`: the sibling to go "
        "right after, null: first; omitted: last). Give at least one. A subtask is always in its parent's "
        "list. `if_match` as for update_task. Returns the task as moved.",
        {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False},
        move_task,
    ),
    Tool(
        "delete_task",
        "Delete a task",
        "Delete a task, and every task below it, for good (there is no undo). `if_match` as for "
        "update_task. Returns the task as it was before the deletion.",
        {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": True},
        delete_task,
    ),
)


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


def tool_schemas(components: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Each tool's input and output JSON Schemas, built from the OpenAPI document's `components`
    (a copy of its own), themselves generated from schemas.py: a field added there shows up here
    with no second edit."""
    schemas = components["schemas"]
    task = schemas["Task"]
    list_arguments = {}
    for key, parameter in components["parameters"].items():
        name = parameter["name"]
        if key.startswith("list.") and name not in LIST_REFUSED:
            description = LIST_ARGUMENT_WORDING.get(name, parameter["description"])
            list_arguments[name] = {**parameter["schema"], "description": description}
    # The REST bodies' own descriptions speak of HTTP (a 400); each tool has its description.
    add = {key: value for key, value in schemas["TaskCreate"].items() if key != "description"}
    move = {key: value for key, value in schemas["MoveInput"].items() if key != "description"}
    move_arguments = object_schema({"task_id": TASK_ID, **move["properties"], "if_match": IF_MATCH}, ["task_id"])
    patch = schemas["TaskPatch"]
    update = object_schema({"task_id": TASK_ID, **patch["properties"], "if_match": IF_MATCH}, required=["task_id"])
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
    return {
        "list_tasks": (
            object_schema(list_arguments),
            object_schema(
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
        "get_task": (object_schema({"task_id": TASK_ID}, required=["task_id"]), task),
        "add_task": (add, task),
        "update_task": (update, task),
        "complete_task": (
            object_schema({"task_id": TASK_ID, "completed": completed, "if_match": IF_MATCH}, ["task_id"]),
            with_occurrence,
        ),
        "move_task": (move_arguments, task),
        "delete_task": (object_schema({"task_id": TASK_ID, "if_match": IF_MATCH}, required=["task_id"]), task),
    }
