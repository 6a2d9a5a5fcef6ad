"""The OpenAPI 3.1 document of the service, assembled once, when the app is created.

apispec generates it from the marshmallow schemas that validate requests, and each part of the
service declares its own components and paths beside its routes (an `add_to_spec(spec, converter)`
function): the platform's envelope and errors first, then each feature, the probes, this
document's own paths and the MCP endpoint. A new feature adds its `add_to_spec` to DECLARATIONS.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from ..auth.tokens import openapi as token_openapi
from ..lists import openapi as list_openapi
from ..mcp import openapi as mcp_openapi
from ..platform import health
from ..platform.apidoc import BEARER, add_shared_components, errors, json_content
from ..sync import openapi as sync_openapi
from ..tasks import openapi as task_openapi
from ..webhooks import openapi as webhook_openapi

# The files /docs loads from the Swagger UI distribution, and nothing else from that folder.
DOCS_ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}

DOCUMENT_TITLE = "todo-api"
DESCRIPTION = """A multi-user task API. Every route under `/api/` needs `Authorization: Bearer <token>`,
a JWT or a personal access token (`tdo_…`), whose user (the JWT's `sub`, the token's creator) is the
`{user_id}` of the path: without a valid token every request is a 401, with another user's token a
403 `forbidden`, with a personal access token lacking the route's scope a 403 `insufficient_scope`,
and only then come 404, 405 and the rest.

Every JSON response but this document and the JSON-RPC answers of `/mcp` is an envelope:
`{"data": ..., "meta": {"request_id": ...}}` on success,
`{"data": null, "error": {"code", "message", "details"}, "meta": {...}}` on error.
Every response carries `X-Request-ID` (the client's own when it sent a sane one, 1-128 visible
ASCII characters), which is also `meta.request_id` and in every log line of the request.

Timestamps are RFC 3339: returned in UTC with `Z`; on input an explicit offset is required, and
the instant must fall within years 1-9999 in UTC."""


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document: schemas from marshmallow, routes and statuses from the contract."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title=DOCUMENT_TITLE,
        version=version("todo-api"),
        openapi_version="3.1.0",
        plugins=[plugin],
        info={"description": DESCRIPTION, "license": {"name": "MIT", "identifier": "MIT"}},
    )
    add_shared_components(spec, plugin)
    for add_to_spec in DECLARATIONS:
        add_to_spec(spec, plugin.converter)
    document = spec.to_dict()
    document["security"] = [{BEARER: []}, {token_openapi.PERSONAL: []}]  # either one
    return document


def _add_docs_paths(spec: APISpec, converter: Any) -> None:
    """This document and its page (routes.py)."""
    spec.tag({"name": "docs", "description": "This document and its page (no auth)."})
    public: dict[str, Any] = {"security": [], "parameters": ["X-Request-ID"]}
    spec.path(
        "/openapi.json",
        operations={
            "get": {
                **public,
                "operationId": "openapi_document",
                "summary": "This OpenAPI 3.1 document (not in the envelope)",
                "tags": ["docs"],
                "responses": {
                    "200": {
                        "description": "The document.",
                        "headers": {"X-Request-ID": "X-Request-ID"},
                        "content": json_content({"type": "object", "required": ["openapi", "info", "paths"]}),
                    },
                    **errors(500),
                },
            }
        },
    )
    spec.path(
        "/docs",
        operations={
            "get": {
                **public,
                "operationId": "docs",
                "summary": "This page: the document rendered by Swagger UI, served offline",
                "tags": ["docs"],
                "responses": {
                    "200": {
                        "description": "An HTML page.",
                        "headers": {"X-Request-ID": "X-Request-ID"},
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    **errors(500),
                },
            }
        },
    )
    spec.path(
        "/docs/{asset}",
        operations={
            "get": {
                **public,
                "operationId": "docs_asset",
                "summary": "A file the docs page loads (Swagger UI, from the installed package)",
                "tags": ["docs"],
                "parameters": [
                    *public["parameters"],
                    {"name": "asset", "in": "path", "required": True, "schema": {"enum": sorted(DOCS_ASSETS)}},
                ],
                "responses": {
                    "200": {
                        "description": "The file.",
                        "headers": {"X-Request-ID": "X-Request-ID"},
                        "content": {media_type: {"schema": {"type": "string"}} for media_type in DOCS_ASSETS.values()},
                    },
                    **errors(404, 500),
                },
            }
        },
    )


def _add_metrics_path(spec: APISpec, converter: Any) -> None:
    """/metrics (platform/metrics.py). Declared here rather than beside its route: platform/errors.py
    imports that module (to count database errors) and the document's helpers (apidoc) import errors."""
    spec.tag({"name": "metrics", "description": "Prometheus metrics (no auth)."})
    spec.path(
        "/metrics",
        operations={
            "get": {
                "security": [],
                "parameters": ["X-Request-ID"],
                "operationId": "metrics",
                "summary": "Prometheus text format, summed over every worker (not in the envelope)",
                "description": "Requests by route template, method and status, their latency, the database "
                "pool's size, connections in use and requests waiting, and database errors by kind. "
                "A 404 when METRICS_ENABLED=false.",
                "tags": ["metrics"],
                "responses": {
                    "200": {
                        "description": "The metrics, in Prometheus text format 0.0.4.",
                        "headers": {"X-Request-ID": "X-Request-ID"},
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **errors(404, 500),
                },
            }
        },
    )


# In the order the document shows them (its tags follow it).
DECLARATIONS = (
    task_openapi.add_to_spec,
    list_openapi.add_to_spec,
    webhook_openapi.add_to_spec,
    sync_openapi.add_to_spec,
    token_openapi.add_to_spec,
    health.add_to_spec,
    _add_metrics_path,
    _add_docs_paths,
    mcp_openapi.add_to_spec,
)


def document_bytes(document: dict[str, Any]) -> bytes:
    """The document as served: built once (build_document), serialized once."""
    return json.dumps(document, ensure_ascii=False, indent=1).encode()
