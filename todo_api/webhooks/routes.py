"""The webhooks blueprint: the routes of API.md §10."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, request, url_for
from marshmallow import ValidationError

from ..auth import scopes
from ..auth.bearer import require_user
from ..platform import idempotency
from ..platform.db import Row
from ..platform.errors import invalid
from ..platform.fields import format_timestamp
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
from .schemas import deliveries_query, dump_delivery, dump_webhook, webhook_input, webhook_patch

bp = Blueprint("webhooks", __name__, url_prefix="/api/<user_id>/webhooks")
scopes.declare(bp, scopes.WEBHOOKS)  # every method: a token needs the webhooks scope (API.md §1)

WEBHOOK_ID = "<webhook_id:webhook_id>"  # the converter is platform.http.IdConverter


def _webhook_response(webhook: Row) -> Response:
    return versioned_response(dump_webhook(webhook), webhook["version"])


@bp.get("")
@require_user
def list_webhooks(user_id: str) -> Response:
    """The user's webhooks (at most 10), without secrets. 200."""
    data = [dump_webhook(row) for row in operations.list_webhooks(user_id)]
    return json_response(data, count=len(data))


@bp.post("")
@require_user
def create_webhook(user_id: str) -> Response:
    """Register a webhook; with Idempotency-Key, at most once per key (a retry gets the first response
    again, secret included). 201 with Location, ETag and the secret; 400, 409 (limit_exceeded,
    idempotency_conflict), 413, 415."""
    key = idempotency.key_from_request()
    body = json_body()
    fields = load_body(webhook_input.load, body)
    if key is None:
        created = _created(operations.create_webhook(user_id, fields))
    else:
        created = operations.create_webhook_once(user_id, fields, key, idempotency.body_hash(body), _created)
    return json_response(created.data, created.status, {"Location": created.location, "ETag": created.etag})


def _created(webhook: Row) -> idempotency.Remembered:
    """A create's answer: 201 with the webhook and its secret, its URL and its ETag."""
    location = url_for("webhooks.get_webhook", user_id=webhook["user_id"], webhook_id=webhook["id"])
    return idempotency.Remembered(201, dump_webhook(webhook), location, etag(webhook["version"]))


@bp.get(f"/{WEBHOOK_ID}")
@require_user
def get_webhook(user_id: str, webhook_id: int) -> Response:
    """Read one webhook. 200 with ETag; 304 when If-None-Match matches; 404."""
    return read_response(operations.get_webhook(user_id, webhook_id), dump_webhook)


@bp.patch(f"/{WEBHOOK_ID}")
@require_user
def patch_webhook(user_id: str, webhook_id: int) -> Response:
    """Change url, events, description or active. 200 with ETag; 400, 404, 412, 413, 415."""
    fields = load_body(webhook_patch.load, json_body())
    return _webhook_response(operations.update_webhook(user_id, webhook_id, fields, expected_versions()))


@bp.delete(f"/{WEBHOOK_ID}")
@require_user
def delete_webhook(user_id: str, webhook_id: int) -> Response:
    """Remove a webhook; its pending deliveries are dropped. 200 with the webhook; 404, 412, 415."""
    json_body(required=False)  # a body is not needed, but one that is not JSON is still a 415
    return _webhook_response(operations.delete_webhook(user_id, webhook_id, expected_versions()))


@bp.post(f"/{WEBHOOK_ID}/test")
@require_user
def test_webhook(user_id: str, webhook_id: int) -> Response:
    """Queue a webhook.test event for this webhook alone. 202 with the delivery; 404, 415."""
    json_body(required=False)
    delivery = operations.queue_test(user_id, webhook_id, format_timestamp(datetime.now(UTC)) or "")
    return json_response(dump_delivery(delivery), 202)


@bp.get(f"/{WEBHOOK_ID}/deliveries")
@require_user
def list_deliveries(user_id: str, webhook_id: int) -> Response:
    """The webhook's deliveries, newest first, paged by cursor. 200; 400 on a bad parameter; 404."""
    try:
        options = deliveries_query.load_args(request.args)
    except ValidationError as error:
        raise invalid(error) from None
    page = operations.list_deliveries(user_id, webhook_id, options["limit"], options["cursor"])
    data = [dump_delivery(row) for row in page.deliveries]
    return json_response(data, count=len(data), limit=options["limit"], next_cursor=page.next_cursor)
