"""Marshmallow schemas of webhooks (API.md §10): the POST and PATCH bodies (url rules, event types),
a webhook and a delivery as clients see them, and the delivery log's query parameters."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from ..platform.fields import QueryArgsSchema, ReadOnly, StrictBoolean, Text, Timestamp, format_timestamp
from .addresses import RefusedAddress, check_literal

# Every event a webhook may subscribe to; "*" alone subscribes to all. webhook.test is sent by …/test only.
EVENT_TYPES = (
    "task.created",
    "task.updated",
    "task.completed",
    "task.uncompleted",
    "task.deleted",
    "list.created",
    "list.updated",
    "list.deleted",
    "reminder.due",
)
ALL_EVENTS = "*"
MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 200


class WebhookUrl(Text):
    """An absolute https:// URL (http:// where WEBHOOK_ALLOW_HTTP), at most 2,048 characters, without
    user info or fragment, whose host is not an address webhooks are never sent to (unless
    WEBHOOK_ALLOW_PRIVATE). Host names are checked at every attempt instead (they may change)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        url = super()._deserialize(value, attr, data, **kwargs)
        webhooks = current_app.config["TODO_API_SETTINGS"].webhooks
        schemes = ("https", "http") if webhooks.allow_http else ("https",)
        wanted = "an absolute https:// URL" + (" (or http://)" if webhooks.allow_http else "")
        if len(url) > MAX_URL_LENGTH:
            raise ValidationError(f"Must be at most {MAX_URL_LENGTH} characters.")
        if not url.isascii() or any(char <= " " or char == "\x7f" for char in url):
            raise ValidationError(f"Must be {wanted} of printable ASCII (percent-encode the rest).")
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
        except ValueError:
            raise ValidationError("The port must be a number from 0 to 65535.") from None
        if parts.scheme.lower() not in schemes or not parts.hostname:
            raise ValidationError(f"Must be {wanted}.")
        if "@" in parts.netloc:
            raise ValidationError("Must not carry user info (user:password@).")
        if "#" in url:
            raise ValidationError("Must not carry a fragment (#...).")
        if not webhooks.allow_private:
            try:
                check_literal(parts.hostname)
            except RefusedAddress as refused:
                raise ValidationError(f"Webhooks are never sent there: {refused}.") from None
        return url


class Events(fields.List):
    """One or more event types, or ["*"]; duplicates removed, order kept."""

    def __init__(self, **kwargs: Any):
        super().__init__(fields.String(validate=validate.OneOf((*EVENT_TYPES, ALL_EVENTS))), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        events = list(dict.fromkeys(super()._deserialize(value, attr, data, **kwargs)))
        if not events:
            raise ValidationError('Give at least one event type, or ["*"] for all.')
        if ALL_EVENTS in events and len(events) > 1:
            raise ValidationError('"*" already means every event: give it alone.')
        return events


class WebhookInputSchema(Schema):
    """POST body: url and events required."""

    class Meta:
        unknown = RAISE

    url = WebhookUrl(required=True)
    events = Events(required=True)
    description = Text(allow_none=True, validate=validate.Length(max=MAX_DESCRIPTION_LENGTH), load_default=None)
    active = StrictBoolean(load_default=True)

    id = ReadOnly()
    user_id = ReadOnly()
    disabled_reason = ReadOnly()
    secret = ReadOnly()
    created_at = ReadOnly()
    updated_at = ReadOnly()
    version = ReadOnly()


class WebhookPatchSchema(WebhookInputSchema):
    """PATCH body: only the fields given, at least one."""

    url = WebhookUrl()
    events = Events()
    description = Text(allow_none=True, validate=validate.Length(max=MAX_DESCRIPTION_LENGTH))
    active = StrictBoolean()

    @validates_schema
    def _not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ValidationError("Give at least one field to change.", "body")


class WebhookSchema(Schema):
    """A webhook as clients see it (`secret` only in the answer to the POST that created it)."""

    id = fields.Integer()
    user_id = fields.String()
    url = fields.String()
    events = fields.List(fields.String())
    description = fields.String(allow_none=True)
    active = fields.Boolean()
    disabled_reason = fields.String(allow_none=True)
    secret = fields.String(metadata={"description": "Only in the answer to the POST that created the webhook."})
    created_at = Timestamp()
    updated_at = Timestamp()
    version = fields.Integer()


class DeliverySchema(Schema):
    """One delivery of one event to one webhook."""

    id = fields.String(metadata={"description": "The webhook-id header: the same on every attempt."})
    event = fields.String()
    created_at = Timestamp()
    status = fields.String(validate=validate.OneOf(("pending", "succeeded", "failed")))
    attempts = fields.Integer()
    last_attempt_at = Timestamp(allow_none=True)
    last_status = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    next_attempt_at = Timestamp(allow_none=True)


def dump_webhook(row: dict[str, Any]) -> dict[str, Any]:
    """A webhook row as WebhookSchema dumps it; with `secret` only when the row carries it (the POST)."""
    dumped = {
        "id": row["id"],
        "user_id": row["user_id"],
        "url": row["url"],
        "events": row["events"],
        "description": row["description"],
        "active": row["active"],
        "disabled_reason": row["disabled_reason"],
        "created_at": format_timestamp(row["created_at"]),
        "updated_at": format_timestamp(row["updated_at"]),
        "version": row["version"],
    }
    if "secret" in row:
        dumped["secret"] = row["secret"]
    return dumped


def dump_delivery(row: dict[str, Any]) -> dict[str, Any]:
    """A delivery row as the API shows it; next_attempt_at only while pending."""
    pending = row["status"] == "pending"
    return {
        "id": str(row["id"]),
        "event": row["event"],
        "created_at": format_timestamp(row["created_at"]),
        "status": row["status"],
        "attempts": row["attempts"],
        "last_attempt_at": format_timestamp(row["last_attempt_at"]),
        "last_status": row["last_status"],
        "last_error": row["last_error"],
        "next_attempt_at": format_timestamp(row["next_attempt_at"]) if pending else None,
    }


class DeliveriesQuerySchema(QueryArgsSchema):
    """Query parameters of GET …/webhooks/{webhook_id}/deliveries."""

    limit = fields.Integer(strict=True, validate=validate.Range(min=1, max=100), load_default=20)
    cursor = fields.String(validate=validate.Length(min=1, max=2048), load_default=None)


webhook_input = WebhookInputSchema()
webhook_patch = WebhookPatchSchema()
deliveries_query = DeliveriesQuerySchema()
