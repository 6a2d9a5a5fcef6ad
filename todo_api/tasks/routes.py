"""The tasks blueprint: the routes of API.md §4, each one named SQL statement in one transaction."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request, url_for
from marshmallow import ValidationError

from ..auth import scopes
from ..auth.bearer import require_user
from ..platform import idempotency
from ..platform.db import Row
from ..platform.errors import invalid
from ..platform.http import (
    NO_BODY,
    etag,
    expected_versions,
    json_body,
    json_response,
    load_body,
    read_response,
    versioned_response,
)
from . import operations
from .schemas import (
    dump_task,
    list_query,
    load_complete,
    load_task_create,
    load_task_input,
    load_task_patch,
    move_input,
)

bp = Blueprint("tasks", __name__, url_prefix="/api/<user_id>/tasks")
scopes.declare(bp, read=scopes.READ, write=scopes.WRITE)

TASK_ID = "<task_id:task_id>"  # the converter is platform.http.IdConverter


def _task_response(task: Row, **meta: Any) -> Response:
    return versioned_response(dump_task(task), task["version"], **meta)


def _written_response(written: operations.Written) -> Response:
    """A write's response: the task, and the occurrence the write created in meta.next_occurrence."""
    if written.next_occurrence is None:
        return _task_response(written.task)
    return _task_response(written.task, next_occurrence=dump_task(written.next_occurrence))


def _created(task: Row) -> idempotency.Remembered:
    """A create's answer: 201 with the task, its URL and its ETag (what a retry with its key gets back)."""
    location = url_for("tasks.get_task", user_id=task["user_id"], task_id=task["id"])
    return idempotency.Remembered(201, dump_task(task), location, etag(task["version"]))


@bp.get("")
@require_user
def list_tasks(user_id: str) -> Response:
    """List the user's tasks, filtered, sorted and paged by cursor. 200; 400 on a bad parameter."""
    try:
        options = list_query.load_args(request.args)
    except ValidationError as error:
        raise invalid(error) from None
    page = operations.list_tasks(user_id, options)
    meta = {} if page.total is None else {"total": page.total}
    data = [dump_task(row) for row in page.tasks]
    return json_response(data, count=len(data), limit=options["limit"], next_cursor=page.next_cursor, **meta)


@bp.post("")
@require_user
def create_task(user_id: str) -> Response:
    """Create a task; with Idempotency-Key, at most once per key. 201 with Location and ETag
    (a retry gets the first response again); 400, 409, 413, 415."""
    key = idempotency.key_from_request()
    body = json_body()
    fields = load_body(load_task_create, body)
    if key is None:
        created = _created(operations.create_task(user_id, fields))
    else:
        created = operations.create_task_once(user_id, fields, key, idempotency.body_hash(body), _created)
    headers = {"Location": created.location, "ETag": created.etag}
    return json_response(created.data, created.status, headers)


@bp.get(f"/{TASK_ID}")
@require_user
def get_task(user_id: str, task_id: int) -> Response:
    """Read one task. 200 with ETag; 304 when If-None-Match matches; 404."""
    return read_response(operations.get_task(user_id, task_id), dump_task)


@bp.put(f"/{TASK_ID}")
@require_user
def replace_task(user_id: str, task_id: int) -> Response:
    """Replace every writable field (omitted ones take defaults). 200 with ETag; 400, 404, 412, 413, 415."""
    fields = load_body(load_task_input, json_body())
    return _written_response(operations.update_task(user_id, task_id, fields, expected_versions(), partial=False))


@bp.patch(f"/{TASK_ID}")
@require_user
def patch_task(user_id: str, task_id: int) -> Response:
    """Change only the fields given. 200 with ETag; 400, 404, 412, 413, 415."""
    fields = load_body(load_task_patch, json_body())
    return _written_response(operations.update_task(user_id, task_id, fields, expected_versions()))


@bp.patch(f"/{TASK_ID}/complete")
@require_user
def complete_task(user_id: str, task_id: int) -> Response:
    """Toggle completed (no body) or set it ({"completed": bool}); completing a recurring task creates
    its next occurrence (meta.next_occurrence). 200 with ETag; 400, 404, 412, 415."""
    body = json_body(required=False)
    completed = None if body is NO_BODY else load_body(load_complete, body)["completed"]
    return _written_response(operations.complete_task(user_id, task_id, completed, expected_versions()))


@bp.delete(f"/{TASK_ID}")
@require_user
def delete_task(user_id: str, task_id: int) -> Response:
    """Delete a task. 200 with the deleted task and its last ETag; 404, 412, 415."""
    json_body(required=False)  # a body is not needed, but one that is not JSON is still a 415
    deleted = operations.delete_task(user_id, task_id, expected_versions())
    return _task_response(deleted.task, deleted_subtasks=deleted.subtasks)


@bp.post(f"/{TASK_ID}/move")
@require_user
def move_task(user_id: str, task_id: int) -> Response:
    """Move a task to another list, parent or place among its siblings ({parent_id, list_id, after}).
    200 with ETag; 400, 404, 412, 413, 415."""
    request_fields = load_body(move_input.load, json_body())
    return _task_response(operations.move_task(user_id, task_id, request_fields, expected_versions()))
