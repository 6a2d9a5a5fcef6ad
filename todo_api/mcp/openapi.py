"""POST /mcp in the OpenAPI document: the JSON-RPC message and answer, and the path."""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from ..platform.apidoc import errors, json_content

MCP = """The Model Context Protocol endpoint (Streamable HTTP transport, stateless, JSON responses):
one JSON-RPC 2.0 message per POST. Methods: `initialize`, `ping`, `tools/list`, `tools/call`; the
tools (`list_tasks`, `get_task`, `add_task`, `update_task`, `complete_task`, `delete_task`) act for
the token's user, and `tools/list` gives their input and output schemas, built from the schemas of
this document. A tool failure the REST API would answer with a 4xx is a result with `isError: true`
and the REST `error` object. Checks come in this order: `Origin` (403), the token (401), the method
(any but POST, GET and DELETE included, is a 405 with `Allow: POST`: there is no event stream to
open and no session to end), the body's size (413) and type (415)."""

JSON_RPC_ID = {"type": ["string", "integer"], "description": "The request's id; absent in a notification."}


def add_to_spec(spec: APISpec, converter: Any) -> None:
    spec.tag(
        {
            "name": "agents",
            "description": "The task operations as tools for AI agents, over the Model Context Protocol "
            "(bearer token required).",
        }
    )
    spec.components.schema(
        "JsonRpcMessage",
        {
            "type": "object",
            "description": "One JSON-RPC 2.0 request, or a notification (no `id`). A batch (an array) is refused.",
            "properties": {
                "jsonrpc": {"const": "2.0"},
                "id": JSON_RPC_ID,
                "method": {"type": "string", "examples": ["tools/call"]},
                "params": {"type": "object", "examples": [{"name": "list_tasks", "arguments": {"status": "pending"}}]},
            },
            "required": ["jsonrpc", "method"],
        },
    )
    spec.components.schema(
        "JsonRpcAnswer",
        {
            "type": "object",
            "description": "A JSON-RPC 2.0 response: `result`, or `error` with a standard code (-32700 "
            "unparseable, -32600 not one request, -32601 unknown method, -32602 unknown tool or bad params).",
            "properties": {
                "jsonrpc": {"const": "2.0"},
                "id": {"type": ["string", "integer", "null"]},
                "result": {"type": "object"},
                "error": {
                    "type": "object",
                    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
                    "required": ["code", "message"],
                },
            },
            "required": ["jsonrpc", "id"],
        },
    )
    answer = json_content("JsonRpcAnswer")
    request_id = {"X-Request-ID": "X-Request-ID"}
    spec.path(
        "/mcp",
        operations={
            "post": {
                "operationId": "mcp",
                "summary": "Call the task tools over the Model Context Protocol",
                "description": MCP,
                "tags": ["agents"],
                "parameters": ["X-Request-ID"],
                "requestBody": {"required": True, "content": json_content("JsonRpcMessage")},
                "responses": {
                    "200": {"description": "The JSON-RPC answer.", "headers": request_id, "content": answer},
                    "202": {"description": "A notification, accepted. No body.", "headers": request_id},
                    "400": {
                        "description": "Not JSON (-32700), or not one JSON-RPC 2.0 request (-32600); `id` is null.",
                        "headers": request_id,
                        "content": answer,
                    },
                    **errors(401, 403, 413, 415, 500, 503),
                },
            },
        },
    )
