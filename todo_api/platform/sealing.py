"""Opaque tokens handed to clients, such as listing cursors (API.md §4) and sync tokens (§6).

A token is base64url(nonce || AES-256-GCM(payload)): nothing of it can be read without the key,
and no changed or made-up token opens. Each purpose has its own key, derived (HKDF-SHA256) from
the 'cursor' secret in signing_keys, which every host shares through the database; the associated
data binds a token to its user and to a context its feature chooses (a listing's sort and filters).
So a token of another purpose, user or context fails like a tampered one.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

NONCE_BYTES = 12
# Every named statement this module runs (sql/sealing.sql): checked at start-up.
QUERY_NAMES = ("get_cursor_key",)


@dataclass(frozen=True)
class Purpose:
    """What a feature seals tokens for: `name` goes into the derivation of its key, so a token of
    one purpose never opens as another's. A name, once tokens are out, never changes."""

    name: str


class InvalidToken(ValueError):
    """Tampered, made up, or issued for another purpose, user or listing."""


class TokenCodec:
    """Seals and opens tokens with keys derived from one shared secret."""

    def __init__(self, secret: bytes):
        self._secret = secret
        self._ciphers: dict[Purpose, AESGCM] = {}

    def _cipher(self, purpose: Purpose) -> AESGCM:
        cipher = self._ciphers.get(purpose)
        if cipher is None:  # derived once per purpose; two threads deriving it at once get the same key
            cipher = self._ciphers[purpose] = AESGCM(_derive(self._secret, purpose))
        return cipher

    def seal(self, purpose: Purpose, payload: bytes, *, user_id: str, context: str = "") -> str:
        nonce = os.urandom(NONCE_BYTES)  # random: a (key, nonce) pair must never repeat
        sealed = self._cipher(purpose).encrypt(nonce, payload, _associated(user_id, context))
        return _b64(nonce + sealed)

    def open(self, purpose: Purpose, token: str, *, user_id: str, context: str = "") -> bytes:
        try:
            raw = _unb64(token)
            return self._cipher(purpose).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated(user_id, context))
        except (ValueError, InvalidTag):
            raise InvalidToken() from None


def app_codec() -> TokenCodec:
    """The app's codec, built on first use from the 'cursor' secret of signing_keys."""
    codec = current_app.extensions.get("todo_api.tokens")
    if codec is None:
        row = current_app.extensions["todo_api.db"].fetch_one("get_cursor_key", {})
        if row is None:
            raise RuntimeError("signing_keys has no 'cursor' row: run `todo-api migrate`")
        codec = current_app.extensions["todo_api.tokens"] = TokenCodec(bytes(row["secret"]))
    return codec


def _derive(secret: bytes, purpose: Purpose) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"todo-api {purpose.name} v1".encode())
    return hkdf.derive(secret)


def _associated(user_id: str, context: str) -> bytes:
    # JSON keeps the two apart whatever characters they hold (and escapes them all to ASCII).
    return json.dumps([user_id, context]).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Strict inverse of _b64: one spelling per value, and at least a nonce and a tag long."""
    if not text.isascii():
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text or len(data) < NONCE_BYTES + 16:
        raise ValueError("not a token")
    return data
