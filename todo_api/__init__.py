"""todo-api: a multi-user task service. `create_app()` is the one place things are wired."""

from __future__ import annotations

import re

from flask import Flask
from flask_cors import CORS

from . import lists, sync, tasks, webhooks
from .auth import bearer, scopes
from .auth import tokens as access_tokens
from .auth.jwks import JwksCache
from .auth.tokens import routes as token_routes
from .lists import routes as list_routes
from .mcp import routes as mcp_routes
from .mcp.tools import tool_listing
from .openapi import routes as openapi_routes
from .openapi.document import build_document, document_bytes
from .platform import errors, health, idempotency, logs, metrics, sealing
from .platform.config import ConfigError, Settings, load_settings
from .platform.db import Database, QueryError
from .platform.http import MAX_BODY_BYTES, BoundedRequest, IdConverter
from .sync import routes as sync_routes
from .tasks import routes as task_routes
from .webhooks import metrics as webhook_metrics
from .webhooks import routes as webhook_routes

CORS_ALLOWED_HEADERS = ["Authorization", "Content-Type", "If-Match", "If-None-Match", "Idempotency-Key", "X-Request-ID"]
CORS_EXPOSED_HEADERS = ["ETag", "Location", "X-Request-ID", "Retry-After"]
# An MCP client sends MCP-Protocol-Version after initialize (no Mcp-Session-Id: this stateless server
# issues none), and reads a 401's challenge to know whether its token expired.
MCP_CORS_ALLOWED_HEADERS = ["Authorization", "Content-Type", "MCP-Protocol-Version", "X-Request-ID"]
MCP_CORS_EXPOSED_HEADERS = ["WWW-Authenticate", "X-Request-ID", "Retry-After"]
CORS_MAX_AGE_SECONDS = 600


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> Flask:
    """Build the app from `settings` (default: the environment). The pool opens on first use."""
    settings = settings or load_settings()
    logs.stamp_records_with_request_id()
    if configure_logs:
        logs.configure_logging(settings.log_level, settings.log_format)
    if settings.database_url is None:
        raise ConfigError("DATABASE_URL", "is required (todo-api serve starts an embedded database when it is unset)")

    app = Flask(__name__, static_folder=None)  # no /static route: the docs page serves its own files
    app.request_class = BoundedRequest
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES, TODO_API_SETTINGS=settings)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    database = Database(
        settings.database_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        timeout=settings.db_pool_timeout,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        prepared_statements=settings.db_prepared_statements,
    )
    needed = (
        *tasks.QUERY_NAMES,
        *lists.QUERY_NAMES,
        *webhooks.QUERY_NAMES,
        *sync.QUERY_NAMES,
        *access_tokens.QUERY_NAMES,
        *idempotency.QUERY_NAMES,
        *sealing.QUERY_NAMES,
    )
    missing = sorted(set(needed) - set(database.queries))
    if missing:
        raise QueryError(f"sql/ has no query named {', '.join(missing)}")
    app.extensions["todo_api.db"] = database
    jwks = None
    if settings.jwks_url and settings.asymmetric_algorithms:
        jwks = JwksCache(
            settings.jwks_url,
            settings.asymmetric_algorithms,
            max_age=settings.jwks_max_age_seconds,
            cooldown=settings.jwks_cooldown_seconds,
            timeout=settings.jwks_timeout_seconds,
        )
    app.extensions["todo_api.jwks"] = jwks
    app.extensions["todo_api.auth"] = bearer.TokenVerifier(settings, jwks)
    document = build_document()
    app.extensions["todo_api.openapi"] = document_bytes(document)
    app.extensions["todo_api.mcp_tools"] = tool_listing(document)

    if settings.cors_allowed_origins:
        _enable_cors(app, settings.cors_allowed_origins)
    app.before_request(logs.start_request)
    app.before_request(bearer.guard_api_requests_without_view)
    app.after_request(logs.finish_request)
    metrics.init_app(app, settings.metrics_enabled)
    webhook_metrics.register(app, database)
    errors.register_error_handlers(app)
    # The converter's name shows in the request log's route, `/api/<user_id>/tasks/<task_id:task_id>`.
    app.url_map.converters["task_id"] = IdConverter
    app.url_map.converters["list_id"] = IdConverter
    app.url_map.converters["webhook_id"] = IdConverter
    app.url_map.converters["token_id"] = IdConverter
    # API.md §2: no redirect under /api/ (werkzeug would answer `//` with a 308 to a URL built from Host).
    app.url_map.merge_slashes = False
    app.register_blueprint(task_routes.bp)
    app.register_blueprint(list_routes.bp)
    app.register_blueprint(webhook_routes.bp)
    app.register_blueprint(sync_routes.bp)
    app.register_blueprint(token_routes.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi_routes.bp)
    app.register_blueprint(mcp_routes.bp)
    # What each /api/ collection's routes need of a personal access token; a start-up error for one that says nothing.
    app.extensions["todo_api.scopes"] = scopes.collect(app)
    return app


def _enable_cors(app: Flask, origins: tuple[str, ...]) -> None:
    """CORS on /api/ and /mcp only, for the configured origins only; a browser frontend or agent sends
    its token in Authorization, never cookies, so credentials stay off."""
    allowed: str | list[re.Pattern[str]] = "*"
    if "*" not in origins:
        # Exact, whole-string matches (flask-cors would take an IPv6 origin's [ ] for a regex); Vary: Origin.
        allowed = [re.compile(re.escape(origin) + r"\Z", re.IGNORECASE) for origin in origins]
    api_options = {
        "methods": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        "allow_headers": CORS_ALLOWED_HEADERS,
        "expose_headers": CORS_EXPOSED_HEADERS,
    }
    mcp_options = {
        "methods": ["POST"],
        "allow_headers": MCP_CORS_ALLOWED_HEADERS,
        "expose_headers": MCP_CORS_EXPOSED_HEADERS,
    }
    CORS(
        app,
        resources={
            r"/api/.*": api_options,
            mcp_routes.PATH: mcp_options,
        },  # a path without regex characters matches exactly
        origins=allowed,
        send_wildcard=allowed == "*",
        always_send=False,  # no Origin header, no CORS headers
        max_age=CORS_MAX_AGE_SECONDS,
    )
