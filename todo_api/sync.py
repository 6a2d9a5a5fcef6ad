"""GET /api/{user_id}/sync (API.md §6): what changed since a token, in pages.

A token is a position in the user's change numbers (sealed, see tokens.py). Every write to a task
takes the user's next number in a trigger (migrations/0007) whose row lock orders the numbers as
the transactions commit, so one snapshot that sees number n sees every number below it: "every
change after p" never skips a write that commits late. docs/sync.md has the argument in full.
"""

from __future__ import annotations

import struct
from typing import Any

from flask import Blueprint, Response, current_app, request
from marshmallow import ValidationError

from . import tokens
from .auth import require_user
from .errors import ApiError, invalid
from .operations import database
from .schemas import dump_task, format_timestamp, sync_query
from .tasks import json_response

bp = Blueprint("sync", __name__, url_prefix="/api/<user_id>/sync")

QUERY_NAMES = ("sync_changes",)
_POSITION = struct.Struct(">Q")


def _position(user_id: str, token: str) -> int:
    """The position a token holds; ValidationError naming `token` unless this service sealed it for this user."""
    try:
        (position,) = _POSITION.unpack(tokens.app_codec().open(tokens.Purpose.SYNC, token, user_id=user_id))
    except (tokens.InvalidToken, struct.error):
        raise ValidationError({"token": ["Not a sync token of this user (changed or made up)."]}) from None
    return position


def _token(user_id: str, position: int) -> str:
    return tokens.app_codec().seal(tokens.Purpose.SYNC, _POSITION.pack(position), user_id=user_id)


def _deleted(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "deleted_at": format_timestamp(row["deleted_at"])}


@bp.get("")
@require_user
def sync(user_id: str) -> Response:
    """Tasks changed and deleted since `token` (without one: every task), up to `limit`.
    200; 400 naming a bad parameter; 410 sync_token_expired when a deletion after the token was forgotten."""
    try:
        options = sync_query.load_args(request.args)
        after = None if options["token"] is None else _position(user_id, options["token"])
    except ValidationError as error:
        raise invalid(error) from None
    limit = options["limit"]
    params = {
        "user_id": user_id,
        "after": after or 0,
        "with_deleted": after is not None,  # a first sync lists tasks only: the client has nothing to delete
        "page_size": limit + 1,
        "retention_days": current_app.config["TODO_API_SETTINGS"].sync_retention_days,
    }
    rows = database().fetch_all("sync_changes", params)
    state = rows[0]  # one snapshot's counter, on every row
    # Ahead of the counter: a token from before a restore of the database; the client must start over too.
    if after is not None and not state["forgotten_seq"] <= after <= state["last_seq"]:
        raise ApiError(410, code="sync_token_expired")
    changes = [row for row in rows if row["sync_seq"] is not None]
    page, has_more = changes[:limit], len(changes) > limit
    # Nothing left: the snapshot holds every change up to its counter, so the next sync starts there.
    position = page[-1]["sync_seq"] if has_more else state["last_seq"]
    data = {
        "tasks": [dump_task(row) for row in page if row["deleted_at"] is None],
        "deleted": [_deleted(row) for row in page if row["deleted_at"] is not None],
    }
    return json_response(data, sync_token=_token(user_id, position), has_more=has_more)
