"""The tasks feature in the OpenAPI document: its schemas (from schemas.py), parameters and paths."""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from ..platform.apidoc import (
    API_ERRORS,
    BODY_ERRORS,
    add_query_parameters,
    envelope,
    errors,
    json_content,
    not_modified,
)
from ..platform.http import MAX_ID
from .recurrence import MAX_RULE_LENGTH, zone_names
from .schemas import (
    MAX_TAGS,
    PRIORITIES,
    READ_ONLY_FIELDS,
    CompleteSchema,
    ListQuerySchema,
    MoveSchema,
    TaskCreateSchema,
    TaskInputSchema,
    TaskPatchSchema,
    TaskSchema,
)

TAGS = (
    f"Each trimmed, 1-50 characters. Duplicates (case-insensitive) are dropped, the first spelling kept; "
    f"at most {MAX_TAGS} remain (the server counts after dropping them, so a longer list with duplicates passes)."
)

# Shown by the docs page, and sent by schemathesis's examples phase.
EXAMPLE_TASK = {
    "id": 42,
    "user_id": "alice",
    "title": "Buy milk",
    "description": "Two litres, semi-skimmed.",
    "completed": False,
    "completed_at": None,
    "priority": "high",
    "tags": ["home", "errands"],
    "due_at": "2026-12-01T08:00:00Z",
    "recurrence": "FREQ=WEEKLY;BYDAY=TU",
    "timezone": "Europe/Berlin",
    "remind_at": "2026-12-01T07:30:00Z",
    "next_id": None,
    "list_id": 7,
    "parent_id": None,
    "position": "a3",
    "created_at": "2026-11-20T10:15:00Z",
    "updated_at": "2026-11-20T10:15:00Z",
    "version": 1,
}
# Input examples name no list, parent or sibling: an id is valid only if it is one of the user's.
EXAMPLE_INPUT = {
    **EXAMPLE_TASK,
    "due_at": "2026-12-01T09:00:00+01:00",
    "remind_at": "2026-12-01T08:30:00+01:00",
    "list_id": None,
}
EXAMPLE_MOVE = {"parent_id": None, "list_id": None, "after": None}
# Set on POST, then changed only by …/move: read-only in PUT and PATCH (API.md §3).
MOVED_FIELDS = ("list_id", "parent_id")
LIST_ID = "The list the task is in; null: the user's inbox. A subtask is in its parent's list."
PARENT_ID = "The task this one is a subtask of; null: top level. At most 4 levels; no recurrence on either side."
POSITION = (
    "The task's place among its siblings (same `list_id` and `parent_id`): compare byte-wise (ASCII, as "
    'COLLATE "C" or JavaScript\'s `<`), ties by `id`. At most 64 characters.'
)
# What a JSON Schema can say of the recurrence fields; the rest (API.md §5) is in their descriptions.
RECURRENCE = (
    "An RFC 5545 RRULE (`RRULE:` prefix optional, case-insensitive), e.g. `FREQ=WEEKLY;BYDAY=MO,WE` or "
    "`FREQ=MONTHLY;BYDAY=-1FR`. Parts: FREQ (DAILY, WEEKLY, MONTHLY, YEARLY; required), INTERVAL and COUNT "
    "(1-1000), UNTIL (YYYYMMDD or YYYYMMDDTHHMMSSZ; not with COUNT), BYDAY (ordinals only with MONTHLY or "
    "YEARLY: 1-5 or -5 to -1 within the month with MONTHLY or beside BYMONTH, up to 53 within the year "
    "otherwise), BYMONTHDAY, BYMONTH, BYSETPOS (beside another BY part), WKST; each at most once, at most 255 "
    "characters. Needs a `due_at`, and must yield a date at or after it in `timezone`. Returned upper-cased, "
    "parts in the order given. Completing the task creates its next occurrence (`meta.next_occurrence`)."
)
RULE_PATTERN = r"^(?:[Rr][Rr][Uu][Ll][Ee]:)?[A-Za-z]+=[A-Za-z0-9+,-]+(?:;[A-Za-z]+=[A-Za-z0-9+,-]+)*$"
TIMEZONE = "IANA time zone whose wall clock the recurrence keeps, spelled as the tz database does (case-sensitive)."
REMIND_AT = "When to remind the user; due when it has passed and the task is not completed."
NEXT_ID = "The id of the occurrence created when this recurring task was completed; kept after that task is deleted."


def _with_examples(schema: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
    for name, prop in schema["properties"].items():
        prop["examples"] = [example[name]]
    return schema


def _describe_recurrence(properties: dict[str, Any]) -> None:
    properties["recurrence"].update(description=RECURRENCE, maxLength=MAX_RULE_LENGTH + len("RRULE:"))
    properties["timezone"].update(description=TIMEZONE, enum=sorted(zone_names()))
    properties["remind_at"]["description"] = REMIND_AT
    properties["recurrence"]["pattern"] = RULE_PATTERN
    del properties["timezone"]["pattern"]


def add_to_spec(spec: APISpec, converter: Any) -> None:
    spec.tag({"name": "tasks", "description": "A user's tasks (bearer token required)."})
    _add_schemas(spec, converter)
    spec.components.parameter(
        "task_id",
        "path",
        {"description": "The task's id.", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}},
    )
    add_query_parameters(spec, converter, ListQuerySchema, "list", LIST_PARAMETERS)
    for name in ("list_id", "parent_id"):  # an id, or the word `none`
        spec.components.parameters[f"list.{name}"]["schema"] = {
            "anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_ID}, {"type": "string", "enum": ["none"]}]
        }
    _add_paths(spec)


def _add_schemas(spec: APISpec, converter: Any) -> None:
    task = _with_examples(converter.schema2jsonschema(TaskSchema), EXAMPLE_TASK)
    task["properties"]["recurrence"]["description"] = RECURRENCE
    task["properties"]["timezone"]["description"] = TIMEZONE
    task["properties"]["remind_at"]["description"] = REMIND_AT
    task["properties"]["next_id"].update(description=NEXT_ID, minimum=1, maximum=MAX_ID)
    task["properties"]["list_id"].update(description=LIST_ID, minimum=1, maximum=MAX_ID)
    task["properties"]["parent_id"].update(description=PARENT_ID, minimum=1, maximum=MAX_ID)
    task["properties"]["position"].update(description=POSITION, minLength=1, maxLength=64)
    task["required"] = sorted(task["properties"])
    task["additionalProperties"] = False
    task["properties"]["id"].update(minimum=1, maximum=MAX_ID)
    task["properties"]["version"]["minimum"] = 1
    task["properties"]["priority"]["enum"] = list(PRIORITIES)
    task["description"] = "A task as the API returns it."
    spec.components.schema("Task", task)

    task_create = _with_examples(converter.schema2jsonschema(TaskCreateSchema(exclude=READ_ONLY_FIELDS)), EXAMPLE_INPUT)
    task_create["properties"]["tags"].update(default=[], maxItems=MAX_TAGS, description=TAGS)
    _describe_recurrence(task_create["properties"])
    task_create["properties"]["list_id"]["description"] = LIST_ID + " Absent under a parent: the parent's list."
    task_create["properties"]["parent_id"]["description"] = PARENT_ID
    task_create["description"] = (
        "Every writable field, and the list and parent the task starts in (it goes last among its siblings); "
        "omitted ones take their defaults. Unknown and read-only fields are a 400."
    )
    spec.components.schema("TaskCreate", task_create)

    move = _with_examples(converter.schema2jsonschema(MoveSchema), EXAMPLE_MOVE)
    move["minProperties"] = 1
    move["description"] = (
        "One or more of: `parent_id` (the new parent, null: top level; the subtasks come along), `list_id` "
        "(the new list, null: the inbox; a subtask's is its parent's), `after` (the sibling at the destination "
        "to go right after, null: first; absent: last)."
    )
    spec.components.schema("MoveInput", move)

    unmoved = (*READ_ONLY_FIELDS, *MOVED_FIELDS)
    task_input = _with_examples(converter.schema2jsonschema(TaskInputSchema(exclude=unmoved)), EXAMPLE_INPUT)
    task_input["properties"]["tags"].update(default=[], maxItems=MAX_TAGS, description=TAGS)
    _describe_recurrence(task_input["properties"])
    task_input["description"] = (
        "Every writable field; omitted ones take their defaults. Strings are trimmed where the rules say so "
        "(title, tags) and limits apply after trimming. Unknown and read-only fields are a 400."
    )
    spec.components.schema("TaskInput", task_input)

    task_patch = _with_examples(converter.schema2jsonschema(TaskPatchSchema(exclude=unmoved)), EXAMPLE_INPUT)
    task_patch["properties"]["tags"].update(maxItems=MAX_TAGS, description=TAGS)
    _describe_recurrence(task_patch["properties"])
    task_patch["minProperties"] = 1
    task_patch["description"] = "Only the fields to change, at least one. Unknown and read-only fields are a 400."
    spec.components.schema("TaskPatch", task_patch)

    complete = converter.schema2jsonschema(CompleteSchema)
    complete["description"] = "Set `completed` to this value (without a body the route toggles it)."
    spec.components.schema("CompleteInput", complete)

    spec.components.schema(
        "ListMeta",
        {
            "type": "object",
            "properties": {
                "request_id": {"type": "string"},
                "count": {"type": "integer", "minimum": 0, "description": "Tasks on this page."},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                "next_cursor": {
                    "type": ["string", "null"],
                    "description": "Pass as `cursor` for the next page; null exactly when there is none.",
                },
                "total": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Tasks matching the filters; only with `total=true`.",
                },
            },
            "required": ["request_id", "count", "limit", "next_cursor"],
        },
    )
    spec.components.schema("TaskEnvelope", envelope("Task"))
    spec.components.schema(
        "WriteMeta",
        {
            "type": "object",
            "properties": {
                "request_id": {"type": "string"},
                "next_occurrence": {
                    "$ref": "#/components/schemas/Task",
                    "description": "The next occurrence of a recurring task, when this write completed it and "
                    "so created one; absent otherwise.",
                },
            },
            "required": ["request_id"],
        },
    )
    spec.components.schema("TaskWriteEnvelope", envelope("Task", meta="WriteMeta"))
    spec.components.schema(
        "DeleteMeta",
        {
            "type": "object",
            "properties": {
                "request_id": {"type": "string"},
                "deleted_subtasks": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "How many tasks below this one were deleted with it.",
                },
            },
            "required": ["request_id", "deleted_subtasks"],
        },
    )
    spec.components.schema("TaskDeleteEnvelope", envelope("Task", meta="DeleteMeta"))
    spec.components.schema("TaskListEnvelope", envelope({"type": "array", "items": "Task"}, meta="ListMeta"))


LIST_PARAMETERS = {
    "status": "Completed, pending, or all tasks.",
    "priority": "One or more priorities, comma-separated: tasks with any of them.",
    "tag": "Repeatable: tasks carrying every tag given (case-insensitive).",
    "q": "Case-insensitive substring of the title or the description.",
    "due_before": "Tasks due before this instant (tasks without `due_at` never match).",
    "due_after": "Tasks due at or after this instant (tasks without `due_at` never match).",
    "remind_before": "Tasks whose reminder is before this instant (tasks without `remind_at` never match). Due "
    "reminders: `status=pending&remind_before=<now>&sort=remind_at`.",
    "remind_after": "Tasks whose reminder is at or after this instant (tasks without `remind_at` never match).",
    "list_id": "A list's id: that list's tasks; `none`: the inbox (tasks in no list). An id that is not one of "
    "your lists is a 400.",
    "parent_id": "A task's id: its direct subtasks; `none`: top-level tasks only. An id that is not one of your "
    "tasks is a 400.",
    "sort": "Sort key, `-` for descending; ties broken by id in the same direction. Tasks without `due_at` (for "
    "`remind_at`: without `remind_at`) come last either way; `priority` sorts by rank "
    "(`none` < `low` < `medium` < `high`); `position` byte-wise, the order a user sees among siblings (with "
    "`list_id` and `parent_id`).",
    "limit": "Page size.",
    "cursor": "Opaque: `meta.next_cursor` of the previous page, with the same sort and filters.",
    "total": "`true` adds `meta.total`, the number of tasks matching the filters.",
}


def _task_answer(
    description: str,
    *,
    created: bool = False,
    completes: bool = False,
    links: dict[str, Any] | None = None,
    schema: str = "TaskEnvelope",
) -> dict[str, Any]:
    """`completes`: the write may complete a recurring task, so meta may carry `next_occurrence`."""
    headers: dict[str, str] = {"ETag": "ETag", "X-Request-ID": "X-Request-ID"}
    if created:
        headers["Location"] = "Location"
    schema = "TaskWriteEnvelope" if completes else schema
    answer: dict[str, Any] = {"description": description, "headers": headers, "content": json_content(schema)}
    if links:
        answer["links"] = links
    return answer


def _links_to_task(*operation_ids: str, task_id: str) -> dict[str, Any]:
    """OpenAPI links from a response carrying a task to the operations on that task."""
    links = {}
    for operation_id in operation_ids:
        parameters = {"user_id": "$request.path.user_id", "task_id": task_id}
        if operation_id in ("replace_task", "patch_task", "complete_task", "delete_task"):
            parameters["header.If-Match"] = "$response.header.ETag"
        links[operation_id] = {"operationId": operation_id, "parameters": parameters}
    return links


TASK_OPERATIONS = ("get_task", "replace_task", "patch_task", "complete_task", "delete_task")


def _add_paths(spec: APISpec) -> None:
    tags = ["tasks"]
    # Per operation rather than on the path item: Swagger UI leaves path-level $refs unresolved.
    owner = ["user_id", "X-Request-ID"]
    one_task = ["user_id", "task_id", "X-Request-ID"]
    spec.path(
        "/api/{user_id}/tasks",
        operations={
            "get": {
                "operationId": "list_tasks",
                "summary": "List tasks",
                "description": "Filtered, sorted, paged by an opaque cursor (keyset pagination). Unknown or "
                "repeated parameters are a 400 naming them.",
                "tags": tags,
                "parameters": [*owner, *(f"list.{name}" for name in LIST_PARAMETERS)],
                "responses": {
                    "200": {
                        "description": "One page of tasks.",
                        "headers": {"X-Request-ID": "X-Request-ID"},
                        "content": json_content("TaskListEnvelope"),
                    },
                    **errors(400, *API_ERRORS),
                },
            },
            "post": {
                "operationId": "create_task",
                "summary": "Create a task",
                "tags": tags,
                "parameters": [*owner, "Idempotency-Key"],
                "requestBody": {"required": True, "content": json_content("TaskCreate")},
                "responses": {
                    "201": _task_answer(
                        "Created; `Location` is its URL.",
                        created=True,
                        links=_links_to_task(*TASK_OPERATIONS, task_id="$response.body#/data/id"),
                    ),
                    **errors(*BODY_ERRORS, 409, *API_ERRORS),
                },
            },
        },
    )
    by_id = "$request.path.task_id"
    spec.path(
        "/api/{user_id}/tasks/{task_id}",
        operations={
            "get": {
                "operationId": "get_task",
                "summary": "Read a task",
                "tags": tags,
                "parameters": [*one_task, "If-None-Match"],
                "responses": {
                    "200": _task_answer("The task."),
                    "304": not_modified("the task"),
                    **errors(404, *API_ERRORS),
                },
            },
            "put": {
                "operationId": "replace_task",
                "summary": "Replace a task",
                "description": "Every writable field; omitted ones take their defaults. `version` goes up by one.",
                "tags": tags,
                "parameters": [*one_task, "If-Match"],
                "requestBody": {"required": True, "content": json_content("TaskInput")},
                "responses": {
                    "200": _task_answer(
                        "The task as replaced.", completes=True, links=_links_to_task(*TASK_OPERATIONS, task_id=by_id)
                    ),
                    **errors(*BODY_ERRORS, 404, 412, *API_ERRORS),
                },
            },
            "patch": {
                "operationId": "patch_task",
                "summary": "Change some fields of a task",
                "description": "Only the fields given, at least one. `version` goes up by one.",
                "tags": tags,
                "parameters": [*one_task, "If-Match"],
                "requestBody": {"required": True, "content": json_content("TaskPatch")},
                "responses": {
                    "200": _task_answer(
                        "The task as changed.", completes=True, links=_links_to_task(*TASK_OPERATIONS, task_id=by_id)
                    ),
                    **errors(*BODY_ERRORS, 404, 412, *API_ERRORS),
                },
            },
            "delete": {
                "operationId": "delete_task",
                "summary": "Delete a task",
                "tags": tags,
                "parameters": [*one_task, "If-Match"],
                "responses": {
                    "200": _task_answer(
                        "Deleted, with every task below it; `data` is the task as it was and `ETag` its last "
                        "version; `meta.deleted_subtasks` counts the tasks below it.",
                        links=_links_to_task("get_task", task_id=by_id),
                        schema="TaskDeleteEnvelope",
                    ),
                    **errors(404, 412, *API_ERRORS),
                },
            },
        },
    )
    spec.path(
        "/api/{user_id}/tasks/{task_id}/complete",
        operations={
            "patch": {
                "operationId": "complete_task",
                "summary": "Complete, reopen or toggle a task",
                "description": 'Without a body, toggles `completed`; with `{"completed": bool}`, sets it. '
                "`completed_at` changes only when `completed` flips; `version` goes up by one either way. "
                "Completing a recurring task (one with a `recurrence` and no `next_id`) creates its next "
                "occurrence in the same transaction.",
                "tags": tags,
                "parameters": [*one_task, "If-Match"],
                "requestBody": {"required": False, "content": json_content("CompleteInput")},
                "responses": {
                    "200": _task_answer(
                        "The task; when this completed a recurring task, its new occurrence is in "
                        "`meta.next_occurrence`.",
                        completes=True,
                        links=_links_to_task(*TASK_OPERATIONS, task_id=by_id),
                    ),
                    **errors(*BODY_ERRORS, 404, 412, *API_ERRORS),
                },
            },
        },
    )
    spec.path(
        "/api/{user_id}/tasks/{task_id}/move",
        operations={
            "post": {
                "operationId": "move_task",
                "summary": "Move a task to another list, parent or place",
                "description": "Moves the task and its subtasks. `version` goes up by one, and by one on each "
                "subtask whose list changes. `after` names a sibling at the destination; a 400 names the field "
                "at fault (a cycle or a fifth level: `parent_id`).",
                "tags": tags,
                "parameters": [*one_task, "If-Match"],
                "requestBody": {"required": True, "content": json_content("MoveInput")},
                "responses": {
                    "200": _task_answer("The task as moved.", links=_links_to_task(*TASK_OPERATIONS, task_id=by_id)),
                    **errors(*BODY_ERRORS, 404, 412, *API_ERRORS),
                },
            },
        },
    )
