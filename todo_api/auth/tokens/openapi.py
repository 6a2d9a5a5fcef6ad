"""Personal access tokens in the OpenAPI document: their security scheme (beside the JWT's), schemas,
the 409 limit_exceeded, and the /tokens paths, which only a JWT may call."""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from ...platform.apidoc import API_ERRORS, BEARER, BODY_ERRORS, add_error_response, envelope, errors, json_content
from ...platform.http import MAX_ID
from ..scopes import SCOPES
from .operations import MAX_TOKENS
from .schemas import READ_ONLY_FIELDS, CreatedTokenSchema, TokenInputSchema, TokenSchema

PERSONAL = "personalAccessToken"
LIMIT_EXCEEDED = "LimitExceeded"
SCOPES_TEXT = (
    "`tasks:read`: every GET of tasks, lists and sync, and the MCP tools that only read; `tasks:write`: all that, "
    "plus every write to tasks and lists and every MCP tool; `webhooks`: the /webhooks routes."
)
EXAMPLE_TOKEN = {
    "id": 7,
    "name": "nightly export",
    "scopes": ["tasks:read"],
    "expires_at": "2027-03-01T10:15:00Z",
    "created_at": "2026-12-01T10:15:00Z",
    "last_used_at": "2026-12-02T03:00:00Z",
}


def add_to_spec(spec: APISpec, converter: Any) -> None:
    spec.tag(
        {
            "name": "tokens",
            "description": "Personal access tokens for scripts and agents (a JWT required: a personal access "
            "token cannot manage tokens).",
        }
    )
    spec.components.security_scheme(
        PERSONAL,
        {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "tdo_…",
            "description": "A personal access token (`tdo_…`, made with POST /api/{user_id}/tokens), sent as a "
            f"bearer token like a JWT, on /api/ and /mcp. Its scopes limit what it may do: {SCOPES_TEXT} A request "
            "outside them is a 403 `insufficient_scope`. An unknown, revoked or expired token is a 401.",
        },
    )
    _add_schemas(spec, converter)
    spec.components.parameter(
        "token_id",
        "path",
        {"description": "The token's id.", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}},
    )
    add_error_response(
        spec,
        409,
        LIMIT_EXCEEDED,
        ("limit_exceeded",),
        f"`limit_exceeded`: the user already holds {MAX_TOKENS} tokens (expired ones count until deleted); "
        "`details.limit` says how many.",
    )
    _add_paths(spec)


def _add_schemas(spec: APISpec, converter: Any) -> None:
    token = converter.schema2jsonschema(TokenSchema)
    token["properties"]["id"].update(minimum=1, maximum=MAX_ID)
    token["properties"]["scopes"].update(minItems=1, uniqueItems=True)
    token["properties"]["last_used_at"]["description"] = "The last request it authenticated, to the minute."
    for name, prop in token["properties"].items():
        prop["examples"] = [EXAMPLE_TOKEN[name]]
    token["required"] = sorted(token["properties"])
    token["additionalProperties"] = False
    token["description"] = "A personal access token's metadata (never the token itself)."
    spec.components.schema("AccessToken", token)

    made = converter.schema2jsonschema(CreatedTokenSchema)
    made["properties"] = {**token["properties"], "token": made["properties"]["token"]}
    made["properties"]["token"].update(
        pattern=r"^tdo_[A-Za-z0-9_-]{40,}$",
        description="The token: shown in this answer only, never again (the server keeps only its hash).",
    )
    made["required"] = sorted(made["properties"])
    made["additionalProperties"] = False
    made["description"] = "A new token: its metadata and, this once, the token."
    spec.components.schema("CreatedAccessToken", made)

    token_input = converter.schema2jsonschema(TokenInputSchema(exclude=READ_ONLY_FIELDS))
    token_input["properties"]["scopes"].update(
        minItems=1, description=f"One or more; duplicates are removed. {SCOPES_TEXT}"
    )
    token_input["properties"]["scopes"]["items"]["enum"] = list(SCOPES)
    token_input["properties"]["expires_in_days"]["description"] = "Days until it expires (absent: 90; null is a 400)."
    token_input["properties"]["name"]["description"] = "What it is for; trimmed, 1-100 characters."
    token_input["description"] = "A new token. Unknown and read-only fields are a 400."
    spec.components.schema("AccessTokenInput", token_input)

    spec.components.schema("AccessTokenEnvelope", envelope("AccessToken"))
    spec.components.schema("CreatedAccessTokenEnvelope", envelope("CreatedAccessToken"))
    spec.components.schema(
        "AccessTokenListEnvelope",
        envelope(
            {"type": "array", "items": "AccessToken", "maxItems": MAX_TOKENS},
            meta={
                "type": "object",
                "properties": {"request_id": {"type": "string"}, "count": {"type": "integer", "minimum": 0}},
                "required": ["request_id", "count"],
            },
        ),
    )


def _answer(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "headers": {"X-Request-ID": "X-Request-ID"}, "content": json_content(schema)}


def _add_paths(spec: APISpec) -> None:
    # Only a JWT: a personal access token here is a 403 insufficient_scope.
    jwt_only: dict[str, Any] = {"tags": ["tokens"], "security": [{BEARER: []}]}
    owner = ["user_id", "X-Request-ID"]
    spec.path(
        "/api/{user_id}/tokens",
        operations={
            "get": {
                **jwt_only,
                "operationId": "list_tokens",
                "summary": "List personal access tokens",
                "description": f"Every token of the user (at most {MAX_TOKENS}), newest first, expired ones "
                "included; never the tokens themselves.",
                "parameters": owner,
                "responses": {"200": _answer("The tokens.", "AccessTokenListEnvelope"), **errors(*API_ERRORS)},
            },
            "post": {
                **jwt_only,
                "operationId": "create_token",
                "summary": "Create a personal access token",
                "description": "The answer holds the token, once: store it now.",
                "parameters": owner,
                "requestBody": {"required": True, "content": json_content("AccessTokenInput")},
                "responses": {
                    "201": _answer("Created; `data.token` is the token.", "CreatedAccessTokenEnvelope"),
                    **errors(*BODY_ERRORS, *API_ERRORS, own={409: LIMIT_EXCEEDED}),
                },
            },
        },
    )
    spec.path(
        "/api/{user_id}/tokens/{token_id}",
        operations={
            "delete": {
                **jwt_only,
                "operationId": "revoke_token",
                "summary": "Revoke a personal access token",
                "description": "Refused from the next request on, on every worker; no longer listed.",
                "parameters": ["user_id", "token_id", "X-Request-ID"],
                "responses": {
                    "200": _answer("Revoked: its metadata.", "AccessTokenEnvelope"),
                    **errors(*BODY_ERRORS, 404, *API_ERRORS),  # a body is not needed, but one is still read
                },
            }
        },
    )
