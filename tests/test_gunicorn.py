"""The service as production runs it: `gunicorn -c gunicorn.conf.py wsgi:app` on loopback."""

from __future__ import annotations

import json

import requests
from conftest import SECRET, make_token


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
