"""The service as production runs it: `gunicorn -c gunicorn.conf.py wsgi:app` on loopback."""

from __future__ import annotations

import json
import runpy
import socket

import orjson
import pytest
import requests
from conftest import SECRET, make_token, read_answer

from todo_api.cli import PROJECT_ROOT


def test_gunicorn_serves_the_api_and_logs_json_lines_only(start_gunicorn, database_url):
    server = start_gunicorn({"DATABASE_URL": database_url, "BETTER_AUTH_SECRET": SECRET})
    headers = {"Authorization": f"Bearer {make_token('gunicorn-user')}", "X-Request-ID": "req-gunicorn-1"}
    created = requests.post(
        f"{server.url}/api/gunicorn-user/tasks", json={"title": "Via gunicorn"}, headers=headers, timeout=10
    )
    assert created.status_code == 201
    assert created.headers["X-Request-ID"] == "req-gunicorn-1"
    listed = requests.get(f"{server.url}/api/gunicorn-user/tasks", headers=headers, timeout=10)
    assert [t["title"] for t in listed.json()["data"]] == ["Via gunicorn"]
    assert server.stop() == 0

    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.strip()]
    assert lines, "gunicorn wrote no log lines"
    for line in lines:
        assert {"ts", "level", "logger", "msg"} <= set(line)
    loggers = {line["logger"] for line in lines}
    assert "gunicorn.error" in loggers and "gunicorn.access" not in loggers
    requests_logged = [line for line in lines if line.get("event") == "request" and line["route"] != "/healthz"]
    assert [(r["method"], r["status"], r["request_id"]) for r in requests_logged] == [
        ("POST", 201, "req-gunicorn-1"),
        ("GET", 200, "req-gunicorn-1"),
    ]
    assert "Via gunicorn" not in server.log_path.read_text()


def raw_exchange(server, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client would send these) and read the answer to the end."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        return read_answer(sock)


TOKEN_IN_THE_WAY = "Bearer secret-token-value"


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (f"GET /api/u/tasks?q={'x' * 5000} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 414, "uri_too_long"),
        (
            f"GET /api/u/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN_IN_THE_WAY}\r\n"
            f"X-Big: {'y' * 9000}\r\n\r\n".encode(),
            431,
            "request_header_fields_too_large",
        ),
        (f"NOT HTTP AT ALL {TOKEN_IN_THE_WAY}\r\n\r\n".encode(), 400, "bad_request"),
        (f"GET /api/u/tasks?token={TOKEN_IN_THE_WAY} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 400, "bad_request"),
    ],
    ids=["request-line-too-long", "header-too-large", "not-http", "token-in-a-malformed-request-line"],
)
def test_requests_gunicorn_refuses_are_answered_in_the_envelope(
    start_gunicorn, database_url, request_bytes, status, code
):
    server = start_gunicorn({"DATABASE_URL": database_url, "BETTER_AUTH_SECRET": SECRET}, workers=1)
    answer_status, headers, body = raw_exchange(server, request_bytes)
    assert answer_status == status
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    envelope = json.loads(body)
    assert envelope["data"] is None
    assert envelope["error"]["code"] == code
    assert envelope["error"]["details"] == {}
    assert envelope["meta"]["request_id"] == headers["x-request-id"]
    assert "secret-token-value" not in body.decode() and "xxxx" not in body.decode()  # the raw request is not echoed
    assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200  # and the worker carries on

    server.stop()  # OPERATIONS.md: a request line for the refusal too, with nothing of the raw request
    log = server.log_path.read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    refused = [line for line in lines if line.get("event") == "request" and line["status"] == status]
    assert [line["request_id"] for line in refused] == [headers["x-request-id"]]
    assert "secret-token-value" not in log and "xxxx" not in log


def test_gunicorn_runs_the_api_worker_and_a_logger_that_skips_the_access_log(monkeypatch, tmp_path):
    """OPERATIONS.md: gunicorn's access log is off. AppLogger does not even build its fields."""
    from gunicorn.config import Config

    from todo_api.platform.workers import AppLogger

    monkeypatch.setenv("BETTER_AUTH_SECRET", SECRET)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # else it makes one, and sets it for good
    settings = runpy.run_path(str(PROJECT_ROOT / "gunicorn.conf.py"))
    assert settings["worker_class"] == "todo_api.platform.workers.ApiThreadWorker"
    assert settings["logger_class"] == "todo_api.platform.workers.AppLogger"

    config = Config()
    config.set("logconfig_dict", settings["logconfig_dict"])  # what makes stock gunicorn build them
    logger = AppLogger(config)

    def atoms(*args):
        raise AssertionError("the access-log fields were built")

    monkeypatch.setattr(logger, "atoms", atoms)
    logger.access(None, None, {}, None)


def compact(body: bytes) -> bool:
    """Whether `body` is strict JSON (valid UTF-8, no lone surrogate) written in the one compact style."""
    return body == orjson.dumps(orjson.loads(body))


def test_every_envelope_is_written_in_one_compact_style(start_gunicorn, database_url):
    server = start_gunicorn({"DATABASE_URL": database_url, "BETTER_AUTH_SECRET": SECRET}, workers=1)
    headers = {"Authorization": f"Bearer {make_token('style-user')}"}
    tasks = f"{server.url}/api/style-user/tasks"
    answers = {
        "success": requests.post(tasks, json={"title": "Café ☕", "tags": ["é"]}, headers=headers, timeout=10),
        "error": requests.post(tasks, json={"title": "", "clé": 1}, headers=headers, timeout=10),
        "health": requests.get(f"{server.url}/healthz", timeout=10),
    }
    assert [answer.status_code for answer in answers.values()] == [201, 400, 200]
    status, _, refusal = raw_exchange(server, f"GET /api/u/tasks?q={'x' * 5000} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status == 414
    for kind, body in {**{kind: answer.content for kind, answer in answers.items()}, "refusal": refusal}.items():
        assert compact(body), (kind, body)
    assert "Café ☕".encode() in answers["success"].content and "clé".encode() in answers["error"].content
