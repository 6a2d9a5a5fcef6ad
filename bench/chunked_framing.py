"""Chunked bodies on the worker's main loop (docs/hardening.md, "Chunked bodies"), in one run.

1. Serves a checkout (default: this one) with `gunicorn -c gunicorn.conf.py wsgi:app`, 2 workers x 2
   threads, default deadlines, on 127.0.0.1; opens 30 sockets that each send `POST /healthz` with one
   7-byte chunk whose data is CRLF 0 CRLF CRLF and then nothing; prints how long the first
   `GET /healthz` takes, and the slowest and the count of those that follow for 30 s.
2. Once those sockets are closed and their deadlines past, how long a valid chunked POST takes to be
   answered when its body ends in an extension (`0;note=x`) or in a trailer.
3. What following the framing costs the main loop (todo_api/platform/chunked.py) for three bodies, next to
   gunicorn's own chunked reader on the same bytes.

    python bench/chunked_framing.py [--checkout PATH]

/healthz needs no database, so none is started. To measure the worker before issue 22, pass a
checkout of an older commit (`git worktree add /tmp/before 1c9642e`): its own todo_api is served.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import requests
from gunicorn.http.body import ChunkedReader
from gunicorn.http.unreader import IterUnreader

from todo_api.platform.chunked import ChunkedBody

STALLED_SOCKETS = 30
WATCH_SECONDS = 30
BODY_DEADLINE_SECONDS = 10  # REQUEST_BODY_TIMEOUT_SECONDS's default
HEAD = b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(checkout: Path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "WEB_CONCURRENCY": "2",
        "WEB_THREADS": "2",
        "DATABASE_URL": "postgresql://127.0.0.1:1/unused",  # the pool opens on first use: never, here
        "BETTER_AUTH_SECRET": "bench-secret-that-is-long-enough-0123456789",
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=checkout,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return server
        except requests.RequestException:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError("gunicorn did not start")


def stalled_sockets(port: int) -> None:
    stalled = []
    for _ in range(STALLED_SOCKETS):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(HEAD + b"\r\n7\r\n\r\n0\r\n\r\n")
        stalled.append(sock)
    latencies = []
    started = time.monotonic()
    while time.monotonic() - started < WATCH_SECONDS:
        sent = time.monotonic()
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=WATCH_SECONDS)
        latencies.append(time.monotonic() - sent)
    print(
        f"{STALLED_SOCKETS} stalled sockets: first GET /healthz {latencies[0]:.3f} s, "
        f"slowest {max(latencies):.3f} s, {len(latencies)} GETs in {WATCH_SECONDS} s"
    )
    for sock in stalled:
        sock.close()


def valid_endings(port: int) -> None:
    for name, ending in {"0;note=x": b"0;note=x\r\n\r\n", "a trailer": b"0\r\nX-Checksum: abc\r\n\r\n"}.items():
        with socket.create_connection(("127.0.0.1", port), timeout=2 * BODY_DEADLINE_SECONDS) as sock:
            sent = time.monotonic()
            sock.sendall(HEAD + b"Connection: close\r\n\r\n2\r\n{}\r\n" + ending)
            status = sock.recv(64).split(b" ")[1].decode()
        print(f"a body ending in {name}: {status} after {time.monotonic() - sent:.3f} s")


def framing_cost() -> None:
    bodies = {
        "64 KiB of framing in one-byte chunks": b"1\r\nx\r\n" * 13_107 + b"0\r\n\r\n",
        "64 KiB in 1 KiB chunks": (b"400\r\n" + b"x" * 1024 + b"\r\n") * 64 + b"0\r\n\r\n",
        "64 KiB in one chunk": b"10000\r\n" + b"x" * 65536 + b"\r\n0\r\n\r\n",
    }
    request = SimpleNamespace(
        limit_request_field_size=8190, max_buffer_headers=100 * 8192 + 4, parse_headers=lambda data, from_trailer: []
    )
    for name, body in bodies.items():
        reads = [body[at : at + 64 * 1024] for at in range(0, len(body), 64 * 1024)]  # as the worker recv()s
        ours = theirs = float("inf")
        for _ in range(5):
            framing, received = ChunkedBody(0, 8190, 100 * 8192 + 4), bytearray()
            started = time.perf_counter()
            for data in reads:
                received += data
                framing.ended(received)
            ours = min(ours, time.perf_counter() - started)
            started = time.perf_counter()
            for _piece in ChunkedReader(request, IterUnreader(reads)).parser:
                pass
            theirs = min(theirs, time.perf_counter() - started)
        print(
            f"{name}: main loop {ours * 1000:.2f} ms, gunicorn's reader {theirs * 1000:.2f} ms (x{theirs / ours:.1f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, default=Path(__file__).resolve().parent.parent)
    checkout = parser.parse_args().checkout.resolve()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; serving {checkout}")
    port = free_port()
    server = serve(checkout, port)
    try:
        stalled_sockets(port)
        time.sleep(BODY_DEADLINE_SECONDS + 2)  # the closed sockets' requests are done with
        valid_endings(port)
    finally:
        server.terminate()
        server.wait()
    framing_cost()


if __name__ == "__main__":
    main()
