"""GET /metrics in one process (the Flask test client): what a request adds, and what labels hold.

The figures are the process's own and shared by every app the tests create, so each test reads them
before and after its own traffic and checks the difference. tests/test_metrics_gunicorn.py sums them
over gunicorn's workers.
"""

from __future__ import annotations

import re

import psycopg
import pytest
from conftest import SECRET, Api, assert_error, free_port, make_settings
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from todo_api import create_app
from todo_api.platform import metrics
from todo_api.platform.config import ConfigError, load_settings

TASKS = "/api/<user_id>/tasks"
TASK = "/api/<user_id>/tasks/<task_id:task_id>"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client) -> Samples:
    """Every sample of /metrics by name and labels (the text parsed as Prometheus would)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    return parse(response.get_data(as_text=True))


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def requests_delta(before: Samples, after: Samples, route: str, method: str, status: str) -> float:
    labels = {"route": route, "method": method, "status": status}
    return value(after, "todo_api_http_requests_total", **labels) - value(
        before, "todo_api_http_requests_total", **labels
    )


def test_metrics_is_prometheus_text_without_auth(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert response.headers["X-Request-ID"]
    names = {family.name for family in text_string_to_metric_families(response.get_data(as_text=True))}
    assert {
        "todo_api_http_requests",
        "todo_api_http_request_duration_seconds",
        "todo_api_db_errors",
        "todo_api_db_pool_size",
        "todo_api_db_pool_in_use",
        "todo_api_db_pool_waiting",
    } <= names


def test_requests_are_counted_by_route_template_method_and_status(client, api):
    before = scrape(client)
    task = api.create(title="Counted")
    api.create(title="Counted too")
    assert api.get().status_code == 200
    assert api.get(f"/{task['id']}").status_code == 200
    assert_error(api.get("/999999999"), 404, "not_found")
    assert api.delete(f"/{task['id']}").status_code == 200
    after = scrape(client)

    assert requests_delta(before, after, TASKS, "POST", "201") == 2
    assert requests_delta(before, after, TASKS, "GET", "200") == 1
    assert requests_delta(before, after, TASK, "GET", "200") == 1
    assert requests_delta(before, after, TASK, "GET", "404") == 1  # a task that does not exist: its route
    assert requests_delta(before, after, TASK, "DELETE", "200") == 1
    assert requests_delta(before, after, "/metrics", "GET", "200") == 1  # the first scrape
    latency = "todo_api_http_request_duration_seconds_count"
    assert value(after, latency, route=TASKS, method="POST") - value(before, latency, route=TASKS, method="POST") == 2
    buckets = "todo_api_http_request_duration_seconds_bucket"
    inf = {"route": TASK, "method": "GET", "le": "+Inf"}
    assert value(after, buckets, **inf) - value(before, buckets, **inf) == 2


def test_a_path_no_route_matches_is_counted_as_unmatched_not_by_its_path(client, api):
    before = scrape(client)
    assert_error(client.get(f"/no/such/{api.user_id}/path"), 404, "not_found")
    assert_error(client.open("/healthz", method="BREW"), 405, "method_not_allowed")
    after = scrape(client)
    assert requests_delta(before, after, "unmatched", "GET", "404") == 1
    assert requests_delta(before, after, "unmatched", "other", "405") == 1
    assert not [key for key in after if any(api.user_id in label for _, label in key[1])]


def test_no_user_id_title_or_token_in_any_label(app, client, api):
    title = "Secret plans for the weekend"
    task = api.create(title=title, description="Private words")
    api.patch(f"/{task['id']}", json={"title": title + " (moved)"})
    api.get(f"?q={title.split()[0]}")
    client.get(f"/api/{api.user_id}/tasks", headers={"Authorization": "Bearer not-a-token-but-secret"})
    response = client.get("/metrics")
    text = response.get_data(as_text=True)
    for private in (api.user_id, title, "Private words", api.token, "not-a-token-but-secret", "weekend"):
        assert private not in text

    # the figures are the process's: other tests' apps (with routes of their own) counted here too,
    # so a route label must be a template (literal segments and <converters>), never a path
    template = re.compile(r"(/([A-Za-z0-9_.-]+|<[^<>/]+>))+")
    assert {rule.rule for rule in app.url_map.iter_rules()} >= {TASKS}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            route = labels.get("route", TASKS)
            assert route == metrics.UNMATCHED or template.fullmatch(route), route
            assert labels.get("method", "GET") in metrics.METHODS | {"other"}
            assert labels.get("status", "200").isdigit()
            assert labels.get("kind", "other") in metrics.DATABASE_ERROR_KINDS


def test_pool_gauges_show_this_process_pool(app, client, api):
    api.get()
    samples = scrape(client)
    stats = app.extensions["todo_api.db"].pool_stats()
    assert value(samples, "todo_api_db_pool_size") == stats["size"] >= 1
    assert value(samples, "todo_api_db_pool_in_use") == 0  # the scrape holds no connection
    assert value(samples, "todo_api_db_pool_waiting") == 0


def database_errors(client) -> dict[str, float]:
    samples = scrape(client)
    return {kind: value(samples, "todo_api_db_errors_total", kind=kind) for kind in metrics.DATABASE_ERROR_KINDS}


def test_a_statement_over_the_timeout_counts_as_a_timeout(database_url, client):
    app = create_app(make_settings(database_url, db_statement_timeout_ms=300), configure_logs=False)
    api = Api(app.test_client(), "metrics-timeout-user")
    try:
        task = api.create(title="Locked")
        before = database_errors(client)
        with psycopg.connect(database_url) as locker:
            locker.execute("SELECT 1 FROM tasks WHERE user_id = %s AND id = %s FOR UPDATE", [api.user_id, task["id"]])
            assert_error(api.patch(f"/{task['id']}", json={"title": "Blocked"}), 503, "service_unavailable")
        after = database_errors(client)
    finally:
        app.extensions["todo_api.db"].close()
    assert {kind: after[kind] - before[kind] for kind in after} == {
        kind: 1 if kind == "timeout" else 0 for kind in metrics.DATABASE_ERROR_KINDS
    }


def test_no_database_listening_counts_as_a_pool_timeout(client):
    url = f"postgresql://todo@127.0.0.1:{free_port()}/todo"  # nothing listens there
    app = create_app(make_settings(url, db_pool_timeout=0.5), configure_logs=False)
    try:
        before = database_errors(client)
        assert_error(Api(app.test_client(), "metrics-outage-user").get(), 503, "service_unavailable")
        after = database_errors(client)
        metrics_of_that_app = app.test_client().get("/metrics")  # served without the database
        assert metrics_of_that_app.status_code == 200
        pool = parse(metrics_of_that_app.get_data(as_text=True))
        assert (value(pool, "todo_api_db_pool_in_use"), value(pool, "todo_api_db_pool_waiting")) == (0, 0)
    finally:
        app.extensions["todo_api.db"].close()
    assert after["pool_timeout"] - before["pool_timeout"] == 1
    assert sum(after.values()) - sum(before.values()) == 1


def test_a_feature_adds_its_own_collector(database_url):
    class OldestDelivery:
        def collect(self):
            yield GaugeMetricFamily("todo_api_example_age_seconds", "An added collector's figure.", value=42)

    app = create_app(make_settings(database_url), configure_logs=False)
    try:
        metrics.add_collector(app, OldestDelivery())
        samples = scrape(app.test_client())
    finally:
        app.extensions["todo_api.db"].close()
    assert value(samples, "todo_api_example_age_seconds") == 42
    assert ("todo_api_http_requests_total", (("method", "GET"), ("route", "/metrics"), ("status", "200"))) in samples


def test_metrics_enabled_false_turns_the_route_off(database_url):
    app = create_app(make_settings(database_url, metrics_enabled=False), configure_logs=False)
    try:
        client = app.test_client()
        assert_error(client.get("/metrics"), 404, "not_found")
        assert client.get("/healthz").status_code == 200
    finally:
        app.extensions["todo_api.db"].close()


@pytest.mark.parametrize(("raw", "enabled"), [("", True), ("true", True), ("false", False), ("0", False)])
def test_metrics_enabled_is_read_from_the_environment(raw, enabled):
    assert load_settings({"BETTER_AUTH_SECRET": SECRET, "METRICS_ENABLED": raw}).metrics_enabled is enabled


def test_a_bad_metrics_enabled_is_one_line_naming_it():
    with pytest.raises(ConfigError) as error:
        load_settings({"BETTER_AUTH_SECRET": SECRET, "METRICS_ENABLED": "maybe"})
    assert error.value.variable == "METRICS_ENABLED"
