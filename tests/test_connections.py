"""Connections as the gunicorn worker serves them: read deadlines (408), and keep-alive after a refusal."""

from __future__ import annotations

import http.client
import json
import socket
import time
from itertools import cycle, islice

import pytest
import requests
from conftest import SECRET, make_token, read_answer

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
