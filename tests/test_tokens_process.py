"""Personal access tokens under a real gunicorn with two workers (API.md §1): a revoked token is
refused by the first request after the DELETE's answer, on every worker, and no log line holds a
token, its secret or its hash."""

from __future__ import annotations

import base64
import http.client
import json
import os
from pathlib import Path

import requests
from conftest import SECRET, make_token

from todo_api.auth.tokens import credentials

USER = "process-user"
FRESH_REQUESTS = 40


def _server_socket_inodes(port: int, client_ports: set[int]) -> dict[int, str]:
    """client port -> the inode of the server's socket of that connection (from /proc/net/tcp)."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port, remote_port = int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16)
            if local_port == port and remote_port in client_ports:
                found[remote_port] = fields[9]
    return found


def _worker_pids(master: int) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


def _workers_holding(server, connections: list[http.client.HTTPConnection]) -> set[int]:
    """The worker processes that hold these keep-alive connections."""
    client_ports = {connection.sock.getsockname()[1] for connection in connections}
    inodes = set(_server_socket_inodes(server.port, client_ports).values())
    holding = set()
    for pid in _worker_pids(server.process.pid):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                holding.add(pid)
    return holding


def _get(connection: http.client.HTTPConnection, token: str) -> tuple[int, str, dict]:
    """GET the user's tasks on this (kept-alive) connection: status, challenge, body."""
    connection.request("GET", f"/api/{USER}/tasks", headers={"Authorization": f"Bearer {token}"})
    answer = connection.getresponse()
    return answer.status, answer.getheader("WWW-Authenticate", ""), json.loads(answer.read())


def _kept_alive(server, token: str) -> http.client.HTTPConnection:
    """A connection that has made an authenticated request, and stays open."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    assert _get(connection, token)[0] == 200
    return connection


def test_a_revoked_token_is_refused_at_once_on_every_worker_and_no_log_line_holds_it(
    start_gunicorn, database_url, conn
):
    server = start_gunicorn(
        {"DATABASE_URL": database_url, "BETTER_AUTH_SECRET": SECRET, "LOG_LEVEL": "DEBUG", "WEB_THREADS": "4"},
        workers=2,
    )
    jwt_headers = {"Authorization": f"Bearer {make_token(USER)}"}
    made = requests.post(
        f"{server.url}/api/{USER}/tokens",
        json={"name": "cron", "scopes": ["tasks:write"]},
        headers=jwt_headers,
        timeout=10,
    )
    assert made.status_code == 201
    token, token_id = made.json()["data"]["token"], made.json()["data"]["id"]
    pat = {"Authorization": f"Bearer {token}"}

    # Keep-alive connections until both workers hold some: each has just served the token.
    kept: list[http.client.HTTPConnection] = []
    while len(_workers_holding(server, kept)) < 2 and len(kept) < 24:
        kept.append(_kept_alive(server, token))
    assert len(_workers_holding(server, kept)) == 2, "could not reach both workers"

    revoked = requests.delete(f"{server.url}/api/{USER}/tokens/{token_id}", headers=jwt_headers, timeout=10)
    assert revoked.status_code == 200
    assert conn.execute("SELECT count(*) AS n FROM access_tokens WHERE user_id = %s", [USER]).fetchone()["n"] == 0

    for connection in kept:  # each worker, on a connection it already served the token on
        status, challenge, _ = _get(connection, token)
        assert status == 401
        assert 'error="invalid_token"' in challenge
        connection.close()
    for _ in range(FRESH_REQUESTS):  # fresh connections, to whichever worker takes them
        answer = requests.get(f"{server.url}/api/{USER}/tasks", headers={**pat, "Connection": "close"}, timeout=10)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthorized"
    assert server.stop() == 0

    log = server.log_path.read_text()
    assert '"event": "token.created"' in log or '"event":"token.created"' in log
    digest = credentials.hash_token(token)
    secret = token[len(credentials.PREFIX) : len(credentials.PREFIX) + credentials.SECRET_LENGTH]
    forbidden = {
        "token": token,
        "secret": secret,
        "hash (hex)": digest.hex(),
        "hash (base64)": base64.b64encode(digest).decode(),
        "hash (bytes)": repr(digest)[2:-1],
        "hash (postgres)": "\\x" + digest.hex(),
        "jwt": make_token(USER).split(".")[2][:20],
    }
    for line in log.splitlines():
        for what, text in forbidden.items():
            assert text not in line, f"a log line holds the {what}: {line[:200]}"
    assert len(log.splitlines()) > FRESH_REQUESTS  # the request lines were written
