"""Logging as OPERATIONS.md says: one JSON object per line on stderr (or plain text), with the
request id of the request in flight, and one line per request. Task text, tokens and secrets are
never passed to a logger."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Response, g, has_request_context, request

request_log = logging.getLogger("todo_api.request")

# Attributes every LogRecord has; anything else was passed through `extra=` and is logged as a field.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def _request_id() -> str | None:
    return g.get("request_id") if has_request_context() else None


_default_record_factory = logging.getLogRecordFactory()


def _record_with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _default_record_factory(*args, **kwargs)
    record.request_id = _request_id()
    return record


def stamp_records_with_request_id() -> None:
    """Every record created inside a request carries its request_id, whatever logger made it."""
    logging.setLogRecordFactory(_record_with_request_id)


_SANE_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,128}$")


def start_request() -> None:
    """before_request: the request's id, the client's own when it sent a sane one (API.md §2)."""
    g.started = time.perf_counter()
    sent = request.headers.get("X-Request-ID", "")
    g.request_id = sent if _SANE_REQUEST_ID.match(sent) else uuid.uuid4().hex


def add_to_request_line(**fields: Any) -> None:
    """Fields this request's log line carries after the usual ones (the MCP endpoint's `tool`)."""
    g.setdefault("request_line", {}).update(fields)


def finish_request(response: Response) -> Response:
    """after_request: X-Request-ID on the answer, and the request's one log line (OPERATIONS.md)."""
    response.headers["X-Request-ID"] = g.request_id
    rule = request.url_rule
    line = {
        "event": "request",
        "method": request.method,
        "route": rule.rule if rule is not None else None,
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - g.started) * 1000, 2),
        "user_id": g.get("user_id"),
        **g.get("request_line", {}),
    }
    request_log.info("request", extra=line)
    return response


class JsonFormatter(logging.Formatter):
    """ts, level, logger, msg, request_id, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key != "request_id":
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


# What could end a line or restyle a terminal: C0 (CR, LF, ESC, ...), DEL, C1 (NEL, CSI, ...), the
# Unicode line and paragraph separators; and the backslash, so that an escape cannot be faked.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\\]")
_NEEDS_QUOTES = re.compile(r'[\s="]|^$')


def _escape(text: str) -> str:
    """`text` on one line: each unsafe character as Python writes it in a literal (\\n, \\x1b, \\u2028)."""
    return _UNSAFE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def _text_value(value: Any) -> str:
    """A key=value field's value: escaped, and quoted (logfmt) when it holds a space, `=` or `"`, so a
    crafted value (a token's `sub`, say) can neither start a new line nor pass for another field."""
    text = _escape(str(value))
    return '"' + text.replace('"', '\\"') + '"' if _NEEDS_QUOTES.search(text) else text


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal: time, level, logger, message, then key=value extras; one line
    per record whatever the values hold (a traceback follows on lines of its own)."""

    def format(self, record: logging.LogRecord) -> str:
        extras = {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRIBUTES}
        request_id = extras.pop("request_id", None)
        fields = " ".join(f"{k}={_text_value(v)}" for k, v in extras.items())
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        text = f"{ts} {record.levelname:<7} {record.name} {_escape(record.getMessage())}"
        if request_id:
            text += f" request_id={_text_value(request_id)}"
        if fields:
            text += " " + fields
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def make_formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure_logging(level: str, log_format: str) -> None:
    """Send the root logger (and so the app's and gunicorn's) to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("psycopg.pool", "werkzeug"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def gunicorn_logconfig(level: str, log_format: str) -> dict[str, Any]:
    """gunicorn's own lines (start, workers, errors) through the same formatter; no access log."""
    handler = {"class": "logging.StreamHandler", "formatter": "app", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"app": {"()": make_formatter, "log_format": log_format}},
        "handlers": {"stderr": handler},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }
