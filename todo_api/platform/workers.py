"""gunicorn classes the service runs with (gunicorn.conf.py).

The worker is gthread with these changes.

Read deadlines (API.md §2's 408). Stock gthread gives a connection to a worker thread as soon as a
byte arrives; the thread then reads the request head, and the app the body, blocking and with no
deadline, so a few clients that send a byte and stop hold every thread. Here the main loop, which
already polls idle connections, reads the head without blocking and gives the connection to a
thread only once the head is complete, within REQUEST_HEAD_TIMEOUT_SECONDS of the connection opening
(or of the first byte of a kept-alive one), and then the body, up to what the thread will read of it:
Content-Length bytes, or a chunked body followed through its framing (chunked.py) to its end or to what
gunicorn refuses in it. The thread reads the body before the app runs, within REQUEST_BODY_TIMEOUT_SECONDS
for all its reads together, a backstop only: it finds it buffered. A client late with either is
answered 408 in the envelope and the connection closed (one that sent nothing is just closed).

Bodies over 64 KiB. The thread keeps the first 64 KiB + 1 bytes (enough for the app's 413) and reads
and drops up to 256 KiB more, so that the connection stays usable after the 413; a body longer still
is answered with `Connection: close` (RFC 9112 §9.6) rather than cut off behind a keep-alive answer.
A chunked body whose framing alone (size lines, extensions, CRLFs) passes 64 KiB before the body
has ended is answered 413 and closed on the main loop: a thread would wait for the content.

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
import logging
import re
import selectors
import socket
import time
import uuid
from functools import partial

from gunicorn import util
from gunicorn.glogging import Logger
from gunicorn.http.message import DEFAULT_MAX_HEADERFIELD_SIZE, MAX_HEADERS, Request
from gunicorn.workers.gthread import TConn, ThreadWorker

from .chunked import ChunkedBody
from .config import load_settings
from .envelope import encode_envelope
from .errors import refusal
from .http import MAX_BODY_BYTES
from .logs import request_log

HEAD_ENDS = (b"\r\n\r\n", b"\n\n")  # the parser refuses a bare LF at once: no need to wait for more
HEAD_END_OVERLAP = 3  # a head's end split across reads starts at most this many bytes before the new ones
CHUNKED = -1
READ_BYTES = 64 * 1024
DRAIN_BYTES = 256 * 1024  # dropped past the 64 KiB + 1 kept, so that the connection stays usable after a 413
# All of a body read_body may read: 64 KiB + 1 kept, 256 KiB + 1 dropped, the last of it asked of
# gunicorn's Body, which reads at least 1 KiB at a time. With this much buffered the thread never waits.
BODY_READ_BYTES = MAX_BODY_BYTES + 1 + DRAIN_BYTES + 1024
MAX_CHUNK_FRAMING_BYTES = 64 * 1024  # a chunked body's size lines, extensions and CRLFs: as much as its content
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
INVALID_REQUEST_WARNING = "Invalid request from ip="  # how gunicorn's Worker.handle_error starts its warning


def read_framing(head: bytes) -> tuple[int, bool]:
    """The body size the head announces (CHUNKED, or Content-Length, else 0), and whether the client
    waits for 100 Continue. A rough reading: the parser checks the head properly on the thread."""
    fields = {}
    for line in head.lower().split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip()] = value.strip()
    if b"chunked" in fields.get(b"transfer-encoding", b""):
        size = CHUNKED
    else:
        length = fields.get(b"content-length", b"0")
        size = int(length) if length.isdigit() else 0
    return size, size != 0 and fields.get(b"expect") == b"100-continue"


def write_error_envelope(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn.util.write_error's stand-in: the same answer, as the API's JSON error envelope."""
    code, message = refusal(status_int)
    request_id = uuid.uuid4().hex
    body = encode_envelope(None, request_id, error={"code": code, "message": message, "details": {}})
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Request-ID: {request_id}\r\n\r\n"
    )
    log_refusal(status_int, request_id)
    util.write_nonblock(sock, head.encode("latin-1") + body)


def log_refusal(status: int, request_id: str) -> None:
    """The request's line (OPERATIONS.md: one per request) for an answer the worker gives before any
    app sees the request. Only the status is known for sure (the method and route may not even have
    arrived), so method, route, duration_ms and user_id are null; request_id is the answer's."""
    if not request_log.isEnabledFor(logging.INFO):
        return
    line = {"event": "request", "method": None, "route": None, "status": status, "duration_ms": None, "user_id": None}
    record = request_log.makeRecord(request_log.name, logging.INFO, __file__, 0, "request", (), None, extra=line)
    record.request_id = request_id  # no Flask request here to stamp it (logs.stamp_records_with_request_id)
    request_log.handle(record)


def write_request_timeout(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # a client gone or not reading is closed all the same
        write_error_envelope(sock, 408, "Request Timeout", "")


class Connection(TConn):
    """gthread's connection, holding the bytes of a request read on the main loop."""

    def __init__(self, cfg, sock: socket.socket, client, server) -> None:
        super().__init__(cfg, sock, client, server)
        self.start_request()

    def start_request(self) -> None:
        self.received = bytearray()  # the request's bytes so far: its head, then its body
        self.searched = 0  # where the search for the head's end goes on
        self.body_at: int | None = None  # where the body starts, once the head is complete
        self.body_size = 0
        self.chunked: ChunkedBody | None = None  # a chunked body's framing, followed as it arrives
        self.body_deadline: float | None = None

    def init(self) -> None:
        super().init()  # the first time only: makes the parser
        self.parser.unreader.unread(bytes(self.received))
        self.received = bytearray()

    def close(self, graceful: bool = False) -> None:
        """Close now; drop what is already buffered, so that the kernel sends FIN rather than RST."""
        try:
            self.sock.setblocking(False)
            for _ in range(16):
                if not self.sock.recv(READ_BYTES):
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
        if self.cfg.is_ssl:  # the main loop reads requests as plain bytes
            raise RuntimeError("ApiThreadWorker does not speak TLS: terminate it in front (see docs/hardening.md)")
        util.write_error = write_error_envelope  # this worker process only (see the module docstring)
        settings = load_settings()  # gunicorn.conf.py has validated it in the master already
        self.head_timeout = settings.request_head_timeout_seconds
        self.body_timeout = settings.request_body_timeout_seconds
        # A head this long is refused (414 or 431) by the parser from these bytes alone.
        cfg = self.cfg
        self.max_head_bytes = cfg.limit_request_line + cfg.limit_request_fields * (cfg.limit_request_field_size + 2) + 8
        # gunicorn's chunked reader refuses a size line or a trailer section that has not ended by these
        # (ChunkedReader's limits, from the request's as gunicorn.http.message.Message sets them).
        fields = cfg.limit_request_fields if 0 < cfg.limit_request_fields <= MAX_HEADERS else MAX_HEADERS
        field_size = cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else DEFAULT_MAX_HEADERFIELD_SIZE
        self.max_chunk_size_line = field_size
        self.max_trailer_bytes = fields * (field_size + 2) + 4
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
        """Wait for the request on the main loop; a thread gets it once it has arrived."""
        conn.start_request()
        if conn.parser is not None:  # a kept-alive connection may hold bytes read ahead (pipelining)
            conn.received += conn.parser.unreader.take_buffered()
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + self.head_timeout
        arrived = self.receive(conn)  # often all there already: then the poller is not involved
        if arrived is None:
            self.pending_conns.append(conn)  # gthread's list of connections awaiting data
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))
        else:
            self.go_on(conn, arrived)

    def on_pending_socket_readable(self, conn: Connection, client: socket.socket) -> None:
        arrived = self.receive(conn)
        if arrived is not None:
            self.stop_waiting(conn)
            self.go_on(conn, arrived)

    def receive(self, conn: Connection) -> bool | None:
        """Read what has come: True once the request is in, False if the client has gone (or has been
        refused here), else None."""
        try:
            data = conn.sock.recv(READ_BYTES)
        except BlockingIOError:
            data = None  # nothing new
        except OSError:
            return False
        if data == b"":
            return False
        conn.received += data or b""
        return self.request_arrived(conn)

    def go_on(self, conn: Connection, arrived: bool) -> None:
        if arrived:
            conn.data_ready = True  # gthread's handle() need not wait for a first byte
            super().enqueue_req(conn)
        else:
            self.nr_conns -= 1
            conn.close()

    def request_arrived(self, conn: Connection) -> bool | None:
        """True once the head, and the body its framing announces (up to what a thread reads), are in;
        None while more must come; False if the request has been refused here (413: see the module docstring)."""
        if conn.body_at is None:
            ends = [at + len(end) for end in HEAD_ENDS if (at := conn.received.find(end, conn.searched)) >= 0]
            if not ends:
                conn.searched = max(len(conn.received) - HEAD_END_OVERLAP, 0)
                return True if len(conn.received) > self.max_head_bytes else None
            conn.body_at = min(ends)
            conn.body_size, expects_continue = read_framing(bytes(conn.received[: conn.body_at]))
            if conn.body_size == CHUNKED:
                conn.chunked = ChunkedBody(conn.body_at, self.max_chunk_size_line, self.max_trailer_bytes)
            conn.timeout = conn.body_deadline = time.monotonic() + self.body_timeout
            if expects_continue:
                with contextlib.suppress(OSError):
                    conn.sock.send(CONTINUE)
        if conn.chunked is None:
            return True if len(conn.received) - conn.body_at >= min(conn.body_size, BODY_READ_BYTES) else None
        if conn.chunked.ended(conn.received) or conn.chunked.data_bytes >= BODY_READ_BYTES:
            return True
        if conn.chunked.framing_bytes > MAX_CHUNK_FRAMING_BYTES:
            with contextlib.suppress(OSError):  # a client not reading is closed all the same
                write_error_envelope(conn.sock, 413, "Payload Too Large", "")
            return False
        return None

    def murder_pending(self) -> None:
        """Act on late requests: a late head is answered 408 (if any of it came) and closed; a late
        body goes to a thread, which answers 408 at its first read past the deadline."""
        now = time.monotonic()
        for conn in [conn for conn in self.pending_conns if conn.timeout <= now]:
            self.stop_waiting(conn)
            if conn.body_at is None and conn.received:
                write_request_timeout(conn.sock)
            self.go_on(conn, arrived=conn.body_at is not None)

    def stop_waiting(self, conn: Connection) -> None:
        self.poller.unregister(conn.sock)
        self.pending_conns.remove(conn)

    def handle_request(self, req: Request, conn: Connection) -> bool:
        """Read the body within its deadline before the app runs; else answer 408 and close."""
        try:
            self.read_body(req, conn)
        except TimeoutError:
            write_request_timeout(conn.sock)
            return False
        return super().handle_request(req, conn)

    def _keepalive_after(self, conn: Connection, keepalive: bool) -> bool:
        """gthread drains what the app left of the body, and closes past 64 KiB; read_body has read it all."""
        return keepalive

    def read_body(self, req: Request, conn: Connection) -> None:
        """Replace req.body by its first MAX_BODY_BYTES + 1 bytes, read by the body deadline.

        Up to DRAIN_BYTES more are read and dropped; past that, the answer closes the connection.
        The main loop has usually buffered all of it already, so this does not wait on the client.
        """
        req._expected_100_continue = False  # the main loop has sent it
        unreader = conn.parser.unreader
        sock = unreader.sock
        unreader.sock = Deadline(sock, conn.body_deadline or time.monotonic() + self.body_timeout)
        try:
            body = req.body.read(MAX_BODY_BYTES + 1)
            dropped = 0
            while dropped <= DRAIN_BYTES and (chunk := req.body.read(min(READ_BYTES, DRAIN_BYTES + 1 - dropped))):
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

    def warning(self, msg, *args, **kwargs):
        """gunicorn's warning for a request it refuses ends with its parser's error, which quotes the
        client's bytes (the request line with its query string, a header): a token or a password in a
        URL would land in the log, which OPERATIONS.md forbids. The kind of refusal is kept, the quote cut."""
        if isinstance(msg, str) and msg.startswith(INVALID_REQUEST_WARNING):
            msg = re.split("['\"]", msg, maxsplit=1)[0].rstrip(" :")
        super().warning(msg, *args, **kwargs)
