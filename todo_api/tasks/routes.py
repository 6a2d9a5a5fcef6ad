"""The tasks blueprint: the routes of API.md §4, each one named SQL statement in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, g, json, request
from marshmallow import ValidationError
from werkzeug.exceptions import NotFound
from werkzeug.routing import BaseConverter

from ..auth.bearer import require_user
from ..platform import idempotency
from ..platform.db import Row
from ..platform.envelope import encode_envelope
from ..platform.errors import ApiError, invalid
from . import operations
from .schemas import dump_task, list_query, load_complete, load_task_input, load_task_patch

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


def _load(load: Callable[[dict[str, Any]], dict[str, Any]], body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    try:
        return load(body)
    except ValidationError as error:
        raise invalid(error) from None


def _expected_versions() -> list[int] | None:
    """The versions If-Match accepts: None when absent or `*` (any existing task). Weak and
    malformed tags are dropped: If-Match uses the strong comparison, so they never match."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    tags = (tag.strip() for tag in header.split(","))
    return [int(tag[1:-1]) for tag in tags if len(tag) < 12 and tag[:1] == tag[-1:] == '"' and tag[1:-1].isdigit()]


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None, **meta: Any) -> Response:
    """A success envelope: plain dicts, lists, strings and numbers (dump_task formats the timestamps)."""
    body = encode_envelope(data, g.request_id, **meta)
    return current_app.response_class(body, status=status, headers=headers, mimetype="application/json")


def _etag(task: Row) -> str:
    return f'"{task["version"]}"'


def _task_response(task: Row, status: int = 200, headers: dict[str, str] | None = None, **meta: Any) -> Response:
    return json_response(dump_task(task), status, {"ETag": _etag(task), **(headers or {})}, **meta)


def _written_response(written: operations.Written) -> Response:
    """A write's response: the task, and the occurrence the write created in meta.next_occurrence."""
    if written.next_occurrence is None:
        return _task_response(written.task)
    return _task_response(written.task, next_occurrence=dump_task(written.next_occurrence))


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
    body = _json_body()
    fields = _load(load_task_input, body)
    once = None if key is None else operations.IdempotencyKey(key, idempotency.body_hash(body))
    created = operations.create_task(user_id, fields, once)
    headers = {"Location": created.location, "ETag": created.etag}
    return json_response(created.data, created.status, headers)


@bp.get(f"/{TASK_ID}")
@require_user
def get_task(user_id: str, task_id: int) -> Response:
    """Read one task. 200 with ETag; 304 when If-None-Match matches; 404."""
    task = operations.get_task(user_id, task_id)
    etag = _etag(task)
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None and _weak_match(if_none_match, etag):
        return current_app.response_class(status=304, headers={"ETag": etag})
    return _task_response(task)


def _weak_match(header: str, etag: str) -> bool:
    """If-None-Match uses the weak comparison: W/"3" matches "3"."""
    candidates = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in candidates or etag in candidates


@bp.put(f"/{TASK_ID}")
@require_user
def replace_task(user_id: str, task_id: int) -> Response:
    """Replace every writable field (omitted ones take defaults). 200 with ETag; 400, 404, 412, 413, 415."""
    fields = _load(load_task_input, _json_body())
    return _written_response(operations.update_task(user_id, task_id, fields, _expected_versions(), partial=False))


@bp.patch(f"/{TASK_ID}")
@require_user
def patch_task(user_id: str, task_id: int) -> Response:
    """Change only the fields given. 200 with ETag; 400, 404, 412, 413, 415."""
    fields = _load(load_task_patch, _json_body())
    return _written_response(operations.update_task(user_id, task_id, fields, _expected_versions()))


@bp.patch(f"/{TASK_ID}/complete")
@require_user
def complete_task(user_id: str, task_id: int) -> Response:
    """Toggle completed (no body) or set it ({"completed": bool}); completing a recurring task creates
    its next occurrence (meta.next_occurrence). 200 with ETag; 400, 404, 412, 415."""
    body = _json_body(required=False)
    completed = None if body is NO_BODY else _load(load_complete, body)["completed"]
    return _written_response(operations.complete_task(user_id, task_id, completed, _expected_versions()))


@bp.delete(f"/{TASK_ID}")
@require_user
def delete_task(user_id: str, task_id: int) -> Response:
    """Delete a task. 200 with the deleted task and its last ETag; 404, 412, 415."""
    _json_body(required=False)  # a body is not needed, but one that is not JSON is still a 415
    return _task_response(operations.delete_task(user_id, task_id, _expected_versions()))
