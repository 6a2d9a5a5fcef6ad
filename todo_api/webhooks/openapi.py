"""The webhooks feature in the OpenAPI document: its schemas (from schemas.py), parameters and paths."""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from ..platform.apidoc import (
    API_ERRORS,
    BODY_ERRORS,
    add_error_response,
    add_query_parameters,
    envelope,
    errors,
    json_content,
    not_modified,
)
from ..platform.http import MAX_ID
from .schemas import (
    ALL_EVENTS,
    EVENT_TYPES,
    DeliveriesQuerySchema,
    DeliverySchema,
    WebhookInputSchema,
    WebhookPatchSchema,
    WebhookSchema,
)

CONFLICT = "WebhookConflict"
WRITABLE = ("url", "events", "description", "active")
URL = (
    "An absolute `https://` URL (`http://` only where `WEBHOOK_ALLOW_HTTP=true`), at most 2,048 characters, "
    "without user info or fragment. A host that is a loopback, private, link-local, shared, multicast, "
    "unspecified or reserved address is a 400; a host name is checked at every attempt."
)
EVENTS = 'Event types to receive, or `["*"]` for all; duplicates removed.'
DELIVERY_PARAMETERS = {"limit": "Page size.", "cursor": "Opaque: `meta.next_cursor` of the previous page."}


def add_to_spec(spec: APISpec, converter: Any) -> None:
    spec.tag(
        {
            "name": "webhooks",
            "description": "Endpoints that receive task events and due reminders, signed as Standard Webhooks.",
        }
    )
    _add_schemas(spec, converter)
    spec.components.parameter(
        "webhook_id",
        "path",
        {"description": "The webhook's id.", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}},
    )
    add_query_parameters(spec, converter, DeliveriesQuerySchema, "deliveries", DELIVERY_PARAMETERS)
    add_error_response(
        spec,
        409,
        CONFLICT,
        ("limit_exceeded", "idempotency_conflict"),
        "`limit_exceeded`: the user has 10 webhooks already; `error.details.limit` says so. "
        "`idempotency_conflict`: an Idempotency-Key was reused with another body or is still in flight.",
    )
    _add_paths(spec)


def _events(schema: dict[str, Any]) -> None:
    events = schema["properties"]["events"]
    events.update(minItems=1, description=EVENTS)
    events["items"]["enum"] = [*EVENT_TYPES, ALL_EVENTS]


def _add_schemas(spec: APISpec, converter: Any) -> None:
    webhook = converter.schema2jsonschema(WebhookSchema)
    webhook["properties"]["id"].update(minimum=1, maximum=MAX_ID)
    webhook["required"] = sorted(name for name in webhook["properties"] if name != "secret")
    webhook["additionalProperties"] = False
    webhook["description"] = "A webhook as the API returns it."
    spec.components.schema("Webhook", webhook)
    for name, schema_class, description in (
        ("WebhookInput", WebhookInputSchema, "A webhook to register. Unknown and read-only fields are a 400."),
        (
            "WebhookPatch",
            WebhookPatchSchema,
            "Only the fields to change, at least one; `active: true` clears `disabled_reason`.",
        ),
    ):
        schema = converter.schema2jsonschema(schema_class(only=WRITABLE))
        schema["properties"]["url"].update(description=URL, maxLength=2048)
        _events(schema)
        schema["description"] = description
        if name == "WebhookPatch":
            schema["minProperties"] = 1
        spec.components.schema(name, schema)
    delivery = converter.schema2jsonschema(DeliverySchema)
    delivery["required"] = sorted(delivery["properties"])
    delivery["additionalProperties"] = False
    delivery["description"] = "One event's delivery to one webhook."
    spec.components.schema("Delivery", delivery)
    spec.components.schema("WebhookEnvelope", envelope("Webhook"))
    spec.components.schema("DeliveryEnvelope", envelope("Delivery"))
    spec.components.schema(
        "WebhookListMeta",
        {
            "type": "object",
            "properties": {"request_id": {"type": "string"}, "count": {"type": "integer", "minimum": 0}},
            "required": ["request_id", "count"],
        },
    )
    spec.components.schema("WebhookListEnvelope", envelope({"type": "array", "items": "Webhook"}, "WebhookListMeta"))
    # the listing's meta (tasks/openapi.py): count, limit and next_cursor, the same keyset paging
    spec.components.schema("DeliveryListEnvelope", envelope({"type": "array", "items": "Delivery"}, "ListMeta"))


WEBHOOK_OPERATIONS = ("get_webhook", "patch_webhook", "delete_webhook", "test_webhook", "list_deliveries")


def _answer(description: str, schema: str, *, etag: bool = True, created: bool = False) -> dict[str, Any]:
    headers = {"X-Request-ID": "X-Request-ID"}
    if etag:
        headers["ETag"] = "ETag"
    answer: dict[str, Any] = {"description": description, "headers": headers, "content": json_content(schema)}
    if created:
        headers["Location"] = "Location"
        answer["links"] = {  # from the new webhook to what can be done with it
            operation_id: {
                "operationId": operation_id,
                "parameters": {"user_id": "$request.path.user_id", "webhook_id": "$response.body#/data/id"},
            }
            for operation_id in WEBHOOK_OPERATIONS
        }
    return answer


def _add_paths(spec: APISpec) -> None:
    tags = ["webhooks"]
    owner = ["user_id", "X-Request-ID"]
    one = ["user_id", "webhook_id", "X-Request-ID"]
    spec.path(
        "/api/{user_id}/webhooks",
        operations={
            "get": {
                "operationId": "list_webhooks",
                "summary": "List webhooks",
                "tags": tags,
                "parameters": owner,
                "responses": {
                    "200": _answer("The user's webhooks, without secrets.", "WebhookListEnvelope", etag=False),
                    **errors(*API_ERRORS),
                },
            },
            "post": {
                "operationId": "create_webhook",
                "summary": "Register a webhook",
                "description": "`data.secret` (`whsec_…`) is shown in this answer only (and to a retry with "
                "its Idempotency-Key, within 24 hours): receivers verify signatures with it.",
                "tags": tags,
                "parameters": [*owner, "Idempotency-Key"],
                "requestBody": {"required": True, "content": json_content("WebhookInput")},
                "responses": {
                    "201": _answer("Registered; `Location` is its URL.", "WebhookEnvelope", created=True),
                    **errors(*BODY_ERRORS, *API_ERRORS, own={409: CONFLICT}),
                },
            },
        },
    )
    spec.path(
        "/api/{user_id}/webhooks/{webhook_id}",
        operations={
            "get": {
                "operationId": "get_webhook",
                "summary": "Read a webhook",
                "tags": tags,
                "parameters": [*one, "If-None-Match"],
                "responses": {
                    "200": _answer("The webhook.", "WebhookEnvelope"),
                    "304": not_modified("the webhook"),
                    **errors(404, *API_ERRORS),
                },
            },
            "patch": {
                "operationId": "patch_webhook",
                "summary": "Change a webhook",
                "tags": tags,
                "parameters": [*one, "If-Match"],
                "requestBody": {"required": True, "content": json_content("WebhookPatch")},
                "responses": {
                    "200": _answer("The webhook as changed.", "WebhookEnvelope"),
                    **errors(*BODY_ERRORS, 404, 412, *API_ERRORS),
                },
            },
            "delete": {
                "operationId": "delete_webhook",
                "summary": "Remove a webhook",
                "description": "Its deliveries, pending ones included, are dropped.",
                "tags": tags,
                "parameters": [*one, "If-Match"],
                "responses": {
                    "200": _answer("Removed; `data` is the webhook as it was.", "WebhookEnvelope"),
                    **errors(404, 412, *API_ERRORS),
                },
            },
        },
    )
    spec.path(
        "/api/{user_id}/webhooks/{webhook_id}/test",
        operations={
            "post": {
                "operationId": "test_webhook",
                "summary": "Send a test event",
                "description": "Queues a `webhook.test` event, its `data` the webhook, for this webhook alone.",
                "tags": tags,
                "parameters": one,
                "responses": {
                    "202": _answer("Queued; `data` is the delivery.", "DeliveryEnvelope", etag=False),
                    **errors(404, 415, *API_ERRORS),
                },
            },
        },
    )
    spec.path(
        "/api/{user_id}/webhooks/{webhook_id}/deliveries",
        operations={
            "get": {
                "operationId": "list_deliveries",
                "summary": "A webhook's deliveries",
                "description": "Newest first, paged by an opaque cursor. Deliveries are kept "
                "`WEBHOOK_RETENTION_DAYS` after they end.",
                "tags": tags,
                "parameters": [*one, *(f"deliveries.{name}" for name in DELIVERY_PARAMETERS)],
                "responses": {
                    "200": _answer("One page of deliveries.", "DeliveryListEnvelope", etag=False),
                    **errors(400, 404, *API_ERRORS),
                },
            },
        },
    )
