"""gunicorn classes the service runs with (gunicorn.conf.py).

The worker is gthread with these changes.

Read deadlines (API.md §2's 408). Stock gthread gives a connection to a worker thread as soon as a
byte arrives; the thread then reads the request head, and the app the body, blocking and with no
deadline, so a few clients that send a byte and stop hold every thread. Here the main loop, which
already polls idle connections, reads the head without blocking and gives the connection to a
thread only once the head is complete, within REQUEST_HEAD_TIMEOUT_SECONDS of the connection opening
(or of the first byte of a kept-alive one). The thread then reads the body, all of it before the app
runs, within REQUEST_BODY_TIMEOUT_SECONDS for all its reads together. A client late with either is
answered 408 in the envelope and the connection closed (one that sent nothing is just closed).

Bodies over 64 KiB. The thread keeps the first 64 KiB + 1 bytes (enough for the app's 413) and reads
and drops up to 1 MiB more, so that the connection stays usable after the 413; a body longer still
is answered with `Connection: close` (RFC 9112 §9.6) rather than cut off behind a keep-alive answer.

Closing without lingering. gunicorn's graceful close waits on the main loop, up to 2 s, for the
client's FIN, and a client that never sends it would stall every connection of the worker meanwhile.
The body has been read by then (or the answer said close), so closing at once loses nothing.

gunicorn's refusals, before any app sees the request (a request line over 4094 bytes: 414; a header
over 8190 bytes or more than 100 headers: 431; a line that is not HTTP: 400), are answered in the
envelope of API.md §2 rather than gunicorn's HTML page. gunicorn has no hook for that page, so the
worker swaps `gunicorn.util.write_error`, the one function that writes it, in its own process as it
starts; tests/test_gunicorn.py holds the swap to its effect.

A shut listening socket is tolerated. On SIGTERM, gunicorn.conf.py shuts the listening socket down
so that new connections are refused while in-flight requests finish. A worker that polls the socket
in that instant sees it readable and `accept()` fails with EINVAL; the stock worker would crash
there, this one carries on: the master is stopping and the worker's own SIGTERM is on its way.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import selectors
import socket
import time
import uuid
from functools import partial

from gunicorn import util
from gunicorn.glogging import Logger
from gunicorn.http.message import Request
from gunicorn.workers.gthread import TConn, ThreadWorker

from . import MAX_BODY_BYTES
from .config import load_settings
from .errors import refusal

HEAD_ENDS = (b"\r\n\r\n", b"\n\n")  # the parser refuses a bare LF at once: no need to wait for more
HEAD_READ_BYTES = 64 * 1024
DRAIN_BYTES = 1024 * 1024  # dropped past the 64 KiB kept, so the connection stays usable after a 413


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


def write_request_timeout(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # a client gone or not reading is closed all the same
        write_error_envelope(sock, 408, "Request Timeout", "")


class Connection(TConn):
    """gthread's connection, holding the bytes of a request head read on the main loop."""

    def __init__(self, cfg, sock: socket.socket, client, server) -> None:
        super().__init__(cfg, sock, client, server)
        self.head = bytearray()

    def init(self) -> None:
        super().init()  # the first time only: makes the parser
        self.parser.unreader.unread(bytes(self.head))
        self.head.clear()

    def close(self, graceful: bool = False) -> None:
        """Close now; drop what is already buffered, so that the kernel sends FIN rather than RST."""
        try:
            self.sock.setblocking(False)
            for _ in range(16):
                if not self.sock.recv(HEAD_READ_BYTES):
                    break
        except OSError:
            pass  # nothing buffered, or the socket is gone
        util.close(self.sock)


class Deadline:
    """A socket whose recv() calls share one deadline (a socket timeout bounds each call alone)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline

    def recv(self, size: int) -> bytes:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        return self.sock.recv(size)


class ApiThreadWorker(ThreadWorker):
    """gthread with read deadlines, envelope refusals and an immediate close (the module docstring)."""

    def init_process(self) -> None:
        util.write_error = write_error_envelope  # this worker process only (see the module docstring)
        settings = load_settings()  # gunicorn.conf.py has validated it in the master already
        self.head_timeout = settings.request_head_timeout_seconds
        self.body_timeout = settings.request_body_timeout_seconds
        # A head this long is refused (414 or 431) by the parser from these bytes alone.
        cfg = self.cfg
        self.max_head_bytes = cfg.limit_request_line + cfg.limit_request_fields * (cfg.limit_request_field_size + 2) + 8
        super().init_process()

    def accept(self, listener: socket.socket) -> None:
        try:
            sock, client = listener.accept()
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED, errno.EINVAL):
                return  # EINVAL: the listening socket is shut (see the module docstring)
            raise
        self.nr_conns += 1
        self.enqueue_req(Connection(self.cfg, sock, client, listener.getsockname()))

    def enqueue_req(self, conn: Connection) -> None:
        """Wait, on the main loop, for the request head; only a complete head goes to a thread."""
        if conn.parser is not None:  # a kept-alive connection may hold bytes read ahead (pipelining)
            conn.head += conn.parser.unreader.take_buffered()
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + self.head_timeout
        self.pending_conns.append(conn)  # gthread's queue of connections awaiting data, by deadline
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))
        self.on_pending_socket_readable(conn, conn.sock)

    def on_pending_socket_readable(self, conn: Connection, client: socket.socket) -> None:
        searched = max(len(conn.head) - 3, 0)
        try:
            data = conn.sock.recv(HEAD_READ_BYTES)
        except BlockingIOError:
            data = None  # nothing yet
        except OSError:
            data = b""
        if data == b"":  # the client has gone
            self._stop_waiting(conn)
            self.nr_conns -= 1
            conn.close()
            return
        conn.head += data or b""
        if len(conn.head) <= self.max_head_bytes and not any(conn.head.find(end, searched) >= 0 for end in HEAD_ENDS):
            return
        self._stop_waiting(conn)
        conn.data_ready = True  # gthread's handle() need not wait for a first byte
        super().enqueue_req(conn)

    def murder_pending(self) -> None:
        """Close the connections whose head is late, with a 408 when they sent part of one."""
        now = time.monotonic()
        while self.pending_conns and self.pending_conns[0].timeout <= now:
            conn = self.pending_conns[0]
            self._stop_waiting(conn)
            if conn.head:
                write_request_timeout(conn.sock)
            self.nr_conns -= 1
            conn.close()

    def _stop_waiting(self, conn: Connection) -> None:
        self.poller.unregister(conn.sock)
        self.pending_conns.remove(conn)

    def handle_request(self, req: Request, conn: Connection) -> bool:
        """Read the body within the deadline before the app runs; else answer 408 and close."""
        try:
            self.read_body(req, conn.parser.unreader)
        except TimeoutError:
            write_request_timeout(conn.sock)
            return False
        return super().handle_request(req, conn)

    def read_body(self, req: Request, unreader) -> None:
        """Replace req.body by its first MAX_BODY_BYTES + 1 bytes, read within REQUEST_BODY_TIMEOUT_SECONDS.

        Up to DRAIN_BYTES more are read and dropped; past that, the answer closes the connection.
        """
        sock = unreader.sock
        if req._expected_100_continue:  # gunicorn would send it as the app starts: too late for this read
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            req._expected_100_continue = False
        unreader.sock = Deadline(sock, time.monotonic() + self.body_timeout)
        try:
            body = req.body.read(MAX_BODY_BYTES + 1)
            dropped = 0
            while dropped <= DRAIN_BYTES and (chunk := req.body.read(HEAD_READ_BYTES)):
                dropped += len(chunk)
        finally:
            unreader.sock = sock
            sock.settimeout(None)
        if dropped > DRAIN_BYTES:
            req.force_close()
        req.body = io.BytesIO(body)


class AppLogger(Logger):
    """gunicorn's logger without its access log: the app writes one line per request itself.

    With `logconfig_dict` set, stock gunicorn assembles the access-log fields of every request
    (a dozen lookups and a strftime) and only then finds the access logger silenced.
    """

    def access(self, resp, req, environ, request_time):
        return None
