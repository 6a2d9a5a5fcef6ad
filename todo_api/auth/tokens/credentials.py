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
from typing import Any

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


@dataclass(frozen=True)
class Presented:
    """A presented token's user and hash: what its lookup asks for (`find_access_token`)."""

    user_id: str
    digest: bytes

    def lookup_params(self) -> dict[str, str | bytes]:
        return {"user_id": self.user_id, "token_hash": self.digest}


def present(token: str) -> Presented:
    """The lookup a presented token needs; Refused if it names no user."""
    user_id = user_of(token)
    if user_id is None:
        raise Refused("The token is malformed.")
    return Presented(user_id, hash_token(token))


def check(database: Database, token: str) -> Holder:
    """The holder of a presented token, with one indexed lookup of its own; Refused if it is unknown,
    revoked or expired. Notes the minute of use when the stored one is older (at most a write a minute)."""
    return check_presented(database, present(token))


def check_presented(database: Database, presented: Presented) -> Holder:
    """`check` for a token already parsed."""
    found = database.fetch_values("find_access_token", presented.lookup_params())
    if found is None:
        raise Refused("The token is unknown or was revoked.")
    token_id, scopes, stored_hash, expired, used_before_this_minute = found
    holder, stale = decide(
        presented,
        (int(token_id), _granted(scopes.decode()), bytes.fromhex(stored_hash[2:].decode()), expired == b"t"),  # type: ignore[index,union-attr,arg-type]
        used_before_this_minute == b"t",
    )
    if stale:
        touch(database, holder)
    return holder


def decide(
    presented: Presented, found: tuple[int, frozenset[str], bytes, bool] | None, stale: bool
) -> tuple[Holder, bool]:
    """The holder, from the lookup's row (id, scopes, hash, expired), and whether its last-used minute
    needs a write (`stale`); Refused for no row, another hash or an expired token."""
    # The index found it by equality; the comparison that decides is the constant-time one.
    if found is None or not hmac.compare_digest(found[2], presented.digest):
        raise Refused("The token is unknown or was revoked.")
    token_id, scopes, _, expired = found
    if expired:
        raise Refused("The token has expired.")
    return Holder(presented.user_id, scopes, token_id), stale


def decide_row(presented: Presented, row: tuple[Any, ...] | None) -> tuple[Holder, bool]:
    """`decide` for the lookup's row as psycopg reads it (its types: int, str, bytes, bool, bool)."""
    if row is None:
        return decide(presented, None, False)
    token_id, scopes, stored_hash, expired, used_before_this_minute = row
    return decide(presented, (token_id, _granted(scopes), stored_hash, expired), used_before_this_minute)


def touch(database: Database, holder: Holder) -> None:
    """Note this minute as the token's last use (the statement's WHERE makes it once a minute)."""
    database.fetch_one("touch_access_token", {"user_id": holder.user_id, "token_id": holder.token_id})


@functools.lru_cache(maxsize=64)
def _granted(scopes_text: str) -> frozenset[str]:
    """What a token may do, from its scopes as the lookup gives them (`tasks:read webhooks`)."""
    return granted(scopes_text.split(" "))
