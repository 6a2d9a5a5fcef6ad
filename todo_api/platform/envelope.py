"""The envelope of API.md §2 as bytes, and the one JSON encoder of every answer.

Success, error, a refusal by the gunicorn worker, health, and the JSON-RPC answers of /mcp are all
written by `encode`: compact (no spaces), UTF-8 as it is (no \\u escapes for non-ASCII text).
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def encode_envelope(data: Any, request_id: str | None, *, error: dict[str, Any] | None = None, **meta: Any) -> bytes:
    """`{"data", "meta"}`, or with `error` (code, message, details) `{"data": null, "error", "meta"}`."""
    body = {"data": data, "meta": {"request_id": request_id, **meta}}
    if error is not None:
        body = {"data": None, "error": error, "meta": body["meta"]}
    return encode(body)


def encode(value: Any) -> bytes:
    """`value` as compact JSON, written by orjson (the hot path: docs/performance.md). orjson refuses
    two things a client can make us echo: a string with a lone surrogate (Python's json.loads reads
    "\\ud800" as one: an unknown key named in details) and an integer past 64 bits (a JSON-RPC id).
    Those go to the standard library, in the same style, each lone surrogate written as the text
    \\udXXX: strict JSON (RFC 8259 §8.2), never a 500."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(_valid_text(value), ensure_ascii=False, separators=(",", ":")).encode()


def _valid_text(value: Any) -> Any:
    """`value` with every lone surrogate in its strings (keys included) replaced by the text \\udXXX."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_valid_text(key): _valid_text(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_valid_text(item) for item in value]
    return value
