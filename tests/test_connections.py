"""Connections as the gunicorn worker serves them: read deadlines (408), chunked framing, keep-alive after a refusal."""

from __future__ import annotations

import http.client
import json
import socket
import time
from itertools import cycle, islice

import pytest
import requests
from conftest import SECRET, make_token, read_answer, task_row

pytestmark = pytest.mark.process

WORKERS, THREADS = 2, 2
DEADLINE_SECONDS = 2.0
LOOP_TICK_SECONDS = 1.0  # the worker's main loop looks at deadlines at least this often

STALLS = {
    "first byte": b"G",
    "part of a head": b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
    "part of a body": (
        b"POST /api/u/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        b'{"title": '
    ),
    "part of a chunked body": (
        b"POST /api/u/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Transfer-Encoding: chunked\r\n\r\n20\r\n{"title": '
    ),
    "a byte on a kept-alive connection": b"G",
}


def stall(port: int, variant: str) -> tuple[socket.socket, float]:
    """A connection that sends part of a request and then nothing; and when it stopped sending."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if variant == "a byte on a kept-alive connection":
        kept = http.client.HTTPConnection("127.0.0.1", port)
        kept.sock = sock
        kept.request("GET", "/healthz")
        answer = kept.getresponse()
        answer.read()
        assert answer.getheader("Connection") == "keep-alive"
    sock.sendall(STALLS[variant])
    return sock, time.monotonic()


def test_stalled_clients_get_a_408_by_the_deadline_and_never_hold_the_service(start_gunicorn, database_url):
    env = {
        "DATABASE_URL": database_url,
        "BETTER_AUTH_SECRET": SECRET,
        "WEB_THREADS": str(THREADS),
        "REQUEST_HEAD_TIMEOUT_SECONDS": str(DEADLINE_SECONDS),
        "REQUEST_BODY_TIMEOUT_SECONDS": str(DEADLINE_SECONDS),
    }
    server = start_gunicorn(env, workers=WORKERS)
    variants = list(islice(cycle(STALLS), 2 * WORKERS * THREADS + 2))
    stalled = [(variant, *stall(server.port, variant)) for variant in variants]

    def every_thread_serves() -> None:
        for _ in range(2 * WORKERS * THREADS):
            assert requests.get(f"{server.url}/healthz", timeout=DEADLINE_SECONDS / 2).status_code == 200

    every_thread_serves()
    for _, sock, _ in stalled:  # ... while the stalled connections are still waiting
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(1)

    # By the deadline (and a turn or two of the worker's loop) each has its 408 and a closed connection,
    # and the service serves on while the stalled clients neither read their answers nor close.
    time.sleep(max(0.0, stalled[-1][2] + DEADLINE_SECONDS + 2 * LOOP_TICK_SECONDS - time.monotonic()))
    every_thread_serves()
    answered = []
    for variant, sock, _ in stalled:
        sock.settimeout(0.1)  # the answer is there already
        with sock:
            status, headers, body = read_answer(sock)
        assert status == 408, variant
        assert headers["connection"] == "close"
        envelope = json.loads(body)
        assert envelope["error"]["code"] == "request_timeout"
        assert envelope["meta"]["request_id"] == headers["x-request-id"]
        answered.append(headers["x-request-id"])

    # OPERATIONS.md: one line per request, these too: the status and the answer's request id.
    server.stop()
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    timeouts = [line for line in lines if line.get("event") == "request" and line["status"] == 408]
    assert sorted(line["request_id"] for line in timeouts) == sorted(answered)
    for line in timeouts:
        assert line["logger"] == "todo_api.request"
        assert (line["method"], line["route"], line["duration_ms"], line["user_id"]) == (None, None, None, None)


def test_a_connection_that_sends_nothing_is_closed_by_the_head_deadline(start_gunicorn, database_url):
    env = {"DATABASE_URL": database_url, "BETTER_AUTH_SECRET": SECRET, "REQUEST_HEAD_TIMEOUT_SECONDS": "1"}
    server = start_gunicorn(env, workers=1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        opened = time.monotonic()
        assert sock.recv(1) == b""  # closed without an answer: there was no request to answer
        assert time.monotonic() - opened <= 1 + 2 * LOOP_TICK_SECONDS


OVER_THE_LIMIT = [64 * 1024 + 1, 256 * 1024]


def test_a_kept_alive_client_goes_on_after_a_413_401_or_415(start_gunicorn, database_url, request):
    """Issue 12: after a refusal with an unread body, the next request on the same client succeeds.

    http.client reuses its connection after a keep-alive answer and opens a new one after
    `Connection: close`: either is right, but a connection dropped behind a keep-alive fails here.
    """
    server = start_gunicorn({"DATABASE_URL": database_url, "BETTER_AUTH_SECRET": SECRET}, workers=1)
    client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    request.addfinalizer(client.close)
    auth = {"Authorization": f"Bearer {make_token('kept-alive')}"}
    json_type = {"Content-Type": "application/json"}

    def exchange(method: str, path: str, body: bytes | None = None, headers=None, chunked=False):
        pieces = (body[at : at + 16 * 1024] for at in range(0, len(body), 16 * 1024)) if chunked else body
        client.request(method, path, body=pieces, headers=headers or {}, encode_chunked=chunked)
        answer = client.getresponse()
        return answer.status, answer.read()

    tasks = "/api/kept-alive/tasks"
    status, created = exchange("POST", tasks, b'{"title": "t"}', {**auth, **json_type})
    assert status == 201
    task = f"{tasks}/{json.loads(created)['data']['id']}"

    refusals = [
        (method, path, {**auth, **json_type}, 413, size, chunked)
        for method, path in [("POST", tasks), ("PUT", task), ("PATCH", task), ("PATCH", f"{task}/complete")]
        for size in OVER_THE_LIMIT
        for chunked in (False, True)
    ]
    refusals += [
        ("POST", tasks, {"Authorization": "Bearer not-a-token", **json_type}, 401, OVER_THE_LIMIT[-1], False),
        ("POST", tasks, {**auth, "Content-Type": "text/plain"}, 415, 60 * 1024, False),
        ("POST", tasks, {**auth, "Content-Type": "text/plain"}, 413, OVER_THE_LIMIT[-1], True),
    ]
    for method, path, headers, expected, size, chunked in refusals:
        body = b'{"title": "t"}'.ljust(size)
        assert exchange(method, path, body, headers, chunked)[0] == expected, (method, path, size, chunked)
        assert exchange("GET", task, headers=auth)[0] == 200

    status, _ = exchange("POST", tasks, b'{"title": "t"}'.ljust(64 * 1024), {**auth, **json_type}, chunked=True)
    assert status == 201  # exactly 64 KiB, chunked


def test_pipelined_requests_and_a_client_awaiting_100_continue_are_served(start_gunicorn, database_url):
    """Reading requests on the main loop keeps two HTTP/1.1 habits working."""
    server = start_gunicorn({"DATABASE_URL": database_url, "BETTER_AUTH_SECRET": SECRET}, workers=1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        _, _, rest = read_answer(sock)
    assert rest.count(b"HTTP/1.1 200 OK") == 1  # the second answer, behind the first

    body = b'{"title": "pipelined"}'
    post = (
        f"POST /api/pipelined/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {make_token('pipelined')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + post + body)
        _, _, rest = read_answer(sock)
    assert rest.count(b"HTTP/1.1 201 ") == 1  # a request with a body behind another one

    body = b'{"title": "after 100 Continue"}'
    head = (
        f"POST /api/continue/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {make_token('continue')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nExpect: 100-continue\r\n"
        "Connection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head.encode())
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        status, _, answer = read_answer(sock)
    assert status == 201
    assert json.loads(answer)["data"]["title"] == "after 100 Continue"


# --- chunked bodies (issue 22): the main loop follows the chunk framing before a thread gets the request ---

LONG_DEADLINE_SECONDS = 30  # far beyond ANSWERED_WITHIN_SECONDS: an answer in time cannot have waited for it
ANSWERED_WITHIN_SECONDS = 10
WORKER_READS = 64 * 1024 + 1 + 256 * 1024 + 1024  # of a long body: 64 KiB + 1 kept, the rest dropped (1 KiB reads)
# (a request that stalls, what completes it, and its answer then: 405, a POST to /healthz)
STALLED_BODIES = {
    "a chunk whose data is what ends most chunked bodies (CRLF, the last chunk, the final CRLF)": (
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"7\r\n\r\n0\r\n\r\n",
        b"\r\n0\r\n\r\n",
    ),
    "a long body, up to the last KiB the worker reads of it": (
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"x" * (WORKER_READS - 1023),
        b"x" * 1023,
    ),
}


def long_deadline_server(start_gunicorn, database_url: str, workers: int = 1):
    env = {
        "DATABASE_URL": database_url,
        "BETTER_AUTH_SECRET": SECRET,
        "WEB_THREADS": str(THREADS),
        "REQUEST_BODY_TIMEOUT_SECONDS": str(LONG_DEADLINE_SECONDS),
    }
    return start_gunicorn(env, workers=workers)


def chunked_head(user_id: str, close: bool = True) -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return (
        f"POST /api/{user_id}/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {make_token(user_id)}\r\n"
        f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n{connection}\r\n"
    ).encode()


def chunk(data: bytes, extension: bytes = b"", size: bytes | None = None) -> bytes:
    return (size or b"%x" % len(data)) + extension + b"\r\n" + data + b"\r\n"


def exchange_in_time(port: int, *pieces: bytes, pause: float = 0.0) -> tuple[int, dict[str, str], bytes]:
    """Send the pieces (pausing between them, so that the worker reads them apart) and read the answer,
    which must come well before the body deadline."""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWERED_WITHIN_SECONDS) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(pause)
        return read_answer(sock)


def test_stalled_bodies_hold_no_thread_until_they_have_arrived(start_gunicorn, database_url):
    """Issue 22: the worker gives a request to a thread only once the thread can read all of it that it reads."""
    server = long_deadline_server(start_gunicorn, database_url, workers=WORKERS)
    stalled = []
    for variant in islice(cycle(STALLED_BODIES), 2 * WORKERS * THREADS + 2):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=ANSWERED_WITHIN_SECONDS)
        sock.sendall(STALLED_BODIES[variant][0])
        stalled.append((variant, sock))

    for _ in range(2 * WORKERS * THREADS):
        assert requests.get(f"{server.url}/healthz", timeout=ANSWERED_WITHIN_SECONDS).status_code == 200
    for _, sock in stalled:  # still waiting for the rest of their bodies
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(1)

    for variant, sock in stalled:
        sock.settimeout(ANSWERED_WITHIN_SECONDS)
        with sock:
            sock.sendall(STALLED_BODIES[variant][1])
            assert read_answer(sock)[0] == 405, variant


def test_chunked_bodies_ending_in_an_extension_or_a_trailer_are_served_at_once(start_gunicorn, database_url, conn):
    server = long_deadline_server(start_gunicorn, database_url)
    title = b'{"title": "%s"}'
    endings = {
        "extension": b"0;note=x\r\n\r\n",
        "trailer": b"0\r\nX-Checksum: abc\r\n\r\n",
        "extensions and trailers": b'0 ;note="a;b\\"c" ; flag\r\nX-One: 1\r\nX-Two: 2\r\n\r\n',
    }
    for name, ending in endings.items():
        body = title % name.encode()
        status, _, answer = exchange_in_time(server.port, chunked_head("chunk-ends") + chunk(body) + ending)
        assert status == 201, (name, answer)
        task = json.loads(answer)["data"]
        assert task["title"] == name
        assert task_row(conn, task["id"])["title"] == name


def test_chunked_bodies_sent_a_byte_at_a_time_are_served(start_gunicorn, database_url, conn):
    """Every byte its own read: a size line, an extension, a CRLF or a trailer split anywhere."""
    server = long_deadline_server(start_gunicorn, database_url)
    body = b'{"title": "a byte at a time", "description": "split at every byte"}'
    framed = (
        chunk(body[:3])
        + chunk(body[3:20], extension=b';ext="q;\\"x" ; flag')
        + chunk(body[20:], size=b"%04X" % len(body[20:]))
        + b"0;note=x\r\nX-Trailer: y\r\n\r\n"
    )
    status, _, answer = exchange_in_time(
        server.port, chunked_head("chunk-bytes"), *(framed[at : at + 1] for at in range(len(framed))), pause=0.005
    )
    assert status == 201, answer
    assert task_row(conn, json.loads(answer)["data"]["id"])["description"] == "split at every byte"

    # One byte per chunk, then a pipelined request right behind the last chunk.
    framed = b"".join(chunk(body[at : at + 1]) for at in range(len(body))) + b"0\r\n\r\n"
    health = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    status, _, rest = exchange_in_time(server.port, chunked_head("chunk-bytes", close=False) + framed + health)
    assert status == 201
    assert rest.count(b"HTTP/1.1 200 OK") == 1


MALFORMED_CHUNKED = {
    "size not hex": (b"zz\r\n", 400),
    "empty size": (b"\r\nhello\r\n0\r\n\r\n", 400),
    "data not followed by CRLF": (b"5\r\nhelloXY", 400),
    "bare LF after the size": (b"5\nhello\r\n0\r\n\r\n", 400),
    "bad extension": (b"5;=\r\nhello\r\n0\r\n\r\n", 400),
    "CR in an extension": (b"5;a\rb\r\nhello\r\n0\r\n\r\n", 400),
    "size line over the limit": (b"1" * 9000, 400),
    "bare LF in the trailers": (b"0\r\nX-Trailer: y\n", 400),
    "trailers over the limit": (b"0\r\nX-Big: " + b"y" * 900_000, 431),
}


def test_malformed_chunked_framing_is_a_400_without_waiting_for_more(start_gunicorn, database_url):
    server = long_deadline_server(start_gunicorn, database_url)
    for name, (body, expected) in MALFORMED_CHUNKED.items():
        status, headers, answer = exchange_in_time(server.port, chunked_head("chunk-bad") + body)
        assert status == expected, (name, answer)
        assert headers["connection"] == "close"
        assert json.loads(answer)["error"]["code"] == (
            "bad_request" if expected == 400 else "request_header_fields_too_large"
        )


def test_chunked_bodies_over_64_kib_of_content_or_of_framing_are_a_413_without_waiting(
    start_gunicorn, database_url, conn
):
    """Past what the worker reads of a body's content (64 KiB + 1 for the app, 256 KiB more dropped), or past
    64 KiB of framing (size lines, extensions, CRLFs), the 413 does not wait for the rest of the body."""
    server = long_deadline_server(start_gunicorn, database_url)
    padded = b'{"title": "padded"' + b" " * 12_000 + b"}"  # in one-byte chunks: 60,000 bytes of framing
    one_byte_chunks = b"".join(chunk(padded[at : at + 1]) for at in range(len(padded))) + b"0\r\n\r\n"
    status, _, answer = exchange_in_time(server.port, chunked_head("chunk-big") + one_byte_chunks)
    assert status == 201, answer
    assert task_row(conn, json.loads(answer)["data"]["id"])["title"] == "padded"

    stalled = {
        "content": b"%x\r\n" % (1024 * 1024) + b"x" * (400 * 1024),  # 400 KiB of a 1 MiB chunk
        "one-byte chunks": chunk(b" ") * 14_000,  # 70,000 bytes of framing
        "long extensions": chunk(b" ", extension=b";e=" + b"y" * 8000) * 9,  # 72,000 bytes of framing
    }
    for name, body in stalled.items():
        status, headers, answer = exchange_in_time(server.port, chunked_head("chunk-big", close=False) + body)
        assert status == 413, (name, answer)
        assert headers["connection"] == "close"
        assert json.loads(answer)["error"]["code"] == "payload_too_large"
