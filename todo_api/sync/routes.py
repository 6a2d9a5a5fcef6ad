"""GET /api/{user_id}/sync (API.md §6): what changed since a token, in pages.

A token is a position in the user's change numbers, with a horizon for the deletions (sealed, see
platform/sealing.py). Every write to a task takes the user's next number in a trigger
(migrations/0007) whose row lock orders the numbers as the transactions commit, so one snapshot that
sees number n sees every number below it: "every change after p" never skips a write that commits
late. docs/sync.md has the argument in full, and why a first walk's horizon is the counter it began at.

Sync reads over the features: its answers carry tasks in their API shape (tasks.schemas.dump_task)
and it runs the tasks feature's forgetting of old deletions; no feature imports sync.
"""

from __future__ import annotations

import struct
from typing import Any

from flask import Blueprint, Response, current_app, request
from marshmallow import ValidationError

from ..auth import scopes
from ..auth.bearer import require_user
from ..lists.schemas import dump_list
from ..platform import sealing
from ..platform.db import current_database
from ..platform.errors import ApiError, invalid
from ..platform.fields import format_timestamp
from ..platform.http import json_response
from ..tasks.operations import forget_deletions
from ..tasks.schemas import dump_task
from .schemas import sync_query

bp = Blueprint("sync", __name__, url_prefix="/api/<user_id>/sync")
scopes.declare(bp, read=scopes.READ, write=scopes.WRITE)

TOKEN = sealing.Purpose("sync token")
TOKEN_EXPIRED = "This sync token is older than the deletions still remembered: sync again without a token."
# A token holds its position and its horizon: the change number up to which forgetting a deletion
# cannot hurt its holder (docs/sync.md). A token whose horizon is its position holds only the position
# (the layout of every token handed out before horizons existed); a first walk's pages hold both.
_POSITION = struct.Struct(">Q")
_POSITION_AND_HORIZON = struct.Struct(">QQ")


def _opened(user_id: str, token: str) -> tuple[int, int]:
    """The position and horizon a token holds; ValidationError naming `token` unless this service
    sealed it for this user."""
    try:
        payload = sealing.app_codec().open(TOKEN, token, user_id=user_id)
        if len(payload) == _POSITION.size:
            (position,) = _POSITION.unpack(payload)
            return position, position
        position, horizon = _POSITION_AND_HORIZON.unpack(payload)
    except (sealing.InvalidToken, struct.error):
        raise ValidationError({"token": ["Not a sync token of this user (changed or made up)."]}) from None
    return position, horizon


def _token(user_id: str, position: int, horizon: int) -> str:
    payload = _POSITION.pack(position) if horizon == position else _POSITION_AND_HORIZON.pack(position, horizon)
    return sealing.app_codec().seal(TOKEN, payload, user_id=user_id)


def _deleted(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "deleted_at": format_timestamp(row["deleted_at"])}


@bp.get("")
@require_user
def sync(user_id: str) -> Response:
    """Tasks and lists changed and deleted since `token` (without one: every task and list), up to `limit`.
    200; 400 naming a bad parameter; 410 sync_token_expired when a deletion after the token was forgotten."""
    try:
        options = sync_query.load_args(request.args)
        after, horizon = (None, None) if options["token"] is None else _opened(user_id, options["token"])
    except ValidationError as error:
        raise invalid(error) from None
    limit = options["limit"]
    params = {
        "user_id": user_id,
        "after": after or 0,
        "deleted_after": horizon,  # None on a first page: the client has nothing to delete
        "page_size": limit + 1,
        "retention_days": current_app.config["TODO_API_SETTINGS"].sync_retention_days,
    }
    rows = current_database().fetch_all("sync_changes", params)
    state = rows[0]  # one snapshot's counter, on every row
    # Ahead of the counter: a token from before a restore of the database; the client must start over too.
    if horizon is not None and not state["forgotten_seq"] <= horizon <= state["last_seq"]:
        raise ApiError(410, TOKEN_EXPIRED, code="sync_token_expired")
    changes = [row for row in rows if row["sync_seq"] is not None]
    page, has_more = changes[:limit], len(changes) > limit
    # Nothing left: the snapshot holds every change up to its counter, so the next sync starts there.
    position = page[-1]["sync_seq"] if has_more else state["last_seq"]
    # A first walk's horizon is the counter its first page saw: the client holds no task deleted by then.
    horizon = max(state["last_seq"] if horizon is None else horizon, position)
    if state["deletions_due"]:
        forget_deletions(user_id)  # after the read: this answer still holds what it forgets
    data = {
        "tasks": [dump_task(row) for row in page if row["kind"] == "task"],
        "deleted": [_deleted(row) for row in page if row["kind"] == "deleted"],
        "lists": [dump_list(row) for row in page if row["kind"] == "list"],
        "deleted_lists": [_deleted(row) for row in page if row["kind"] == "deleted_list"],
    }
    return json_response(data, sync_token=_token(user_id, position, horizon), has_more=has_more)
