"""Better Auth's public keys (the JWKS at <BETTER_AUTH_URL>/api/auth/jwks), cached per worker.

The rules of API.md §1: a key is found by the token's `kid` and must be of the kind its `alg`
needs; an unknown `kid` refetches the set at most once per cooldown (a flood of made-up `kid`s
costs one fetch, not one per request); a fetch gives up after a short timeout in total, whatever
the server sends, and no lookup waits on another's fetch longer than that; cached keys keep
verifying while the endpoint is down; only when no key set was ever fetched does a lookup fail,
with JwksUnavailable (a 503: the client's token may well be fine).
"""

from __future__ import annotations

import functools
import http.client
import json
import logging
import math
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import jwt

log = logging.getLogger("todo_api.jwks")

# The key type and curve each algorithm needs: a token's `alg` never gets a key of another kind.
KEY_TYPES: dict[str, tuple[str, str | None]] = {
    "EdDSA": ("OKP", "Ed25519"),
    "ES256": ("EC", "P-256"),
    "RS256": ("RSA", None),
    "PS256": ("RSA", None),
}
MIN_RSA_BITS = 2048
MAX_JWKS_BYTES = 256 * 1024


class JwksUnavailable(Exception):
    """No key set has been fetched yet and the endpoint cannot be reached now."""

    def __init__(self, retry_after: int):
        super().__init__(f"no JWKS could be fetched; retry in {retry_after} s")
        self.retry_after = retry_after


class _FetchError(Exception):
    """The JWKS endpoint did not give a usable JWK Set; str() says why, for the log."""


@dataclass(frozen=True)
class _KeySet:
    keys: Mapping[tuple[str, str], jwt.PyJWK]  # (kid, alg) → the key that verifies alg
    fetched_at: float


class JwksCache:
    """The JWKS at `url`, fetched on first use and kept; thread-safe (gunicorn sync or gthread).

    A set older than `max_age` is refetched by the next lookup, which goes on with the old keys if
    that fails; an unknown `kid` refetches it at once. Fetches of any kind are at least `cooldown`
    seconds apart and each gives up after about `timeout` seconds; a lookup waits for another
    thread's fetch at most `timeout` seconds too, then goes on with the keys it has.
    """

    def __init__(
        self,
        url: str,
        algorithms: Iterable[str],
        *,
        max_age: float = 300.0,
        cooldown: float = 10.0,
        timeout: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.url = url
        self.algorithms = tuple(algorithms)
        unknown = [a for a in self.algorithms if a not in KEY_TYPES]
        if unknown:
            raise ValueError(f"JWKS keys cannot verify {', '.join(unknown)}")
        self.max_age = max_age
        self.cooldown = cooldown
        self.timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()  # held while fetching; readers never take it, lookups wait on it a while
        self._key_set: _KeySet | None = None
        self._last_attempt: float | None = None
        self._last_attempt_failed = False

    def key(self, kid: str, algorithm: str) -> jwt.PyJWK | None:
        """The published key `kid` if it verifies `algorithm`, else None (after at most one refetch).

        Raises JwksUnavailable when no key set was ever fetched and none can be fetched now.
        """
        key_set = self._current()
        key = key_set.keys.get((kid, algorithm))
        if key is None:
            # Perhaps a key published since the last fetch (rotation): look again, within the cooldown rule.
            key_set = self._refresh(key_set, wait=True) or key_set
            key = key_set.keys.get((kid, algorithm))
        return key

    def status(self) -> str:
        """For /readyz: "ok", "stale" (cached keys in use, the latest fetch failed) or "unreachable"."""
        try:
            self._current()
        except JwksUnavailable:
            return "unreachable"
        return "stale" if self._last_attempt_failed else "ok"

    def _current(self) -> _KeySet:
        key_set = self._key_set
        if key_set is None:
            key_set = self._refresh(None, wait=True)
            if key_set is None:
                raise JwksUnavailable(self._retry_after())
        elif self._clock() - key_set.fetched_at >= self.max_age:
            # One thread refreshes old keys; the others go on with them meanwhile.
            key_set = self._refresh(key_set, wait=False) or key_set
        return key_set

    def _refresh(self, seen: _KeySet | None, *, wait: bool) -> _KeySet | None:
        """Fetch the set unless another thread replaced `seen` meanwhile or the cooldown forbids it;
        return the set held afterwards (None while none was ever fetched).

        While another thread fetches, `wait=True` waits for it, at most as long as a fetch may take,
        and goes on with what it got: a lookup either fetches or waits, never both in turn.
        """
        if not self._lock.acquire(blocking=False):
            if wait and self._lock.acquire(timeout=self.timeout):
                self._lock.release()
            return self._key_set
        try:
            if self._key_set is not seen or not self._may_fetch():
                return self._key_set
            self._last_attempt = self._clock()
            try:
                self._key_set = _KeySet(self._fetch(), fetched_at=self._last_attempt)
                self._last_attempt_failed = False
            except _FetchError as error:
                self._last_attempt_failed = True
                log.warning(
                    "JWKS fetch failed",
                    extra={
                        "event": "jwks.fetch_failed",
                        "url": self.url,
                        "error": str(error),
                        "cached_keys": len(self._key_set.keys) if self._key_set else 0,
                    },
                )
            return self._key_set
        finally:
            self._lock.release()

    def _may_fetch(self) -> bool:
        return self._last_attempt is None or self._clock() - self._last_attempt >= self.cooldown

    def _retry_after(self) -> int:
        """Whole seconds until the cooldown lets the next fetch happen (at least 1)."""
        waited = self._clock() - self._last_attempt if self._last_attempt is not None else self.cooldown
        return max(1, math.ceil(self.cooldown - waited))

    def _fetch(self) -> dict[tuple[str, str], jwt.PyJWK]:
        try:
            document = json.loads(self._download())
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or absurdly nested
            raise _FetchError("the response is not JSON") from None
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise _FetchError("the response is not a JWK Set (no keys array)")
        keys: dict[tuple[str, str], jwt.PyJWK] = {}
        for entry in entries:
            for algorithm, key in self._usable_keys(entry).items():
                keys.setdefault((entry["kid"], algorithm), key)
        usable_kids = {kid for kid, _ in keys}
        log.info(
            "JWKS fetched",
            extra={
                "event": "jwks.fetched",
                "url": self.url,
                "keys": len(usable_kids),
                "skipped": len(entries) - len(usable_kids),
            },
        )
        return keys

    def _download(self) -> bytes:
        request = urllib.request.Request(self.url, headers={"Accept": "application/json", "User-Agent": "todo-api"})
        too_slow = _FetchError(f"no complete response within {self.timeout} s")
        body = b""
        with _Deadline(self.timeout) as deadline:
            try:
                with deadline.opener().open(request, timeout=self.timeout) as response:
                    while chunk := response.read1(64 * 1024):
                        body += chunk
                        if len(body) > MAX_JWKS_BYTES:
                            raise _FetchError(f"the response is larger than {MAX_JWKS_BYTES} bytes")
            except urllib.error.HTTPError as error:
                error.close()
                raise (too_slow if deadline.expired else _FetchError(f"HTTP {error.code}")) from None
            except (OSError, http.client.HTTPException) as error:  # refused, DNS, TLS, timeout, cut short
                raise (too_slow if deadline.expired else _FetchError(f"{type(error).__name__}: {error}")) from None
            if deadline.expired:  # the socket was shut mid-body: what arrived is not the whole document
                raise too_slow
        return body

    def _usable_keys(self, entry: Any) -> dict[str, jwt.PyJWK]:
        """The configured algorithms this JWK may verify, each with its key object (RFC 7517: a key
        with an `alg` is for that algorithm only; one with `use` other than "sig" is not for us)."""
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str) or not entry["kid"]:
            return {}
        if entry.get("use", "sig") != "sig":
            return {}
        usable: dict[str, jwt.PyJWK] = {}
        for algorithm in self.algorithms:
            key_type, curve = KEY_TYPES[algorithm]
            if entry.get("kty") != key_type or (curve is not None and entry.get("crv") != curve):
                continue
            if entry.get("alg", algorithm) != algorithm:
                continue
            try:
                key = jwt.PyJWK(entry, algorithm)
            except jwt.PyJWTError:
                continue
            if key_type == "RSA" and key.key.key_size < MIN_RSA_BITS:
                continue
            usable[algorithm] = key
        return usable


class _Deadline:
    """Shuts the connection of one fetch once `seconds` have passed, whatever the server is sending.

    A socket timeout bounds each read, not the response: a server that answers `HTTP/1.1 200 OK`
    and then one byte a second never trips it. So a timer shuts the socket down at the deadline,
    which ends the read in progress (status line, headers, TLS handshake or body alike).
    """

    def __init__(self, seconds: float):
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        with self._lock:
            for watched in self._sockets:
                watched.close()
            self._sockets.clear()

    def opener(self) -> urllib.request.OpenerDirector:
        """urllib as usual (proxies from the environment, redirects), on connections this deadline watches."""
        return urllib.request.build_opener(_WatchedHandler(self))

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock` down at the deadline. A duplicate is kept: it refers to the same connection
        and outlives TLS wrapping, which detaches the original socket object."""
        with self._lock:
            self._sockets.append(sock.dup())
            if self.expired:
                self._shut(self._sockets[-1])

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for watched in self._sockets:
                self._shut(watched)

    @staticmethod
    def _shut(watched: socket.socket) -> None:
        with suppress(OSError):  # already closed by the fetch: nothing to stop
            watched.shutdown(socket.SHUT_RDWR)


class _WatchedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection whose socket `deadline` watches from the moment it is connected."""

    deadline: _Deadline

    def connect(self) -> None:
        super().connect()
        self.deadline.watch(self.sock)


class _WatchedHTTPSConnection(http.client.HTTPSConnection, _WatchedHTTPConnection):
    """HTTPSConnection.connect() calls _WatchedHTTPConnection.connect() (the MRO), so the socket is
    watched before the TLS handshake starts."""


class _WatchedHandler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """urllib's handlers for http:// and https://, on connections that one deadline watches."""

    def __init__(self, deadline: _Deadline):
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(self._connection, _WatchedHTTPConnection), req)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(self._connection, _WatchedHTTPSConnection), req)

    def _connection(self, connection_class: type[_WatchedHTTPConnection], host: str, **kwargs: Any) -> Any:
        connection = connection_class(host, **kwargs)
        connection.deadline = self._deadline
        return connection
