"""The personal access token itself: making one, and checking one presented on a request.

A token is `tdo_`, 43 URL-safe base64 characters from 32 random bytes (256 bits), then its user's id
in URL-safe base64. The user part lets the check name the user, so its one lookup is
`WHERE user_id = ... AND token_hash = ...`: one shard on Citus, one probe of a unique index
(docs/tokens.md has the alternatives). The database keeps only the SHA-256 of the whole token: a
token is high-entropy, so a fast hash is enough (no bcrypt per request), and a changed user part
changes the hash, so it finds nothing. No cache: a revoked token is refused by the next request.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from ...platform.db import Database
from ..scopes import granted

PREFIX = "tdo_"
SECRET_BYTES = 32
SECRET_LENGTH = 43  # URL-safe base64 of SECRET_BYTES, without padding
_USER_PART = re.compile(r"[A-Za-z0-9_-]+")


class Refused(Exception):
    """A presented token that authenticates nobody: the sentence says why (unknown, expired)."""


@dataclass(frozen=True)
class Holder:
    """Whom a presented token speaks for, and what it may do."""

    user_id: str
    scopes: frozenset[str]
    token_id: int


def is_personal(token: str) -> bool:
    """Whether a bearer credential is a personal access token (a JWT starts with `eyJ`)."""
    return token.startswith(PREFIX)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def mint(user_id: str) -> str:
    """A new token for `user_id`; shown once, to its creator, and never stored."""
    user_part = base64.urlsafe_b64encode(user_id.encode()).decode().rstrip("=")
    return PREFIX + secrets.token_urlsafe(SECRET_BYTES) + user_part


def user_of(token: str) -> str | None:
    """The user id a token names, or None for a string that is not one of our tokens."""
    user_part = token[len(PREFIX) + SECRET_LENGTH :]
    if not _USER_PART.fullmatch(user_part):
        return None
    try:
        return base64.urlsafe_b64decode(user_part + "=" * (-len(user_part) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def check(database: Database, token: str) -> Holder:
    """The holder of a presented token, with one indexed lookup; Refused if it is unknown, revoked
    or expired. Notes the minute of use when the stored one is older (at most a write a minute)."""
    user_id = user_of(token)
    if user_id is None:
        raise Refused("The token is malformed.")
    digest = hash_token(token)
    found = database.fetch_values("find_access_token", {"user_id": user_id, "token_hash": digest})
    # The index found it by equality; the comparison that decides is the constant-time one.
    if found is None or not hmac.compare_digest(found[2], b"\\x" + digest.hex().encode()):  # bytea as text
        raise Refused("The token is unknown or was revoked.")
    token_id, scopes, _, expired, used_before_this_minute = found
    if expired == b"t":
        raise Refused("The token has expired.")
    if used_before_this_minute == b"t":
        database.fetch_one("touch_access_token", {"user_id": user_id, "token_id": int(token_id)})
    return Holder(user_id, _granted(scopes), int(token_id))


@functools.lru_cache(maxsize=64)
def _granted(scopes_text: bytes) -> frozenset[str]:
    """What a token may do, from its scopes as PostgreSQL writes a text[] (`{tasks:read,webhooks}`)."""
    return granted(scopes_text.decode().strip("{}").split(","))
