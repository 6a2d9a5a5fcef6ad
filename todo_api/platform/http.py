"""What every route does with HTTP: read a JSON body (413, 415, 400), answer a success envelope,
compare entity tags (ETag, If-Match, If-None-Match), and take an id from the path."""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cached_property
from typing import IO, Any

from flask import Request, Response, current_app, g, json, request
from marshmallow import ValidationError
from werkzeug.exceptions import NotFound, RequestEntityTooLarge
from werkzeug.routing import BaseConverter

from .envelope import encode_envelope
from .errors import ApiError, invalid

MAX_BODY_BYTES = 64 * 1024
MAX_ID = 2**63 - 1  # ids are bigint: a larger one names nothing
NO_BODY = object()  # an absent body, told apart from a JSON `null` (which is not an object: a 400)


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


class IdConverter(BaseConverter):
    """`<name:id>`: digits; one out of range is a 404 for every method. (werkzeug's own `int(min, max)`
    turns a range miss into a 405 when the path has rules for other methods.)"""

    regex = r"[0-9]+"
    part_isolating = True

    def to_python(self, value: str) -> int:
        digits = value.lstrip("0")
        if not digits or len(digits) > len(str(MAX_ID)) or int(digits) > MAX_ID:
            raise NotFound()  # routing runs before the request context exists: no ApiError here
        return int(digits)


class InvalidJson(ValueError):
    """A body that is not JSON (RFC 8259: NaN and Infinity are not)."""


def request_json(*, required: bool = True) -> Any:
    """The request's body as JSON: 413 past MAX_CONTENT_LENGTH, 415 if not application/json, NO_BODY
    if absent and not `required`; InvalidJson if it is not JSON (each surface answers that its way)."""
    raw = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    if not raw and not required:
        return NO_BODY
    if request.mimetype != "application/json":
        raise ApiError(415)
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidJson() from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def json_body(*, required: bool = True) -> Any:
    """request_json for a REST route: a body that is not JSON is a 400."""
    try:
        return request_json(required=required)
    except InvalidJson:
        raise ApiError(400, "The request body is not valid JSON.") from None


def load_body(load: Callable[[dict[str, Any]], dict[str, Any]], body: Any) -> dict[str, Any]:
    """`load(body)` for a body that must be a JSON object (else a 400); a ValidationError is a
    validation_error naming each field."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    try:
        return load(body)
    except ValidationError as error:
        raise invalid(error) from None


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None, **meta: Any) -> Response:
    """A success envelope: plain dicts, lists, strings and numbers (the dumps format the timestamps)."""
    body = encode_envelope(data, g.request_id, **meta)
    return current_app.response_class(body, status=status, headers=headers, mimetype="application/json")


def etag(version: int) -> str:
    """A version as a strong entity tag."""
    return f'"{version}"'


def expected_versions() -> list[int] | None:
    """The versions If-Match accepts: None when absent or `*` (any existing resource). Weak and
    malformed tags are dropped: If-Match uses the strong comparison, so they never match."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    tags = (tag.strip() for tag in header.split(","))
    return [int(tag[1:-1]) for tag in tags if len(tag) < 12 and tag[:1] == tag[-1:] == '"' and tag[1:-1].isdigit()]


def if_none_match(current: str) -> bool:
    """Whether If-None-Match names the `current` entity tag (the weak comparison: W/"3" matches "3")."""
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    candidates = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in candidates or current in candidates


def not_modified(current: str) -> Response:
    """304: the client's copy, tagged `current`, is still the resource's."""
    return current_app.response_class(status=304, headers={"ETag": current})


def versioned_response(
    data: Any, version: int, status: int = 200, headers: dict[str, str] | None = None, **meta: Any
) -> Response:
    """A success envelope carrying one versioned resource (a task, a list, a webhook), its ETag beside it."""
    return json_response(data, status, {"ETag": etag(version), **(headers or {})}, **meta)


def read_response(row: dict[str, Any], dump: Callable[[dict[str, Any]], Any]) -> Response:
    """GET of one versioned resource: 304 when If-None-Match names its version, else 200 with
    `dump(row)` and its ETag."""
    current = etag(row["version"])
    if if_none_match(current):
        return not_modified(current)
    return json_response(dump(row), headers={"ETag": current})
