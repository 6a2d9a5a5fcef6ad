"""The lists feature in the OpenAPI document: its schemas (from schemas.py) and paths (API.md §8)."""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from ..platform.apidoc import API_ERRORS, BODY_ERRORS, add_error_response, envelope, errors, json_content, not_modified
from ..platform.http import MAX_ID
from .errors import MAX_LISTS
from .schemas import READ_ONLY_FIELDS, ListInputSchema, ListMoveSchema, ListPatchSchema, ListSchema

EXAMPLE_LIST = {
    "id": 7,
    "user_id": "alice",
    "name": "Groceries",
    "position": "a1",
    "created_at": "2026-11-20T10:15:00Z",
    "updated_at": "2026-11-20T10:15:00Z",
    "version": 1,
}
POSITION = "The list's place among the user's lists: compare byte-wise (ASCII), ties by `id`."


def _with_examples(schema: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
    for name, prop in schema["properties"].items():
        prop["examples"] = [example[name]]
    return schema


def add_to_spec(spec: APISpec, converter: Any) -> None:
    spec.tag({"name": "lists", "description": "A user's task lists (bearer token required)."})
    listed = _with_examples(converter.schema2jsonschema(ListSchema), EXAMPLE_LIST)
    listed["properties"]["id"].update(minimum=1, maximum=MAX_ID)
    listed["properties"]["position"]["description"] = POSITION
    listed["required"] = sorted(listed["properties"])
    listed["additionalProperties"] = False
    listed["description"] = "A list as the API returns it. A task whose `list_id` is null is in the inbox."
    spec.components.schema("List", listed)
    spec.components.schema("ListInput", converter.schema2jsonschema(ListInputSchema(exclude=READ_ONLY_FIELDS)))
    patch = converter.schema2jsonschema(ListPatchSchema(exclude=READ_ONLY_FIELDS))
    patch["minProperties"] = 1
    spec.components.schema("ListPatch", patch)
    move = converter.schema2jsonschema(ListMoveSchema)
    move["description"] = "`after`: the list to go right after; null: first; absent: last."
    spec.components.schema("ListMoveInput", move)
    spec.components.schema("ListEnvelope", envelope("List"))
    counted = {"type": "object", "properties": {"request_id": {"type": "string"}}, "required": ["request_id"]}
    counted["properties"]["count"] = {"type": "integer", "minimum": 0, "maximum": MAX_LISTS}
    spec.components.schema("ListsEnvelope", envelope({"type": "array", "items": "List"}, meta=counted))  # type: ignore[arg-type]
    deleted = {
        "type": "object",
        "properties": {
            "request_id": {"type": "string"},
            "deleted_tasks": {"type": "integer", "minimum": 0, "description": "Tasks deleted with the list."},
        },
        "required": ["request_id", "deleted_tasks"],
    }
    spec.components.schema("ListDeleteEnvelope", envelope("List", meta=deleted))  # type: ignore[arg-type]
    spec.components.parameter(
        "list_id",
        "path",
        {"description": "The list's id.", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}},
    )
    add_error_response(
        spec,
        409,
        "ListConflict",
        ("limit_exceeded", "idempotency_conflict"),
        f"The user has {MAX_LISTS} lists already (`details.limit`), or an Idempotency-Key was reused with another "
        "body or is still in flight.",
    )
    _add_paths(spec)


def _answer(description: str, schema: str = "ListEnvelope", *, created: bool = False) -> dict[str, Any]:
    headers = {"ETag": "ETag", "X-Request-ID": "X-Request-ID"}
    if created:
        headers["Location"] = "Location"
    return {"description": description, "headers": headers, "content": json_content(schema)}


def _add_paths(spec: APISpec) -> None:
    tags = ["lists"]
    owner = ["user_id", "X-Request-ID"]
    one = ["user_id", "list_id", "X-Request-ID"]
    spec.path(
        "/api/{user_id}/lists",
        operations={
            "get": {
                "operationId": "list_lists",
                "summary": "List the lists",
                "description": f"Every list of the user in position order (at most {MAX_LISTS}; no pages).",
                "tags": tags,
                "parameters": owner,
                "responses": {
                    "200": {
                        "description": "The lists.",
                        "headers": {"X-Request-ID": "X-Request-ID"},
                        "content": json_content("ListsEnvelope"),
                    },
                    **errors(*API_ERRORS),
                },
            },
            "post": {
                "operationId": "create_list",
                "summary": "Create a list",
                "description": "Placed last among the user's lists.",
                "tags": tags,
                "parameters": [*owner, "Idempotency-Key"],
                "requestBody": {"required": True, "content": json_content("ListInput")},
                "responses": {
                    "201": _answer("Created; `Location` is its URL.", created=True),
                    **errors(*BODY_ERRORS, *API_ERRORS, own={409: "ListConflict"}),
                },
            },
        },
    )
    spec.path(
        "/api/{user_id}/lists/{list_id}",
        operations={
            "get": {
                "operationId": "get_list",
                "summary": "Read a list",
                "tags": tags,
                "parameters": [*one, "If-None-Match"],
                "responses": {
                    "200": _answer("The list."),
                    "304": not_modified("the list"),
                    **errors(404, *API_ERRORS),
                },
            },
            "patch": {
                "operationId": "rename_list",
                "summary": "Rename a list",
                "tags": tags,
                "parameters": [*one, "If-Match"],
                "requestBody": {"required": True, "content": json_content("ListPatch")},
                "responses": {"200": _answer("The list as renamed."), **errors(*BODY_ERRORS, 404, 412, *API_ERRORS)},
            },
            "delete": {
                "operationId": "delete_list",
                "summary": "Delete a list and its tasks",
                "description": "Deletes the list and every task in it (subtasks included) in one transaction.",
                "tags": tags,
                "parameters": [*one, "If-Match"],
                "responses": {
                    "200": _answer("Deleted; `meta.deleted_tasks` counts its tasks.", "ListDeleteEnvelope"),
                    **errors(404, 412, *API_ERRORS),
                },
            },
        },
    )
    spec.path(
        "/api/{user_id}/lists/{list_id}/move",
        operations={
            "post": {
                "operationId": "move_list",
                "summary": "Reorder a list",
                "tags": tags,
                "parameters": [*one, "If-Match"],
                "requestBody": {"required": True, "content": json_content("ListMoveInput")},
                "responses": {"200": _answer("The list as moved."), **errors(*BODY_ERRORS, 404, 412, *API_ERRORS)},
            },
        },
    )
