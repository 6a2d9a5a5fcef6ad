"""The tokens blueprint: create, list and revoke personal access tokens (API.md §1). Only a JWT
may call these routes: a personal access token is refused (403 insufficient_scope), so a leaked
token cannot mint more."""

from __future__ import annotations

from flask import Blueprint, Response

from ...platform.http import json_body, json_response, load_body
from .. import scopes
from ..bearer import require_user
from . import operations
from .schemas import dump_token, token_input

bp = Blueprint("tokens", __name__, url_prefix="/api/<user_id>/tokens")
scopes.declare(bp, scopes.JWT_ONLY)


@bp.post("")
@require_user
def create_token(user_id: str) -> Response:
    """Create a token. 201 with the token, shown this once; 400, 409 limit_exceeded, 413, 415."""
    fields = load_body(token_input.load, json_body())
    row, token = operations.create_token(user_id, fields)
    return json_response({**dump_token(row), "token": token}, 201)


@bp.get("")
@require_user
def list_tokens(user_id: str) -> Response:
    """Every token of the user, newest first, without the secrets. 200."""
    data = [dump_token(row) for row in operations.list_tokens(user_id)]
    return json_response(data, count=len(data))


@bp.delete("/<token_id:token_id>")
@require_user
def revoke_token(user_id: str, token_id: int) -> Response:
    """Revoke a token: refused from the next request on, no longer listed. 200 with its metadata; 404."""
    json_body(required=False)  # a body is not needed, but one that is not JSON is still a 415
    return json_response(dump_token(operations.revoke_token(user_id, token_id)))
