"""The webhook operations, one function each (the REST routes call them): each takes the token's user
and input its surface has validated, runs its named statements (sql/webhooks.sql) and returns rows or
raises ApiError."""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from marshmallow import ValidationError
from psycopg.types.json import Jsonb

from ..platform import idempotency, sealing
from ..platform.db import Row, Runner, current_database
from ..platform.errors import ApiError, invalid
from .errors import too_many_webhooks, webhook_not_found
from .schemas import dump_webhook

log = logging.getLogger("todo_api.webhooks")

MAX_WEBHOOKS = 10
# Idempotency keys are kept per user; a webhook's carry this prefix (hashed in), so that one key sent
# to /tasks and to /webhooks names two requests (API.md §4).
KEY_SCOPE = "webhooks"
SECRET_BYTES = 32
CURSOR = sealing.Purpose("webhook deliveries cursor")


@dataclass(frozen=True)
class DeliveryPage:
    """One page of a webhook's delivery log, and the cursor of the next page (None on the last)."""

    deliveries: list[Row]
    next_cursor: str | None


def _log_write(event: str, user_id: str, webhook: Row) -> None:
    """webhook.created/updated/deleted with the ids and the url's host (never its path, query or the secret)."""
    host = urlsplit(webhook["url"]).hostname
    log.info(event, extra={"event": event, "webhook_id": webhook["id"], "user_id": user_id, "host": host})


def new_secret() -> str:
    """whsec_ and the padded standard base64 of 32 random bytes (44 characters), as Standard Webhooks has it."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def create_webhook(user_id: str, fields: dict[str, Any]) -> Row:
    """Register a webhook from loaded WebhookInputSchema `fields`; returns it with its secret. 409
    limit_exceeded past MAX_WEBHOOKS (two registrations at once are serialised, so neither slips past)."""
    with current_database().transaction() as run:
        webhook = _insert(run, user_id, fields)
    _log_write("webhook.created", user_id, webhook)
    return webhook


def create_webhook_once(
    user_id: str,
    fields: dict[str, Any],
    key: str,
    request_hash: str,
    answer: Callable[[Row], idempotency.Remembered],
) -> idempotency.Remembered:
    """create_webhook at most once per Idempotency-Key (as tasks' create_task_once), the key scoped to
    webhooks: returns `answer(webhook)`, or the answer remembered for the key (409 if it cannot be).
    The remembered answer holds the secret, as the webhook's row does, for the key's 24 hours."""
    scoped = f"{KEY_SCOPE}:{idempotency.body_hash(key)}"
    with current_database().transaction() as run:
        remembered = idempotency.claim(run, user_id, scoped, request_hash)
        if remembered is not None:
            return remembered
        webhook = _insert(run, user_id, fields)
        first = answer(webhook)
        idempotency.remember(run, user_id, scoped, first)
    _log_write("webhook.created", user_id, webhook)
    return first


def _insert(run: Runner, user_id: str, fields: dict[str, Any]) -> Row:
    """Insert the webhook under the user's lock; 409 limit_exceeded past MAX_WEBHOOKS (nothing written)."""
    run.fetch_one("lock_user_webhooks", {"user_id": user_id})
    webhook = run.fetch_one(
        "insert_webhook", {**fields, "user_id": user_id, "secret": new_secret(), "limit": MAX_WEBHOOKS}
    )
    if webhook is None:
        raise too_many_webhooks(MAX_WEBHOOKS)
    return webhook


def list_webhooks(user_id: str) -> list[Row]:
    """Every webhook of the user, oldest first, without secrets."""
    return current_database().fetch_all("list_webhooks", {"user_id": user_id})


def get_webhook(user_id: str, webhook_id: int) -> Row:
    """One webhook of the user; 404 when there is none with this id."""
    webhook = current_database().fetch_one("get_webhook", {"user_id": user_id, "webhook_id": webhook_id})
    if webhook is None:
        raise webhook_not_found()
    return webhook


def _missing_or_moved(user_id: str, webhook_id: int, expected_versions: list[int] | None) -> ApiError:
    """A conditional write matched no row: 412 if the webhook exists at another version, else 404."""
    params = {"user_id": user_id, "webhook_id": webhook_id}
    if expected_versions is not None and current_database().fetch_one("get_webhook_version", params):
        return ApiError(412)
    return webhook_not_found()


def update_webhook(
    user_id: str, webhook_id: int, fields: dict[str, Any], expected_versions: list[int] | None = None
) -> Row:
    """Change the loaded WebhookPatchSchema `fields` if the version still matches; `active: true`
    clears disabled_reason. 404, 412."""
    params = {
        "url": None,
        "events": None,
        "description": None,
        "active": None,
        **fields,
        "fields": list(fields),
        "user_id": user_id,
        "webhook_id": webhook_id,
        "expected_versions": expected_versions,
    }
    webhook = current_database().fetch_one("update_webhook", params)
    if webhook is None:
        raise _missing_or_moved(user_id, webhook_id, expected_versions)
    _log_write("webhook.updated", user_id, webhook)
    return webhook


def delete_webhook(user_id: str, webhook_id: int, expected_versions: list[int] | None = None) -> Row:
    """Remove a webhook and every delivery of it (pending ones are dropped); returns it. 404, 412."""
    params = {"user_id": user_id, "webhook_id": webhook_id, "expected_versions": expected_versions}
    webhook = current_database().fetch_one("delete_webhook", params)
    if webhook is None:
        raise _missing_or_moved(user_id, webhook_id, expected_versions)
    _log_write("webhook.deleted", user_id, webhook)
    return webhook


def queue_test(user_id: str, webhook_id: int, now: str) -> Row:
    """Queue a webhook.test event for this webhook alone, its data the webhook as GET returns it and
    its timestamp `now`; returns the delivery. 404."""
    webhook = get_webhook(user_id, webhook_id)
    payload = {"type": "webhook.test", "timestamp": now, "data": dump_webhook(webhook)}
    params = {"user_id": user_id, "webhook_id": webhook_id, "payload": Jsonb(payload)}
    delivery = current_database().fetch_one("insert_test_delivery", params)
    if delivery is None:  # deleted between the two statements
        raise webhook_not_found()
    return delivery


def list_deliveries(user_id: str, webhook_id: int, limit: int, cursor: str | None) -> DeliveryPage:
    """One page of the webhook's deliveries, newest first; 404 for no such webhook, 400 naming
    `cursor` for a cursor this log did not issue."""
    get_webhook(user_id, webhook_id)
    context = str(webhook_id)
    after_created_at, after_id = _open_cursor(user_id, context, cursor) if cursor else (None, None)
    params = {
        "user_id": user_id,
        "webhook_id": webhook_id,
        "after_created_at": after_created_at,
        "after_id": after_id,
        "page_size": limit + 1,
    }
    rows = current_database().fetch_all("list_deliveries", params)
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        payload = json.dumps([last["created_at"].isoformat(), str(last["id"])]).encode()
        next_cursor = sealing.app_codec().seal(CURSOR, payload, user_id=user_id, context=context)
    return DeliveryPage(page, next_cursor)


def _open_cursor(user_id: str, context: str, cursor: str) -> tuple[datetime, UUID]:
    """The (created_at, id) a cursor points after; 400 naming `cursor` otherwise."""
    try:
        created_at, delivery_id = json.loads(sealing.app_codec().open(CURSOR, cursor, user_id=user_id, context=context))
        return datetime.fromisoformat(created_at), UUID(delivery_id)
    except (sealing.InvalidToken, ValueError, TypeError):
        raise invalid(ValidationError({"cursor": ["Not a cursor of this delivery log."]})) from None
