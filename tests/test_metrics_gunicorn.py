"""GET /metrics under a real gunicorn with two workers: whichever worker answers a scrape, the counts
are those of both, and a worker's pool shows in the gauges while it lives."""

from __future__ import annotations

import glob
import os
import signal
import time

import pytest
import requests
from conftest import SECRET, make_token
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from todo_api.platform.metrics import REQUESTS

pytestmark = pytest.mark.process

USER = "metrics-gunicorn-user"
ROUTE = {"route": "/api/<user_id>/tasks", "method": "GET", "status": "200"}
BATCH = 20
MAX_BATCHES = 10


def fresh_get(url: str, **kwargs) -> requests.Response:
    """One request on a connection of its own, so that either worker may accept it."""
    return requests.get(url, headers={"Connection": "close", **kwargs.pop("headers", {})}, timeout=10, **kwargs)


def scrape(server) -> dict[str, float]:
    """The listing route's count and the pool gauges, as one scrape reports them."""
    response = fresh_get(f"{server.url}/metrics")
    assert response.status_code == 200
    figures: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "todo_api_http_requests_total" and sample.labels == ROUTE:
                figures["requests"] = sample.value
            elif sample.name.startswith("todo_api_db_pool_"):
                figures[sample.name] = sample.value
    return figures


def requests_per_worker(directory: str) -> dict[int, float]:
    """The listing route's count in each worker's own file (named after its pid)."""
    counts = {}
    for path in glob.glob(os.path.join(directory, "counter_*.db")):
        pid = int(os.path.basename(path).removesuffix(".db").split("_")[1])
        for family in MultiProcessCollector.merge([path]):
            for sample in family.samples:
                if sample.name == "todo_api_http_requests_total" and sample.labels == ROUTE:
                    counts[pid] = sample.value
    return counts


def leave_stale_file(directory: str, count: float) -> None:
    """A file as a worker of an earlier run would have left it: `count` requests on the listing route."""
    os.makedirs(directory)
    stale = MmapedDict(os.path.join(directory, "counter_999999.db"))
    labels = list(ROUTE)
    key = mmap_key("todo_api_http_requests", "todo_api_http_requests_total", labels, list(ROUTE.values()), "")
    stale.write_value(key, count, 0.0)
    stale.close()
    assert requests_per_worker(directory) == {999999: count}
    assert REQUESTS._labelnames == tuple(labels)


def test_counts_add_up_across_two_workers(start_gunicorn, database_url, tmp_path):
    directory = str(tmp_path / "metrics")
    leave_stale_file(directory, 1000)  # emptied as gunicorn starts: it must not count
    server = start_gunicorn(
        {"DATABASE_URL": database_url, "BETTER_AUTH_SECRET": SECRET, "PROMETHEUS_MULTIPROC_DIR": directory}, workers=2
    )
    headers = {"Authorization": f"Bearer {make_token(USER)}"}
    sent = 0
    for _ in range(MAX_BATCHES):  # until each worker has answered some: the kernel picks who accepts
        for _ in range(BATCH):
            assert fresh_get(f"{server.url}/api/{USER}/tasks", headers=headers).status_code == 200
            sent += 1
        per_worker = requests_per_worker(directory)
        if len(per_worker) == 2 and all(per_worker.values()):
            break
    assert len(per_worker) == 2 and all(per_worker.values()), per_worker
    assert sum(per_worker.values()) == sent

    scrapes = [scrape(server) for _ in range(6)]  # answered by one worker or the other
    assert [figures["requests"] for figures in scrapes] == [sent] * 6
    for figures in scrapes:
        assert figures["todo_api_db_pool_size"] >= 1
        assert figures["todo_api_db_pool_in_use"] >= 0
        assert figures["todo_api_db_pool_waiting"] >= 0
    assert server.stop() == 0
    assert os.path.isdir(directory)  # the operator's directory stays


def test_without_a_directory_gunicorn_makes_a_private_one_and_removes_it(start_gunicorn, database_url, tmp_path):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    server = start_gunicorn({"DATABASE_URL": database_url, "BETTER_AUTH_SECRET": SECRET, "TMPDIR": str(temporary)})
    headers = {"Authorization": f"Bearer {make_token(USER)}"}
    assert fresh_get(f"{server.url}/api/{USER}/tasks", headers=headers).status_code == 200
    [made] = temporary.glob("todo-api-metrics-*")
    assert made.stat().st_mode & 0o777 == 0o700
    assert list(made.glob("counter_*.db"))
    assert scrape(server)["requests"] == 1
    assert server.stop() == 0
    assert not list(temporary.glob("todo-api-metrics-*"))


def test_a_dead_workers_counts_stay_and_its_pool_leaves_the_gauges(start_gunicorn, database_url, tmp_path):
    directory = str(tmp_path / "metrics")
    server = start_gunicorn(
        {"DATABASE_URL": database_url, "BETTER_AUTH_SECRET": SECRET, "PROMETHEUS_MULTIPROC_DIR": directory}, workers=2
    )
    headers = {"Authorization": f"Bearer {make_token(USER)}"}
    for _ in range(BATCH):
        assert fresh_get(f"{server.url}/api/{USER}/tasks", headers=headers).status_code == 200
    before = requests_per_worker(directory)
    victim = max(before, key=before.get)  # a worker that answered some
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while glob.glob(os.path.join(directory, f"gauge_livesum_{victim}.db")) and time.monotonic() < deadline:
        time.sleep(0.1)  # gunicorn reaps it and calls child_exit
    assert not glob.glob(os.path.join(directory, f"gauge_livesum_{victim}.db"))
    assert scrape(server)["requests"] == BATCH  # the dead worker's answers still count
    assert server.stop() == 0
