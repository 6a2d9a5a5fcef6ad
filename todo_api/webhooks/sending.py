"""One attempt to deliver: the Standard Webhooks signature, and an HTTP POST that goes only where the
address rules allow (addresses.py), to the address that was checked, within the timeout, following no
redirect and reading at most 64 KiB of the answer, which is never kept."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from .addresses import IPAddress, RefusedAddress, resolve

MAX_RESPONSE_BYTES = 64 * 1024
MAX_RETRY_AFTER_SECONDS = 24 * 3600
USER_AGENT = "todo-api-webhooks/1"


@dataclass(frozen=True)
class Outcome:
    """What an attempt came to: the HTTP status (None when there was no answer), a short error text
    when it failed, and the Retry-After it asked for, in seconds, if any."""

    status: int | None
    error: str | None = None
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,` + base64 HMAC-SHA256 over `id.timestamp.body`, keyed with the secret's bytes (after `whsec_`)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(secret: str, message_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The headers of one attempt: the id (the same on every attempt), this attempt's time, its signature."""
    timestamp = int(time.time() if now is None else now)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to `address`, the one that was checked, while Host names the URL's host (no second lookup)."""

    def __init__(self, host: str, port: int, address: IPAddress, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((str(self.address), self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to `address`, with SNI and certificate checks for the URL's host name."""

    def __init__(self, host: str, port: int, address: IPAddress, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((str(self.address), self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post(url: str, body: bytes, request_headers: dict[str, str], *, timeout: float, allow_private: bool) -> Outcome:
    """POST `body` to `url` once: resolve and check every address (unless `allow_private`), connect to
    a checked one, and give the receiver `timeout` seconds in all to answer."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme.lower() == "https"
    port = parts.port or (443 if secure else 80)
    try:
        address = resolve(host, port, allow_private=allow_private)[0]
    except RefusedAddress as refused:
        return Outcome(None, f"refused: {refused}")
    except (OSError, UnicodeError):
        return Outcome(None, "the host name did not resolve")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    connection_class = _PinnedHTTPSConnection if secure else _PinnedHTTPConnection
    connection = connection_class(host, port, address, timeout)
    expired = threading.Event()
    # The whole exchange within `timeout`, however slowly a receiver drips its answer: at the deadline
    # the socket is shut, which ends any read or write in progress.
    deadline = threading.Timer(timeout, _cut, (connection, expired))
    deadline.start()
    try:
        connection.request("POST", target, body=body, headers=request_headers)
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)  # read, to let the receiver finish; never kept
        return _outcome(response)
    except ssl.SSLError as error:
        return Outcome(None, f"TLS failed: {error.reason or type(error).__name__}")
    except (OSError, http.client.HTTPException) as error:
        if expired.is_set() or isinstance(error, TimeoutError):
            return Outcome(None, f"no answer within {timeout:g} s")
        return Outcome(None, _connection_error(error))
    finally:
        deadline.cancel()
        connection.close()


def _cut(connection: http.client.HTTPConnection, expired: threading.Event) -> None:
    expired.set()
    if connection.sock is not None:
        with contextlib.suppress(OSError):  # already closed
            connection.sock.shutdown(socket.SHUT_RDWR)


def _connection_error(error: Exception) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    if isinstance(error, http.client.HTTPException):
        return "not a valid HTTP answer"
    return f"connection failed: {type(error).__name__}"


def _outcome(response: http.client.HTTPResponse) -> Outcome:
    status = response.status
    if 200 <= status < 300:
        return Outcome(status)
    retry_after = _retry_after(response.getheader("Retry-After")) if status in (429, 503) else None
    reason = "a redirect (not followed)" if 300 <= status < 400 else f"HTTP {status}"
    return Outcome(status, reason, retry_after)


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP date), at most 24 h; None if unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
