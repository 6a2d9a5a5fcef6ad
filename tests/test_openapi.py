"""GET /openapi.json and GET /docs: a valid OpenAPI 3.1 document covering every route, a docs page
that needs nothing from outside, neither behind a token."""

from __future__ import annotations

import json
import re

import pytest
from conftest import assert_error
from openapi_spec_validator import OpenAPIV31SpecValidator

from todo_api.openapi import document as openapi
from todo_api.openapi import routes as openapi_routes
from todo_api.tasks.schemas import READ_ONLY_FIELDS, TaskInputSchema

IGNORED_METHODS = {"HEAD", "OPTIONS"}  # answered by Flask itself for every route


def openapi_path(rule: str) -> str:
    """`/api/<user_id>/tasks/<task_id:task_id>` → `/api/{user_id}/tasks/{task_id}`."""
    return re.sub(r"<(?:[^<>:]+:)?([^<>:]+)>", r"{\1}", rule)


def flask_operations(app) -> set[tuple[str, str]]:
    return {
        (method.lower(), openapi_path(rule.rule))
        for rule in app.url_map.iter_rules()
        for method in rule.methods - IGNORED_METHODS
    }


def document_operations(document) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    }


@pytest.fixture(scope="module")
def document(app):
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.json


def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(document).validate()


def test_every_flask_route_is_in_the_document(app, document):
    missing = flask_operations(app) - document_operations(document)
    assert not missing, f"routes without an operation in the document: {sorted(missing)}"


def test_every_documented_operation_is_a_flask_route(app, document):
    phantom = document_operations(document) - flask_operations(app)
    assert not phantom, f"operations with no route behind them: {sorted(phantom)}"


def test_document_is_built_once_at_start_not_per_request(app, monkeypatch):
    before = app.test_client().get("/openapi.json").get_data()

    def fail():
        raise AssertionError("the document was rebuilt for a request")

    monkeypatch.setattr(openapi, "build_document", fail)
    assert app.test_client().get("/openapi.json").get_data() == before


def test_openapi_json_is_a_plain_document_not_an_envelope(document):
    assert "data" not in document and "meta" not in document
    assert {"openapi", "info", "paths", "components"} <= set(document)


def _operation(document, method: str, path: str) -> dict:
    return document["paths"][path][method]


def _statuses(document, method: str, path: str) -> set[int]:
    return {int(status) for status in _operation(document, method, path)["responses"]}


def _header_parameters(document, method: str, path: str) -> set[str]:
    names = set()
    for parameter in _operation(document, method, path).get("parameters", []):
        component = document["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[1]]
        if component["in"] == "header":
            names.add(component["name"])
    return names


TASKS = "/api/{user_id}/tasks"
TASK = "/api/{user_id}/tasks/{task_id}"
COMPLETE = "/api/{user_id}/tasks/{task_id}/complete"
# API.md §2 and §4: what each route can answer besides its success.
EXPECTED_ERRORS = {
    ("get", TASKS): {400, 401, 403, 500, 503},
    ("post", TASKS): {400, 401, 403, 409, 413, 415, 500, 503},
    ("get", TASK): {401, 403, 404, 500, 503},
    ("put", TASK): {400, 401, 403, 404, 412, 413, 415, 500, 503},
    ("patch", TASK): {400, 401, 403, 404, 412, 413, 415, 500, 503},
    ("delete", TASK): {401, 403, 404, 412, 500, 503},
    ("patch", COMPLETE): {400, 401, 403, 404, 412, 413, 415, 500, 503},
    ("get", "/readyz"): {500, 503},
    ("post", "/mcp"): {400, 401, 403, 413, 415, 500, 503},
}


# gunicorn's own refusals (a head or body too slow, an over-long request line or header), before the
# app: on every route.
SERVER_LIMITS = {408, 414, 431}


@pytest.mark.parametrize(("method", "path"), sorted(EXPECTED_ERRORS))
def test_each_route_documents_the_error_statuses_it_can_answer(document, method, path):
    errors = {status for status in _statuses(document, method, path) if status >= 400}
    assert errors == EXPECTED_ERRORS[(method, path)] | SERVER_LIMITS


def test_error_responses_are_the_envelope_with_their_codes(document):
    responses = document["components"]["responses"]
    assert responses["BadRequest"]["content"]["application/json"]["schema"]["allOf"][0] == {
        "$ref": "#/components/schemas/ErrorEnvelope"
    }
    assert "WWW-Authenticate" in responses["Unauthorized"]["headers"]
    assert "Retry-After" in responses["ServiceUnavailable"]["headers"]
    envelope = document["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["properties"]["data"] == {"type": "null"}
    assert set(envelope["required"]) == {"data", "error", "meta"}


def test_conditional_and_idempotency_headers_are_documented(document):
    assert "Idempotency-Key" in _header_parameters(document, "post", TASKS)
    assert "If-None-Match" in _header_parameters(document, "get", TASK)
    for method, path in (("put", TASK), ("patch", TASK), ("delete", TASK), ("patch", COMPLETE)):
        assert "If-Match" in _header_parameters(document, method, path)
    created = _operation(document, "post", TASKS)["responses"]["201"]["headers"]
    assert {"ETag", "Location", "X-Request-ID"} <= set(created)
    assert 304 in _statuses(document, "get", TASK)


def test_api_routes_need_a_bearer_token_of_either_kind_tokens_routes_a_jwt_and_the_rest_none(document):
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    personal = document["components"]["securitySchemes"]["personalAccessToken"]
    assert personal["type"] == "http" and personal["scheme"] == "bearer" and "tdo_" in personal["bearerFormat"]
    assert document["security"] == [{"bearerAuth": []}, {"personalAccessToken": []}]
    for method, path in document_operations(document):
        security = _operation(document, method, path).get("security")
        if path.startswith("/api/{user_id}/tokens"):
            assert security == [{"bearerAuth": []}], (method, path)  # a personal access token cannot manage tokens
        else:
            assert (security is None) == (path.startswith("/api/") or path == "/mcp"), (method, path)


def test_the_403_names_insufficient_scope_and_its_challenge(document):
    forbidden = document["components"]["responses"]["Forbidden"]
    codes = forbidden["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"]["properties"]
    assert codes["code"]["enum"] == ["forbidden", "insufficient_scope"]
    assert "WWW-Authenticate" in forbidden["headers"]
    for method, path in document_operations(document):
        if path.startswith("/api/"):
            assert "403" in _operation(document, method, path)["responses"], (method, path)


def test_request_bodies_come_from_the_marshmallow_schemas(document):
    writable = set(TaskInputSchema().load_fields) - set(READ_ONLY_FIELDS) - {"list_id", "parent_id"}  # POST only
    task_input = document["components"]["schemas"]["TaskInput"]
    assert set(task_input["properties"]) == writable
    assert task_input["required"] == ["title"]
    assert task_input["additionalProperties"] is False
    assert task_input["properties"]["title"]["maxLength"] == 200


def test_openapi_json_and_docs_need_no_token(client):
    assert client.get("/openapi.json").status_code == 200
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"


def test_docs_page_loads_only_its_own_files(client):
    html = client.get("/docs").get_data(as_text=True)
    urls = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert urls and all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    assert "/openapi.json" in json.dumps(html)


@pytest.mark.parametrize(("asset", "mimetype"), sorted(openapi.DOCS_ASSETS.items()))
def test_docs_assets_are_served_from_the_installed_package(client, asset, mimetype):
    with client.get(f"/docs/{asset}") as response:
        assert response.status_code == 200
        assert response.mimetype == mimetype
        assert response.get_data() == (openapi_routes.SWAGGER_UI_DIR / asset).read_bytes()


@pytest.mark.parametrize("asset", ["index.html", "LICENSE", "..%2F..%2Fsetup.cfg", "swagger-ui.js"])
def test_other_files_are_not_served(client, asset):
    assert_error(client.get(f"/docs/{asset}"), 404, "not_found")


@pytest.mark.parametrize("text", ["\x1f", "\x85", "\u3000", " \t\n", "\ufeff", "a", " a ", "\x1fa\x1f"])
def test_title_pattern_agrees_with_how_the_schema_trims(document, text):
    # `\s` means different things to JSON Schema (ECMA 262) and Python: the pattern spells it out.
    pattern = document["components"]["schemas"]["TaskInput"]["properties"]["title"]["pattern"]
    assert bool(re.search(pattern, text)) == bool(text.strip())


def test_recurrence_fields_and_next_occurrence_are_documented(document):
    schemas = document["components"]["schemas"]
    assert {"recurrence", "timezone", "remind_at", "next_id"} <= set(schemas["Task"]["properties"])
    for body in ("TaskInput", "TaskPatch"):
        properties = schemas[body]["properties"]
        assert {"recurrence", "timezone", "remind_at"} <= set(properties) and "next_id" not in properties
        assert "Europe/Berlin" in properties["timezone"]["enum"] and "localtime" not in properties["timezone"]["enum"]
    assert schemas["WriteMeta"]["properties"]["next_occurrence"]["$ref"] == "#/components/schemas/Task"
    for method, path in [
        ("patch", "/api/{user_id}/tasks/{task_id}/complete"),
        ("patch", "/api/{user_id}/tasks/{task_id}"),
        ("put", "/api/{user_id}/tasks/{task_id}"),
    ]:
        content = _operation(document, method, path)["responses"]["200"]["content"]
        assert content["application/json"]["schema"]["$ref"] == "#/components/schemas/TaskWriteEnvelope"
    parameters = {
        ref["$ref"].rsplit(".", 1)[-1]
        for ref in _operation(document, "get", "/api/{user_id}/tasks")["parameters"]
        if "$ref" in ref
    }
    assert {"remind_before", "remind_after"} <= parameters
    sort = document["components"]["parameters"]["list.sort"]["schema"]["enum"]
    assert {"remind_at", "-remind_at"} <= set(sort)


def test_the_example_task_is_a_valid_recurring_task(app):
    from todo_api.tasks.openapi import EXAMPLE_INPUT
    from todo_api.tasks.schemas import READ_ONLY_FIELDS, task_create

    task_create.load({k: v for k, v in EXAMPLE_INPUT.items() if k not in READ_ONLY_FIELDS})
