"""CORS for the browser frontend (API.md §1, §7): on /api/ and /mcp, only for CORS_ALLOWED_ORIGINS; a
preflight needs no token; each surface's request headers are allowed and its response headers exposed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import SECRET, assert_error, make_token
from flask import Flask

from todo_api import create_app
from todo_api.platform.config import ConfigError, load_settings

APP_ORIGIN = "https://app.example.com"
DEV_ORIGIN = "http://localhost:3000"
IPV6_ORIGIN = "http://[::1]:3000"
API_REQUEST_HEADERS = "authorization, content-type, if-match, if-none-match, idempotency-key, x-request-id"
EXPOSED_HEADERS = {"ETag", "Location", "X-Request-ID", "Retry-After"}
MCP_REQUEST_HEADERS = "authorization, content-type, mcp-protocol-version, x-request-id"
MCP_EXPOSED_HEADERS = {"WWW-Authenticate", "X-Request-ID", "Retry-After"}
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


def _app(database_url: str, origins: str) -> Flask:
    env = {"DATABASE_URL": database_url, "BETTER_AUTH_SECRET": SECRET, "CORS_ALLOWED_ORIGINS": origins}
    app = create_app(load_settings(env), configure_logs=False)
    app.testing = True
    return app


@pytest.fixture(scope="module")
def cors_app(database_url: str) -> Iterator[Flask]:
    app = _app(database_url, f"{APP_ORIGIN}, {DEV_ORIGIN}/, {IPV6_ORIGIN}")
    yield app
    app.extensions["todo_api.db"].close()


@pytest.fixture
def cors_client(cors_app: Flask):
    return cors_app.test_client()


def preflight(client, path: str, origin: str, method: str = "PATCH", request_headers: str = API_REQUEST_HEADERS):
    headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if request_headers:
        headers["Access-Control-Request-Headers"] = request_headers
    return client.options(path, headers=headers)


def cors_headers(response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name.lower().startswith("access-control-")}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/alice/tasks"),
        ("POST", "/api/alice/tasks"),
        ("PUT", "/api/alice/tasks/7"),
        ("PATCH", "/api/alice/tasks/7/complete"),
        ("DELETE", "/api/alice/tasks/7"),
        ("DELETE", "/api/alice/tasks/not-a-number"),
        ("GET", "/api/no/such/route"),
    ],
)
@pytest.mark.parametrize("origin", [APP_ORIGIN, DEV_ORIGIN, IPV6_ORIGIN])
def test_preflight_from_an_allowed_origin_needs_no_token_and_allows_the_api_headers(cors_client, origin, method, path):
    response = preflight(cors_client, path, origin, method)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert "WWW-Authenticate" not in response.headers
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert method in response.headers["Access-Control-Allow-Methods"].split(", ")
    allowed = response.headers["Access-Control-Allow-Headers"].split(", ")
    assert sorted(allowed) == sorted(API_REQUEST_HEADERS.split(", "))
    assert response.headers["Access-Control-Max-Age"] == "600"
    assert "Origin" in response.headers.get_all("Vary")
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert response.headers["X-Request-ID"]


def test_preflight_allows_only_the_api_request_headers(cors_client):
    response = preflight(cors_client, "/api/alice/tasks", APP_ORIGIN, "POST", "Authorization, X-Forwarded-User")

    assert response.headers["Access-Control-Allow-Headers"] == "Authorization"


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example.com",
        "https://app.example.com.evil.test",  # a prefix of an allowed origin is not that origin
        "http://app.example.com",  # another scheme
        "https://app.example.com:8443",  # another port
        "http://[::1]:30001",
        "null",
    ],
)
def test_preflight_from_another_origin_gets_no_cors_headers(cors_client, origin):
    response = preflight(cors_client, "/api/alice/tasks", origin, "POST")

    assert response.status_code == 200
    assert cors_headers(response) == {}


def test_api_response_to_an_allowed_origin_exposes_the_api_headers(cors_client):
    token = make_token("cors-user")

    response = cors_client.post(
        "/api/cors-user/tasks",
        json={"title": "Called from the browser"},
        headers={"Origin": APP_ORIGIN, "Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert set(response.headers["Access-Control-Expose-Headers"].split(", ")) == EXPOSED_HEADERS
    assert {"ETag", "Location", "X-Request-ID"} <= set(response.headers.keys())
    assert "Origin" in response.headers.get_all("Vary")


def test_401_carries_cors_headers_so_the_browser_can_read_it(cors_client):
    response = cors_client.get("/api/alice/tasks", headers={"Origin": DEV_ORIGIN})

    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.headers["Access-Control-Allow-Origin"] == DEV_ORIGIN


def test_options_without_access_control_request_method_still_needs_a_token(cors_client):
    response = cors_client.options("/api/alice/tasks", headers={"Origin": APP_ORIGIN})

    assert_error(response, 401, "unauthorized")
    assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN


@pytest.mark.parametrize("origin", [APP_ORIGIN, DEV_ORIGIN, IPV6_ORIGIN, APP_ORIGIN.upper()])
def test_mcp_preflight_from_an_allowed_origin_needs_no_token_and_allows_the_mcp_headers(cors_client, origin):
    """Issue 22: the preflight of a browser's POST /mcp was a 401, so the browser never sent the POST."""
    response = preflight(cors_client, "/mcp", origin, "POST", MCP_REQUEST_HEADERS)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert "WWW-Authenticate" not in response.headers
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert response.headers["Access-Control-Allow-Methods"] == "POST"
    allowed = response.headers["Access-Control-Allow-Headers"].split(", ")
    assert sorted(allowed) == sorted(MCP_REQUEST_HEADERS.split(", "))
    assert response.headers["Access-Control-Max-Age"] == "600"
    assert "Origin" in response.headers.get_all("Vary")
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_mcp_preflight_allows_only_the_mcp_request_headers(cors_client):
    response = preflight(cors_client, "/mcp", APP_ORIGIN, "POST", "Content-Type, If-Match, Mcp-Session-Id")

    assert response.headers["Access-Control-Allow-Headers"] == "Content-Type"


def test_mcp_answers_to_an_allowed_origin_carry_cors_headers_401_included(cors_client):
    answer = cors_client.post(
        "/mcp", json=PING, headers={"Origin": APP_ORIGIN, "Authorization": f"Bearer {make_token('cors-agent')}"}
    )
    refused = cors_client.post("/mcp", json=PING, headers={"Origin": DEV_ORIGIN})

    assert answer.status_code == 200 and answer.json["result"] == {}
    assert answer.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert set(answer.headers["Access-Control-Expose-Headers"].split(", ")) == MCP_EXPOSED_HEADERS
    assert "Origin" in answer.headers.get_all("Vary")
    assert_error(refused, 401, "unauthorized")
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert refused.headers["Access-Control-Allow-Origin"] == DEV_ORIGIN  # so that the browser lets the page read it
    assert set(refused.headers["Access-Control-Expose-Headers"].split(", ")) == MCP_EXPOSED_HEADERS


@pytest.mark.parametrize("origin", ["https://evil.example.com", "https://app.example.com.evil.test", "null"])
@pytest.mark.parametrize("token", [True, False])
def test_mcp_from_another_origin_is_403_without_cors_headers_preflight_included(cors_client, origin, token):
    headers = {"Authorization": f"Bearer {make_token('cors-agent')}"} if token else {}
    answers = [
        cors_client.post("/mcp", json=PING, headers={"Origin": origin, **headers}),
        cors_client.options("/mcp", headers={"Origin": origin, "Access-Control-Request-Method": "POST", **headers}),
    ]
    for response in answers:
        assert_error(response, 403, "forbidden")
        assert cors_headers(response) == {}


def test_mcp_options_without_access_control_request_method_is_not_a_preflight(cors_client):
    response = cors_client.options("/mcp", headers={"Origin": APP_ORIGIN})

    assert_error(response, 401, "unauthorized")
    assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN


def test_routes_outside_api_and_mcp_get_no_cors_headers(cors_client):
    response = cors_client.get("/healthz", headers={"Origin": APP_ORIGIN})

    assert response.status_code == 200
    assert cors_headers(response) == {}


def test_request_without_origin_gets_no_cors_headers(cors_client):
    response = cors_client.get("/api/alice/tasks", headers={"Authorization": f"Bearer {make_token('alice')}"})

    assert response.status_code == 200
    assert cors_headers(response) == {}


def test_cors_is_off_without_cors_allowed_origins(client):
    response = preflight(client, "/api/alice/tasks", APP_ORIGIN, "POST")
    assert response.status_code == 200  # still no token needed
    assert cors_headers(response) == {}

    response = client.get("/api/alice/tasks", headers={"Origin": APP_ORIGIN})
    assert_error(response, 401, "unauthorized")
    assert cors_headers(response) == {}


def test_wildcard_origin_answers_any_origin_without_credentials(database_url):
    app = _app(database_url, "*")
    try:
        response = preflight(app.test_client(), "/api/alice/tasks", "https://anywhere.example.org", "DELETE")
        without_origin = app.test_client().get("/api/alice/tasks")
    finally:
        app.extensions["todo_api.db"].close()

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert cors_headers(without_origin) == {}


@pytest.mark.parametrize(
    "value",
    [
        "app.example.com",
        "https://app.example.com/dashboard",
        "https://app.example.com?from=x",
        "https://user@app.example.com",
        "https://app.example.com:99999",
        "ftp://files.example.com",
        "https://ok.example.com, not an origin",
    ],
)
def test_bad_cors_allowed_origins_stops_start_up_naming_the_variable(value):
    env = {"DATABASE_URL": "postgresql://localhost/x", "BETTER_AUTH_SECRET": SECRET, "CORS_ALLOWED_ORIGINS": value}

    with pytest.raises(ConfigError) as error:
        load_settings(env)

    assert error.value.variable == "CORS_ALLOWED_ORIGINS"
    assert str(error.value).startswith("configuration error: CORS_ALLOWED_ORIGINS ")
    assert "\n" not in str(error.value)
