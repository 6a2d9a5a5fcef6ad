"""todo-api: a multi-user task service. `create_app()` is the one place things are wired."""

from __future__ import annotations

import io
import logging
import re
import time
import uuid
from functools import cached_property
from typing import IO

from flask import Flask, Request, Response, g, request
from flask_cors import CORS
from werkzeug.exceptions import RequestEntityTooLarge

from .auth import bearer as auth
from .auth.jwks import JwksCache
from .mcp import routes as mcp
from .openapi import document as openapi
from .platform import errors, health
from .platform.config import Settings, load_settings
from .platform.db import Database, QueryError
from .platform.logs import configure_logging, stamp_records_with_request_id
from .sync import routes as sync
from .tasks import routes as tasks

MAX_BODY_BYTES = 64 * 1024
CORS_ALLOWED_HEADERS = ["Authorization", "Content-Type", "If-Match", "If-None-Match", "Idempotency-Key", "X-Request-ID"]
CORS_EXPOSED_HEADERS = ["ETag", "Location", "X-Request-ID", "Retry-After"]
# An MCP client sends MCP-Protocol-Version after initialize (no Mcp-Session-Id: this stateless server
# issues none), and reads a 401's challenge to know whether its token expired.
MCP_CORS_ALLOWED_HEADERS = ["Authorization", "Content-Type", "MCP-Protocol-Version", "X-Request-ID"]
MCP_CORS_EXPOSED_HEADERS = ["WWW-Authenticate", "X-Request-ID", "Retry-After"]
CORS_MAX_AGE_SECONDS = 600
_SANE_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,128}$")

request_log = logging.getLogger("todo_api.request")


class BoundedRequest(Request):
    """A body without Content-Length (chunked) over MAX_CONTENT_LENGTH is a 413, as one with it is.

    werkzeug stops reading such a body at the limit without a word, so a 70 KiB chunked body would
    reach the views cut to 64 KiB (a 400 for broken JSON, not the 413 API.md §2 promises).
    """

    @cached_property
    def stream(self) -> IO[bytes]:
        limit = self.max_content_length
        if self.content_length is not None or limit is None or not self.environ.get("wsgi.input_terminated"):
            return super().stream
        body = self.environ["wsgi.input"].read(limit + 1)
        if len(body) > limit:
            raise RequestEntityTooLarge()
        return io.BytesIO(body)


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> Flask:
    """Build the app from `settings` (default: the environment). The pool opens on first use."""
    settings = settings or load_settings()
    stamp_records_with_request_id()
    if configure_logs:
        configure_logging(settings.log_level, settings.log_format)
    if settings.database_url is None:
        from .platform.config import ConfigError

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
    missing = sorted(set(tasks.QUERY_NAMES + sync.QUERY_NAMES) - set(database.queries))
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
    app.extensions["todo_api.auth"] = auth.TokenVerifier(settings, jwks)
    document = openapi.build_document()
    app.extensions["todo_api.openapi"] = openapi.document_bytes(document)
    app.extensions["todo_api.mcp_tools"] = mcp.tool_listing(document)

    if settings.cors_allowed_origins:
        _enable_cors(app, settings.cors_allowed_origins)
    app.before_request(_start_request)
    app.before_request(auth.guard_api_requests_without_view)
    app.after_request(_finish_request)
    errors.register_error_handlers(app)
    app.url_map.converters["task_id"] = tasks.TaskIdConverter
    # API.md §2: no redirect under /api/ (werkzeug would answer `//` with a 308 to a URL built from Host).
    app.url_map.merge_slashes = False
    app.register_blueprint(tasks.bp)
    app.register_blueprint(sync.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(mcp.bp)
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
        resources={r"/api/.*": api_options, mcp.PATH: mcp_options},  # a path without regex characters matches exactly
        origins=allowed,
        send_wildcard=allowed == "*",
        always_send=False,  # no Origin header, no CORS headers
        max_age=CORS_MAX_AGE_SECONDS,
    )


def _start_request() -> None:
    g.started = time.perf_counter()
    sent = request.headers.get("X-Request-ID", "")
    g.request_id = sent if _SANE_REQUEST_ID.match(sent) else uuid.uuid4().hex


def _finish_request(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.request_id
    rule = request.url_rule
    line = {
        "event": "request",
        "method": request.method,
        "route": rule.rule if rule is not None else None,
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - g.started) * 1000, 2),
        "user_id": g.get("user_id"),
    }
    if request.path == mcp.PATH:
        line["tool"] = g.get("mcp_tool")  # the tool called, or the JSON-RPC method
    request_log.info("request", extra=line)
    return response
