"""Idempotency-Key on POST (API.md §4, Concurrency and retries).

The key is claimed, the task inserted and the response remembered in one transaction. A retry
with the same key waits on the claim while the first request is in flight, then replays the
remembered response; a failed request rolls back its claim, so nothing of it is remembered.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from flask import request
from psycopg.types.json import Json

from .db import Runner
from .errors import ApiError, validation_error

HEADER = "Idempotency-Key"
CONFLICT = "idempotency_conflict"
# Every named statement this module runs (sql/idempotency.sql): checked at start-up.
QUERY_NAMES = ("claim_idempotency_key", "get_idempotent_response", "save_idempotent_response", "purge_idempotency_keys")
# Expired keys a create forgets at most: each create adds one key, so the backlog only shrinks, and a
# create after a burst of thousands of keys costs what any other does.
PURGE_BATCH = 100
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True)
class Remembered:
    """The parts of a first response that a retry gets back."""

    status: int
    data: Any
    location: str
    etag: str


def key_from_request() -> str | None:
    """The request's Idempotency-Key, None when absent; 400 naming the header when malformed."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not _VALID_KEY.match(key):
        raise validation_error({HEADER: ["Must be 1-255 visible ASCII characters (0x21-0x7E)."]})
    return key


def body_hash(body: Any) -> str:
    """Bodies equal as JSON hash alike, whatever their spacing or key order."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def claim(run: Runner, user_id: str, key: str, request_hash: str) -> Remembered | None:
    """Hold the key for this request (None), or return the live response it already has."""
    params = {"user_id": user_id, "key": key}
    if run.fetch_one("claim_idempotency_key", {**params, "request_hash": request_hash}) is not None:
        run.execute("purge_idempotency_keys", {**params, "batch": PURGE_BATCH})
        return None
    stored = run.fetch_one("get_idempotent_response", params)
    if stored is None or stored["status"] is None:  # expired or rolled back between the two statements
        raise ApiError(409, "A request with this Idempotency-Key is still in flight; retry shortly.", code=CONFLICT)
    if stored["request_hash"] != request_hash:
        raise ApiError(409, "This Idempotency-Key was used for a different request.", code=CONFLICT)
    return Remembered(stored["status"], stored["response"], stored["location"], stored["etag"])


def remember(run: Runner, user_id: str, key: str, response: Remembered) -> None:
    run.execute(
        "save_idempotent_response",
        {
            "user_id": user_id,
            "key": key,
            "status": response.status,
            "response": Json(response.data),
            "location": response.location,
            "etag": response.etag,
        },
    )
