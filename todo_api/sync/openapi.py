"""The sync route in the OpenAPI document: its schemas (from schemas.py), parameters, error and path."""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from ..platform.apidoc import API_ERRORS, add_error_response, add_query_parameters, envelope, errors, json_content
from ..platform.http import MAX_ID
from .schemas import DeletedTaskSchema, SyncQuerySchema

EXPIRED = "SyncTokenExpired"


def add_to_spec(spec: APISpec, converter: Any) -> None:
    spec.tag({"name": "sync", "description": "Incremental sync of a user's tasks and lists (bearer token required)."})
    deleted = converter.schema2jsonschema(DeletedTaskSchema)
    deleted["properties"]["id"].update(minimum=1, maximum=MAX_ID)
    deleted["required"] = ["id", "deleted_at"]
    deleted["additionalProperties"] = False
    deleted["description"] = "A task deleted since the token."
    spec.components.schema("DeletedTask", deleted)
    spec.components.schema(
        "SyncChanges",
        {
            "type": "object",
            "properties": {
                "tasks": {
                    "type": "array",
                    "items": "Task",
                    "description": "Tasks created or changed since the token, each in its latest state, once.",
                },
                "deleted": {
                    "type": "array",
                    "items": "DeletedTask",
                    "description": "Tasks deleted since the token (empty without a token).",
                },
                "lists": {
                    "type": "array",
                    "items": "List",
                    "description": "Lists created or changed since the token, each in its latest state, once.",
                },
                "deleted_lists": {
                    "type": "array",
                    "items": "DeletedTask",
                    "description": "Lists deleted since the token (empty without a token), as `{id, deleted_at}`.",
                },
            },
            "required": ["tasks", "deleted", "lists", "deleted_lists"],
            "additionalProperties": False,
        },
    )
    spec.components.schema(
        "SyncMeta",
        {
            "type": "object",
            "properties": {
                "request_id": {"type": "string"},
                "sync_token": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Where this answer ended: pass as `token` next time (again while `has_more`).",
                },
                "has_more": {
                    "type": "boolean",
                    "description": "More changes were pending when this answer was read; false exactly when none.",
                },
            },
            "required": ["request_id", "sync_token", "has_more"],
        },
    )
    spec.components.schema("SyncEnvelope", envelope("SyncChanges", meta="SyncMeta"))
    add_query_parameters(spec, converter, SyncQuerySchema, "sync", SYNC_PARAMETERS)
    add_error_response(
        spec,
        410,
        EXPIRED,
        ("sync_token_expired",),
        "`sync_token_expired`: the sync `token` is from before a deletion that has since been forgotten "
        "(deletions are remembered `SYNC_RETENTION_DAYS`): sync again without a token.",
    )
    _add_path(spec)


SYNC_PARAMETERS = {
    "token": "Opaque: `meta.sync_token` of the previous answer. Without it: every task, from the start.",
    "limit": "At most this many tasks, lists and deletions together in one answer.",
}


def _add_path(spec: APISpec) -> None:
    spec.path(
        "/api/{user_id}/sync",
        operations={
            "get": {
                "operationId": "sync_tasks",
                "summary": "Sync tasks",
                "description": "What changed since `token`: tasks created or changed (latest state) and tasks "
                "deleted, in pages of `limit`. Call again with `meta.sync_token` while `has_more` is true, then "
                "keep the last token for next time; a client that does so holds exactly the user's tasks, "
                "whatever writes run meanwhile. Unknown, empty or repeated parameters are a 400 naming them; "
                "a changed, made-up or another user's token is a 400 naming `token`.",
                "tags": ["sync"],
                "parameters": ["user_id", "X-Request-ID", *(f"sync.{name}" for name in SYNC_PARAMETERS)],
                "responses": {
                    "200": {
                        "description": "One page of changes.",
                        "headers": {"X-Request-ID": "X-Request-ID"},
                        "content": json_content("SyncEnvelope"),
                    },
                    **errors(400, *API_ERRORS, own={410: EXPIRED}),
                },
            }
        },
    )
