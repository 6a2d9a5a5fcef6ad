"""The tasks blueprint: the routes of API.md §4, each one named SQL statement in one transaction."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, g, json, request, url_for
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import NotFound
from werkzeug.routing import BaseConverter

from . import idempotency, listing, occurrences, tokens
from .auth import require_user
from .db import Database, Row
from .errors import ApiError, not_found, validation_error
from .schemas import complete_input, dump_task, envelope, list_query, task_input, task_patch

log = logging.getLogger("todo_api.tasks")

bp = Blueprint("tasks", __name__, url_prefix="/api/<user_id>/tasks")

# Every named statement the views run: checked against sql/ at start-up.
QUERY_NAMES = (
    "insert_task",
    "get_task",
    "get_task_version",
    "lock_task",
    "update_task",
    "set_task_completed",
    "delete_task",
    "list_tasks",
    "count_tasks",
    "get_cursor_key",
    "claim_idempotency_key",
    "get_idempotent_response",
    "save_idempotent_response",
    "purge_idempotency_keys",
)
TASK_ID = "<task_id:task_id>"
MAX_TASK_ID = 2**63 - 1
NO_BODY = object()  # an absent body, told apart from a JSON `null` (which is not an object: a 400)


class TaskIdConverter(BaseConverter):
    """`{task_id}`: digits; one out of range is a 404 for every method. (werkzeug's own `int(min, max)`
    turns a range miss into a 405 when the path has rules for other methods.)"""

    regex = r"[0-9]+"
    part_isolating = True

    def to_python(self, value: str) -> int:
        digits = value.lstrip("0")
        if not digits or len(digits) > len(str(MAX_TASK_ID)) or int(digits) > MAX_TASK_ID:
            raise NotFound()  # routing runs before the request context exists: no ApiError here
        return int(digits)


def _db() -> Database:
    return current_app.extensions["todo_api.db"]


def _flatten(messages: Any) -> list[str]:
    """Marshmallow nests list-item errors by index; the envelope wants plain lists of sentences."""
    if isinstance(messages, dict):
        return [
            f"Item {key}: {text}" if isinstance(key, int) else text
            for key, value in messages.items()
            for text in _flatten(value)
        ]
    if isinstance(messages, list):
        return [text for item in messages for text in _flatten(item)]
    return [str(messages)]


def _details(error: ValidationError) -> dict[str, list[str]]:
    messages = error.normalized_messages()
    return {field: _flatten(value) for field, value in messages.items()}


def _json_body(required: bool = True) -> Any:
    """The request's JSON body: 415 if not application/json, 400 if not JSON, NO_BODY if absent."""
    raw = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    if not raw and not required:
        return NO_BODY
    if request.mimetype != "application/json":
        raise ApiError(415)
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "The request body is not valid JSON.") from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _load(schema: Schema, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    try:
        return schema.load(body)
    except ValidationError as error:
        raise validation_error(_details(error)) from None


def _expected_versions() -> list[int] | None:
    """The versions If-Match accepts: None when absent or `*` (any existing task). Weak and
    malformed tags are dropped: If-Match uses the strong comparison, so they never match."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    tags = (tag.strip() for tag in header.split(","))
    return [int(tag[1:-1]) for tag in tags if len(tag) < 12 and tag[:1] == tag[-1:] == '"' and tag[1:-1].isdigit()]


def _json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None, **meta: Any) -> Response:
    body = json.dumps(envelope(data, g.request_id, **meta))
    return current_app.response_class(body, status=status, headers=headers, mimetype="application/json")


def _etag(task: Row) -> str:
    return f'"{task["version"]}"'


def _task_response(task: Row, status: int = 200, headers: dict[str, str] | None = None, **meta: Any) -> Response:
    return _json_response(dump_task(task), status, {"ETag": _etag(task), **(headers or {})}, **meta)


def _written_response(user_id: str, written: occurrences.Written, event: str) -> Response:
    """A write's response: the task, and the occurrence it created in meta.next_occurrence."""
    _log_write(event, user_id, written.task["id"])
    if written.next_occurrence is None:
        return _task_response(written.task)
    _log_write("task.created", user_id, written.next_occurrence["id"])
    return _task_response(written.task, next_occurrence=dump_task(written.next_occurrence))


def _missing_or_moved(user_id: str, task_id: int, expected_versions: list[int] | None) -> ApiError:
    """A conditional write matched no row: 412 if the task exists at another version, else 404."""
    if expected_versions is not None and _db().fetch_one("get_task_version", {"user_id": user_id, "task_id": task_id}):
        return ApiError(412)
    return not_found()


def _log_write(event: str, user_id: str, task_id: int) -> None:
    log.info(event, extra={"event": event, "task_id": task_id, "user_id": user_id})


@bp.get("")
@require_user
def list_tasks(user_id: str) -> Response:
    """List the user's tasks, filtered, sorted and paged by cursor. 200; 400 on a bad parameter."""
    try:
        options = list_query.load_args(request.args)
        query = listing.ListQuery(options)
        codec = listing.CursorCodec(tokens.app_codec(), user_id)
        after = codec.decode(query, options["cursor"]) if options["cursor"] else None
    except ValidationError as error:
        raise validation_error(_details(error)) from None
    statement, params = listing.build_list_statement(_db().queries["list_tasks"], query, after)
    limit = options["limit"]
    params = {**params, "user_id": user_id, "page_size": limit + 1}
    meta: dict[str, Any] = {}
    prepare = False if query.plan_depends_on_values else None
    if not options["total"]:
        rows = _db().fetch_all(statement, params, prepare=prepare)
    else:  # the page and its count from one snapshot
        count_statement, count_params = listing.build_count_statement(_db().queries["count_tasks"], query)
        with _db().transaction(one_snapshot=True) as run:
            rows = run.fetch_all(statement, params, prepare=prepare)
            count = run.fetch_one(count_statement, {**count_params, "user_id": user_id}, prepare=prepare)
        meta["total"] = count["total"]  # type: ignore[index]
    page = rows[:limit]
    next_cursor = codec.encode(query, page[-1]) if len(rows) > limit else None
    data = [dump_task(row) for row in page]
    return _json_response(data, count=len(page), limit=limit, next_cursor=next_cursor, **meta)


@bp.post("")
@require_user
def create_task(user_id: str) -> Response:
    """Create a task; with Idempotency-Key, at most once per key. 201 with Location and ETag
    (a retry gets the first response again); 400, 409, 413, 415."""
    key = idempotency.key_from_request()
    body = _json_body()
    params = {**_load(task_input, body), "user_id": user_id}
    if key is None:
        first = _created(_db().fetch_one("insert_task", params))
    else:  # claim the key, insert, and remember the response, all or nothing
        with _db().transaction() as run:
            remembered = idempotency.claim(run, user_id, key, idempotency.body_hash(body))
            if remembered is not None:
                return _created_response(remembered)
            first = _created(run.fetch_one("insert_task", params))
            idempotency.remember(run, user_id, key, first)
    _log_write("task.created", user_id, first.data["id"])
    return _created_response(first)


def _created(task: Row | None) -> idempotency.Remembered:
    assert task is not None  # INSERT ... RETURNING returns the row
    location = url_for("tasks.get_task", user_id=task["user_id"], task_id=task["id"])
    return idempotency.Remembered(201, dump_task(task), location, _etag(task))


def _created_response(remembered: idempotency.Remembered) -> Response:
    """A create's response: the first one, or the one remembered for its Idempotency-Key."""
    headers = {"Location": remembered.location, "ETag": remembered.etag}
    return _json_response(remembered.data, remembered.status, headers)


@bp.get(f"/{TASK_ID}")
@require_user
def get_task(user_id: str, task_id: int) -> Response:
    """Read one task. 200 with ETag; 304 when If-None-Match matches; 404."""
    task = _db().fetch_one("get_task", {"user_id": user_id, "task_id": task_id})
    if task is None:
        raise not_found()
    etag = f'"{task["version"]}"'
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None and _weak_match(if_none_match, etag):
        return current_app.response_class(status=304, headers={"ETag": etag})
    return _task_response(task)


def _weak_match(header: str, etag: str) -> bool:
    """If-None-Match uses the weak comparison: W/"3" matches "3"."""
    candidates = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in candidates or etag in candidates


def _update(user_id: str, task_id: int, fields: dict[str, Any], *, partial: bool) -> Response:
    expected_versions = _expected_versions()
    if occurrences.needs_stored_task(fields, partial=partial):
        with _db().transaction() as run:
            written = occurrences.write(run, user_id, task_id, fields, expected_versions, partial=partial)
        return _written_response(user_id, written, "task.updated")
    params = {field: fields.get(field) for field in occurrences.WRITABLE_FIELDS}
    params.update(
        user_id=user_id, task_id=task_id, fields=list(fields), expected_versions=expected_versions, next_id=None
    )
    task = _db().fetch_one("update_task", params)
    if task is None:
        raise _missing_or_moved(user_id, task_id, expected_versions)
    _log_write("task.updated", user_id, task_id)
    return _task_response(task)


@bp.put(f"/{TASK_ID}")
@require_user
def replace_task(user_id: str, task_id: int) -> Response:
    """Replace every writable field (omitted ones take defaults). 200 with ETag; 400, 404, 412, 413, 415."""
    return _update(user_id, task_id, _load(task_input, _json_body()), partial=False)


@bp.patch(f"/{TASK_ID}")
@require_user
def patch_task(user_id: str, task_id: int) -> Response:
    """Change only the fields given. 200 with ETag; 400, 404, 412, 413, 415."""
    return _update(user_id, task_id, _load(task_patch, _json_body()), partial=True)


@bp.patch(f"/{TASK_ID}/complete")
@require_user
def complete_task(user_id: str, task_id: int) -> Response:
    """Toggle completed (no body) or set it ({"completed": bool}); completing a recurring task creates
    its next occurrence (meta.next_occurrence). 200 with ETag; 400, 404, 412, 415."""
    body = _json_body(required=False)
    completed = None if body is NO_BODY else _load(complete_input, body)["completed"]
    expected_versions = _expected_versions()
    if completed is not False:  # it may complete the task: see the stored one
        with _db().transaction() as run:
            written = occurrences.write(
                run, user_id, task_id, {"completed": completed}, expected_versions, partial=True
            )
        return _written_response(user_id, written, "task.completed" if written.task["completed"] else "task.reopened")
    task = _db().fetch_one(
        "set_task_completed",
        {"user_id": user_id, "task_id": task_id, "completed": completed, "expected_versions": expected_versions},
    )
    if task is None:
        raise _missing_or_moved(user_id, task_id, expected_versions)
    _log_write("task.completed" if task["completed"] else "task.reopened", user_id, task_id)
    return _task_response(task)


@bp.delete(f"/{TASK_ID}")
@require_user
def delete_task(user_id: str, task_id: int) -> Response:
    """Delete a task. 200 with the deleted task and its last ETag; 404, 412, 415."""
    _json_body(required=False)  # a body is not needed, but one that is not JSON is still a 415
    expected_versions = _expected_versions()
    task = _db().fetch_one(
        "delete_task", {"user_id": user_id, "task_id": task_id, "expected_versions": expected_versions}
    )
    if task is None:
        raise _missing_or_moved(user_id, task_id, expected_versions)
    _log_write("task.deleted", user_id, task_id)
    return _task_response(task)
