"""The list operations as MCP tools (API.md §7): arguments in, the operation of operations.py the REST
route calls, the result out. Their JSON Schemas come from the OpenAPI document's components."""

from __future__ import annotations

from typing import Any

from ..platform.http import MAX_ID
from ..platform.tools import Tool, expected_versions, object_schema, split_arguments
from . import operations
from .errors import list_not_found
from .schemas import dump_list, list_input

OWN = ("list_id", "if_match")


def _list_id(mine: dict[str, Any]) -> int:
    """The `list_id` argument; one past the bigint ids names no list."""
    if mine["list_id"] > MAX_ID:
        raise list_not_found()
    return mine["list_id"]


def list_lists(user_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    split_arguments(arguments)
    return {"lists": [dump_list(row) for row in operations.list_lists(user_id)]}


def add_list(user_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    _, fields = split_arguments(arguments, list_input)
    return dump_list(operations.create_list(user_id, fields))


def update_list(user_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    mine, fields = split_arguments(arguments, list_input, own=OWN, required=("list_id",))
    return dump_list(operations.rename_list(user_id, _list_id(mine), fields, expected_versions(mine)))


def delete_list(user_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    mine, _ = split_arguments(arguments, own=OWN, required=("list_id",))
    deleted = operations.delete_list(user_id, _list_id(mine), expected_versions(mine))
    return {**dump_list(deleted.list), "deleted_tasks": deleted.tasks}


TOOLS = (
    Tool(
        "list_lists",
        "List the lists",
        "Every task list of the user, in the order the user sees. A task's `list_id` names one of these; "
        "tasks with a null `list_id` are in the inbox.",
        {"readOnlyHint": True, "idempotentHint": True},
        list_lists,
    ),
    Tool(
        "add_list",
        "Add a list",
        "Create a task list (`name`), placed last. At most 1,000 lists (limit_exceeded). Calling it twice "
        "creates two lists.",
        {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False},
        add_list,
    ),
    Tool(
        "update_list",
        "Rename a list",
        "Rename a list: `list_id` and `name`. Pass the `version` you last read as `if_match` to rename it "
        "only if nobody changed it since (precondition_failed otherwise).",
        {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": True},
        update_list,
    ),
    Tool(
        "delete_list",
        "Delete a list and its tasks",
        "Delete a list AND EVERY TASK IN IT, for good (there is no undo). `if_match` as for update_list. "
        "Returns the list as it was, with `deleted_tasks`: how many tasks went with it.",
        {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": True},
        delete_list,
    ),
)

LIST_ID = {
    "type": "integer",
    "minimum": 1,
    "description": "The list's `id`. An id the user has no list with is a not_found error.",
}
IF_MATCH = {
    "type": "integer",
    "minimum": 1,
    "description": "The list's `version` as you last read it: the change is made only if the list is still at "
    "that version, else a precondition_failed error and nothing changes.",
}


def tool_schemas(components: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Each tool's input and output JSON Schemas, from the OpenAPI document's `components`."""
    schemas = components["schemas"]
    listed = schemas["List"]
    name = schemas["ListInput"]["properties"]["name"]
    deleted = {
        **listed,
        "properties": {
            **listed["properties"],
            "deleted_tasks": {"type": "integer", "minimum": 0, "description": "Tasks deleted with the list."},
        },
        "required": [*listed["required"], "deleted_tasks"],
    }
    return {
        "list_lists": (
            object_schema({}),
            object_schema({"lists": {"type": "array", "items": listed}}, required=["lists"]),
        ),
        "add_list": (object_schema({"name": name}, required=["name"]), listed),
        "update_list": (
            object_schema({"list_id": LIST_ID, "name": name, "if_match": IF_MATCH}, required=["list_id", "name"]),
            listed,
        ),
        "delete_list": (object_schema({"list_id": LIST_ID, "if_match": IF_MATCH}, required=["list_id"]), deleted),
    }
