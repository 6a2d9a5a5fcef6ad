"""The lists blueprint: the routes of API.md §8."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, url_for

from ..auth import scopes
from ..auth.bearer import require_user
from ..platform import idempotency
from ..platform.db import Row
from ..platform.http import (
    etag,
    expected_versions,
    json_body,
    json_response,
    load_body,
    read_response,
    versioned_response,
)
from . import operations
from .schemas import dump_list, list_input, list_move, list_patch

bp = Blueprint("lists", __name__, url_prefix="/api/<user_id>/lists")
scopes.declare(bp, read=scopes.READ, write=scopes.WRITE)

LIST_ID = "<list_id:list_id>"  # the converter is platform.http.IdConverter


def _list_response(found: Row, **meta: Any) -> Response:
    return versioned_response(dump_list(found), found["version"], **meta)


def _created(created: Row) -> idempotency.Remembered:
    """A create's answer: 201 with the list, its URL and its ETag (what a retry with its key gets back)."""
    location = url_for("lists.get_list", user_id=created["user_id"], list_id=created["id"])
    return idempotency.Remembered(201, dump_list(created), location, etag(created["version"]))


@bp.get("")
@require_user
def list_lists(user_id: str) -> Response:
    """Every list of the user, in position order. 200."""
    data = [dump_list(row) for row in operations.list_lists(user_id)]
    return json_response(data, count=len(data))


@bp.post("")
@require_user
def create_list(user_id: str) -> Response:
    """Create a list, last; with Idempotency-Key, at most once per key. 201 with Location and ETag;
    400, 409 (limit_exceeded, idempotency_conflict), 413, 415."""
    key = idempotency.key_from_request()
    body = json_body()
    fields = load_body(list_input.load, body)
    if key is None:
        created = _created(operations.create_list(user_id, fields))
    else:
        created = operations.create_list_once(user_id, fields, key, idempotency.body_hash(body), _created)
    return json_response(created.data, created.status, {"Location": created.location, "ETag": created.etag})


@bp.get(f"/{LIST_ID}")
@require_user
def get_list(user_id: str, list_id: int) -> Response:
    """Read one list. 200 with ETag; 304 when If-None-Match matches; 404."""
    return read_response(operations.get_list(user_id, list_id), dump_list)


@bp.patch(f"/{LIST_ID}")
@require_user
def rename_list(user_id: str, list_id: int) -> Response:
    """Rename a list. 200 with ETag; 400, 404, 412, 413, 415."""
    fields = load_body(list_patch.load, json_body())
    return _list_response(operations.rename_list(user_id, list_id, fields, expected_versions()))


@bp.post(f"/{LIST_ID}/move")
@require_user
def move_list(user_id: str, list_id: int) -> Response:
    """Reorder a list: {"after": id or null} (null: first; absent: last). 200 with ETag; 400, 404, 412."""
    request_fields = load_body(list_move.load, json_body())
    return _list_response(operations.move_list(user_id, list_id, request_fields, expected_versions()))


@bp.delete(f"/{LIST_ID}")
@require_user
def delete_list(user_id: str, list_id: int) -> Response:
    """Delete a list and its tasks. 200 with the deleted list, its last ETag and meta.deleted_tasks; 404, 412."""
    json_body(required=False)  # a body is not needed, but one that is not JSON is still a 415
    deleted = operations.delete_list(user_id, list_id, expected_versions())
    return _list_response(deleted.list, deleted_tasks=deleted.tasks)
