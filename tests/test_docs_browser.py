"""A real browser loads /docs from a real server on loopback and sees every route listed.

Needs headless Chromium (Debian's `chromium`, or CHROMIUM_BIN). Without it the test skips, unless
REQUIRE_BROWSER=1 (as .ci/run sets after installing it): then a missing browser fails the test."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess

import pytest
from conftest import SECRET

from todo_api.openapi import document as openapi

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
RENDER_BUDGET_MS = 30_000  # virtual time: the page's scripts and fetches run until idle or this much
IGNORED_METHODS = {"HEAD", "OPTIONS"}


def find_chromium() -> str | None:
    """CHROMIUM_BIN if set (another build, or a path that does not exist to see the skip), else
    `chromium` on PATH."""
    configured = os.environ.get("CHROMIUM_BIN")
    if configured:
        return shutil.which(configured)
    return shutil.which("chromium") or shutil.which("chromium-browser")


BROWSER = find_chromium()
MISSING = f"headless Chromium is not installed ({os.environ.get('CHROMIUM_BIN') or 'Debian: apt-get install chromium'})"
REQUIRED = os.environ.get("REQUIRE_BROWSER") == "1"

pytestmark = pytest.mark.skipif(BROWSER is None and not REQUIRED, reason=MISSING)


def rendered_dom(browser: str, url: str, profile: str) -> str:
    result = subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={RENDER_BUDGET_MS}",
            "--dump-dom",
            url,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def routes_in_swagger_ui(dom: str) -> set[tuple[str, str]]:
    """(method, path) of every operation block Swagger UI rendered."""
    blocks = re.findall(r'class="opblock opblock-(\w+)[^"]*"(.*?)data-path="([^"]+)"', dom, flags=re.DOTALL)
    return {(method, html.unescape(path)) for method, _, path in blocks}


@pytest.mark.process
def test_docs_page_renders_every_route_in_a_real_browser(app, start_gunicorn, database_url, tmp_path):
    if BROWSER is None:
        pytest.fail(f"REQUIRE_BROWSER=1 but {MISSING}")
    server = start_gunicorn({"DATABASE_URL": database_url, "BETTER_AUTH_SECRET": SECRET}, workers=1)

    dom = rendered_dom(BROWSER, f"{server.url}/docs", str(tmp_path / "chromium-profile"))

    assert "Failed to load API definition" not in dom
    assert openapi.DOCUMENT_TITLE in dom
    expected = {
        (method.lower(), re.sub(r"<(?:[^<>:]+:)?([^<>:]+)>", r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        for method in rule.methods - IGNORED_METHODS
    }
    shown = routes_in_swagger_ui(dom)
    assert expected <= shown, f"routes missing from the rendered page: {sorted(expected - shown)}"


@pytest.mark.process
def test_docs_page_shows_an_operations_parameters_by_name(start_gunicorn, database_url, tmp_path):
    if BROWSER is None:
        pytest.fail(f"REQUIRE_BROWSER=1 but {MISSING}")
    server = start_gunicorn({"DATABASE_URL": database_url, "BETTER_AUTH_SECRET": SECRET}, workers=1)

    # The deep link opens the operation, as a reader clicking on it would.
    dom = rendered_dom(BROWSER, f"{server.url}/docs#/tasks/replace_task", str(tmp_path / "chromium-profile"))

    shown = set(re.findall(r'data-param-name="([^"]+)" data-param-in="(\w+)"', dom))
    assert {("user_id", "path"), ("task_id", "path"), ("If-Match", "header")} <= shown, shown
