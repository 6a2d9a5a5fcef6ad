"""The token operations, one function each: create (with the limit), list, revoke."""

from __future__ import annotations

import logging
from typing import Any

from ...platform.db import Row, current_database
from ...platform.errors import ApiError, not_found
from . import credentials

log = logging.getLogger("todo_api.tokens")
MAX_TOKENS = 50  # per user, expired ones included (API.md §1)


def _log_write(event: str, user_id: str, token_id: int) -> None:
    log.info(event, extra={"event": event, "token_id": token_id, "user_id": user_id})


def create_token(user_id: str, fields: dict[str, Any]) -> tuple[Row, str]:
    """A new token from loaded TokenInputSchema `fields`: its row and the token, which only this
    answer ever shows. 409 limit_exceeded when the user already holds MAX_TOKENS."""
    token = credentials.mint(user_id)
    params = {**fields, "user_id": user_id, "token_hash": credentials.hash_token(token)}
    with current_database().transaction() as run:
        run.fetch_one("lock_access_tokens_of_user", {"user_id": user_id})
        held = run.fetch_one("count_access_tokens", {"user_id": user_id})
        if held["tokens"] >= MAX_TOKENS:  # type: ignore[index]
            raise ApiError(
                409,
                f"A user may hold at most {MAX_TOKENS} personal access tokens: revoke one first.",
                code="limit_exceeded",
                details={"limit": MAX_TOKENS},
            )
        row = run.fetch_one("insert_access_token", params)
    assert row is not None  # INSERT ... RETURNING returns the row
    _log_write("token.created", user_id, row["id"])
    return row, token


def list_tokens(user_id: str) -> list[Row]:
    """Every token of the user, newest first (at most MAX_TOKENS)."""
    return current_database().fetch_all("list_access_tokens", {"user_id": user_id})


def revoke_token(user_id: str, token_id: int) -> Row:
    """Delete one token of the user, which refuses it from the next request on; its metadata.
    404 when the user has none with this id."""
    row = current_database().fetch_one("delete_access_token", {"user_id": user_id, "token_id": token_id})
    if row is None:
        raise not_found("No such token.")
    _log_write("token.revoked", user_id, token_id)
    return row
