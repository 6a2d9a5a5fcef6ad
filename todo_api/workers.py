"""gunicorn classes the service runs with (gunicorn.conf.py).

The worker is gthread with two changes.

It answers the requests gunicorn itself refuses, before any app sees them (a request line over
4094 bytes: 414; a header over 8190 bytes or more than 100 headers: 431; a line that is not
HTTP: 400), in the envelope of API.md §2 rather than gunicorn's HTML page. gunicorn has no hook
for that page, so the worker swaps `gunicorn.util.write_error`, the one function that writes it,
in its own process as it starts; tests/test_gunicorn.py holds the swap to its effect.

It tolerates a shut listening socket. On SIGTERM, gunicorn.conf.py shuts the listening socket
down so that new connections are refused while in-flight requests finish. A worker that polls the
socket in that instant sees it readable and `accept()` fails with EINVAL; the stock worker would
crash there, this one carries on: the master is stopping and the worker's own SIGTERM is on its way.
"""

from __future__ import annotations

import errno
import json
import socket
import uuid

from gunicorn import util
from gunicorn.glogging import Logger
from gunicorn.workers.gthread import ThreadWorker

from .errors import refusal


def write_error_envelope(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn.util.write_error's stand-in: the same answer, as the API's JSON error envelope."""
    code, message = refusal(status_int)
    request_id = uuid.uuid4().hex
    body = json.dumps(
        {"data": None, "error": {"code": code, "message": message, "details": {}}, "meta": {"request_id": request_id}}
    ).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Request-ID: {request_id}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class ApiThreadWorker(ThreadWorker):
    """gthread, answering gunicorn's refusals in the envelope and surviving a shut listening socket."""

    def init_process(self) -> None:
        util.write_error = write_error_envelope  # this worker process only (see the module docstring)
        super().init_process()

    def accept(self, listener: socket.socket) -> None:
        try:
            super().accept(listener)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise


class AppLogger(Logger):
    """gunicorn's logger without its access log: the app writes one line per request itself.

    With `logconfig_dict` set, stock gunicorn assembles the access-log fields of every request
    (a dozen lookups and a strftime) and only then finds the access logger silenced.
    """

    def access(self, resp, req, environ, request_time):
        return None
