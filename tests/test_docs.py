"""The README and docs/ against the code: links resolve, the configuration table lists exactly the
variables the service reads, and the routes table lists every route the app serves."""

from __future__ import annotations

import re

from test_compose import service_variables

from todo_api.cli import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
DOCUMENTS = [README, *sorted((PROJECT_ROOT / "docs").glob("*.md"))]


def section(title: str) -> str:
    """The README's text from the `## title` heading to the next `## ` heading."""
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def table_rows(text: str) -> list[str]:
    """The first cell of each body row of the markdown tables in `text`."""
    return [line.split("|")[1] for line in text.splitlines() if line.startswith("| `")]


def test_relative_links_resolve():
    for document in DOCUMENTS:
        for target in re.findall(r"\]\(([^)\s]+)\)", document.read_text()):
            if target.startswith(("http://", "https://", "#")):
                continue
            path = (document.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{document.relative_to(PROJECT_ROOT)} links to missing {target}"


def test_configuration_table_lists_every_variable_the_service_reads():
    listed = {name for row in table_rows(section("Configuration")) for name in re.findall(r"`([A-Z_]+)`", row)}
    assert listed - {"TEST_DATABASE_URL"} == service_variables()
    assert "TEST_DATABASE_URL" in (PROJECT_ROOT / "tests" / "conftest.py").read_text()


def test_routes_table_lists_every_route(app):
    listed = " ".join(table_rows(section("The API at a glance")))
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/docs/"):  # the Swagger UI's own files
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            assert f"{method} {path}" in listed, f"{method} {path} is not in the README's routes table"
