"""Every listing a frontend makes is an index scan on the user's rows (API.md §4, issue 3).

One user gets 10,000 realistic tasks (bench/listing_seed.sql, the benchmark's data) next to another
user's 2,000; then each listing, built exactly as the view builds it, is run under EXPLAIN ANALYZE.
A page may touch a few hundred of the user's rows, never most of them: no Seq Scan, no Sort of the whole user.
Plans on a 1,000,000-task user: docs/listing-plans.md (written by `make bench-listing`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from conftest import connect
from psycopg import sql
from psycopg.rows import dict_row
from werkzeug.datastructures import MultiDict

from todo_api.cli import PROJECT_ROOT
from todo_api.platform.db import load_queries
from todo_api.platform.sealing import TokenCodec
from todo_api.tasks import listing
from todo_api.tasks.schemas import list_query

SEED_SQL = (PROJECT_ROOT / "bench" / "listing_seed.sql").read_text()
# The reminders seed's UPDATE alone: it sets triggers aside around it for a 1,000,000-task fill, but
# this database is shared with other tests, whose writes need those triggers; 2,000 rows need no speed.
REMINDERS_SQL = next(
    statement
    for statement in (PROJECT_ROOT / "bench" / "reminders_seed.sql").read_text().split(";\n")
    if "UPDATE tasks" in statement
)
USER_TASKS = 10_000
NEIGHBOUR_TASKS = 2_000
# A page of 20 may touch this many of the user's rows (rows read plus rows filtered out), in the
# scan and in any Sort: the common filters need a few hundred; the whole user is 10,000.
ROW_BUDGET = 1_000
# Deletions for the idle-sync plans: a few users with many past the retention, and one with recent ones.
HEAVY_DELETERS = 5
OLD_DELETIONS_EACH = 20_000
RECENT_DELETIONS = 20_000

# What a frontend asks for: the default list, every sort in both directions, the status tabs, tag
# chips, the search box, the priority filter and the due-date views, alone and combined.
FRONTEND_LISTINGS: list[dict[str, str]] = [
    {},
    *({"sort": sort} for sort in listing.SORT_KEYS if not sort.endswith("position")),
    # Manual order is an order within one group of siblings (API.md §9): here the inbox's top level.
    {"list_id": "none", "parent_id": "none", "sort": "position"},
    {"list_id": "none", "parent_id": "none", "sort": "-position"},
    {"status": "pending"},
    {"status": "pending", "sort": "due_at"},
    {"status": "pending", "sort": "-priority"},
    {"status": "pending", "sort": "title"},
    {"status": "completed"},
    {"status": "completed", "sort": "-updated_at"},
    {"tag": "work"},
    {"tag": "Passport"},
    {"tag": "home", "status": "pending", "sort": "due_at"},
    {"q": "milk"},
    {"q": "notary"},
    {"q": "Lisbon", "status": "pending"},
    {"priority": "high"},
    {"priority": "medium,high", "sort": "-priority"},
    # The tasks were created from mid-December 2025 to 2026-01-01, due up to 30 days later.
    {"due_after": "2026-01-15T00:00:00Z", "due_before": "2026-01-22T00:00:00Z", "sort": "due_at"},
    {"due_after": "2025-12-18T00:00:00Z", "due_before": "2025-12-25T00:00:00Z", "sort": "-due_at"},
    {"due_after": "2026-01-10T00:00:00Z", "sort": "due_at"},
    {"due_before": "2025-12-25T00:00:00Z", "sort": "-due_at"},
    {"due_before": "2026-01-01T00:00:00Z", "status": "pending", "sort": "due_at"},
    # The due-reminders poll (API.md §5) two weeks after the newest task, and the other reminder views.
    {"status": "pending", "remind_before": "2026-01-15T00:00:00Z", "sort": "remind_at"},
    {"status": "pending", "sort": "remind_at"},
    {"status": "pending", "sort": "-remind_at"},
    {"remind_after": "2026-01-10T00:00:00Z", "sort": "remind_at"},
    {"remind_before": "2025-12-25T00:00:00Z", "sort": "-remind_at"},
]


@pytest.fixture(scope="module")
def seeded(database_url: str) -> Iterator[tuple[psycopg.Connection[dict[str, Any]], str]]:
    """A connection and a user with 10,000 tasks (and a neighbour with a few), vacuumed and analysed."""
    user_id, neighbour = f"plans-{uuid.uuid4().hex[:8]}", f"plans-{uuid.uuid4().hex[:8]}"
    with connect(database_url, row_factory=dict_row, autocommit=True) as conn:
        for owner, count in ((user_id, USER_TASKS), (neighbour, NEIGHBOUR_TASKS)):
            conn.execute(SEED_SQL, {"user_id": owner, "count": count, "newest": "2026-01-01T00:00:00Z"})
            conn.execute(REMINDERS_SQL, {"user_id": owner})
        conn.execute("VACUUM ANALYZE tasks")
        yield conn, user_id
        conn.execute("DELETE FROM tasks WHERE user_id = ANY(%s)", [[user_id, neighbour]])


def _plan(conn, statement: sql.Composable, params: dict[str, Any]) -> dict[str, Any]:
    """The statement's plan; on Citus, the plan of the one shard it is routed to (docs/scaling.md)."""
    explain = sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) {}").format(statement)
    plan = conn.execute(explain, params).fetchone()["QUERY PLAN"][0]["Plan"]
    job = plan.get("Distributed Query", {}).get("Job")
    if job is None:
        return plan
    assert job["Task Count"] == 1, "one shard"
    (task,) = job["Tasks"]
    return task["Remote Plan"][0][0]["Plan"]


def _relation(node: dict[str, Any]) -> str | None:
    """The table a node reads (on Citus a shard, named after its table: tasks_102008)."""
    name = node.get("Relation Name")
    return re.sub(r"_\d+$", "", name) if name else None


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _rows_touched(node: dict[str, Any]) -> float:
    removed = node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Index Recheck", 0)
    return (node["Actual Rows"] + removed) * node["Actual Loops"]


def _page(conn, user_id: str, params: dict[str, str], cursor_row: dict[str, Any] | None = None):
    """The statement the view runs for this query string (and the page after `cursor_row`)."""
    query = listing.ListQuery(list_query.load_args(MultiDict(params)))
    after = None
    if cursor_row is not None:
        codec = listing.CursorCodec(TokenCodec(b"k" * 32), user_id)
        after = codec.decode(query, codec.encode(query, cursor_row))
    statement, values = listing.build_list_statement(load_queries()["list_tasks"], query, after)
    return statement, {**values, "user_id": user_id, "page_size": 21}


def _assert_scans_only_a_page(plan: dict[str, Any], label: str) -> None:
    nodes = list(_nodes(plan))
    on_tasks = [node for node in nodes if _relation(node) == "tasks"]
    assert on_tasks, label
    assert not [node for node in on_tasks if node["Node Type"] == "Seq Scan"], label
    assert all("Index" in node["Node Type"] or node["Node Type"] == "Bitmap Heap Scan" for node in on_tasks), label
    touched = sum(_rows_touched(node) for node in on_tasks)
    assert touched <= ROW_BUDGET, f"{label}: touched {touched} rows"
    for node in nodes:
        if node["Node Type"] == "Sort":
            assert sum(child["Actual Rows"] for child in node["Plans"]) <= ROW_BUDGET, f"{label}: sorts too much"


@pytest.mark.parametrize(
    "params", FRONTEND_LISTINGS, ids=lambda params: "&".join(f"{k}={v}" for k, v in params.items())
)
def test_frontend_listing_is_an_index_scan_of_a_page(seeded, params):
    conn, user_id = seeded
    statement, values = _page(conn, user_id, params)
    plan = _plan(conn, statement, values)
    _assert_scans_only_a_page(plan, f"page 1 of {params}")

    rows = conn.execute(statement, values).fetchall()
    if len(rows) == 21:  # the next page, from the cursor the view would hand out
        statement, values = _page(conn, user_id, params, rows[19])
        _assert_scans_only_a_page(_plan(conn, statement, values), f"page 2 of {params}")


def _assert_reads_only_a_page(plan: dict[str, Any], label: str, budget: int) -> None:
    nodes = list(_nodes(plan))
    for node in nodes:
        assert node["Node Type"] != "Seq Scan", label
        if _relation(node) in ("tasks", "task_tombstones"):
            assert _rows_touched(node) <= budget, f"{label}: touched {_rows_touched(node)} rows"


@pytest.mark.parametrize("changes", [0, 20])
def test_a_sync_reads_only_what_changed(seeded, changes):
    """API.md §6: a sync that finds nothing new costs the same at 1,000,000 tasks as at 100."""
    conn, user_id = seeded
    position = conn.execute("SELECT last_seq FROM sync_state WHERE user_id = %s", [user_id]).fetchone()["last_seq"]
    conn.execute(
        "UPDATE tasks SET version = version + 1 WHERE user_id = %s"
        " AND id IN (SELECT id FROM tasks WHERE user_id = %s ORDER BY id LIMIT %s)",
        [user_id, user_id, changes],
    )
    values = {"user_id": user_id, "after": position, "deleted_after": position, "page_size": 201, "retention_days": 30}
    plan = _plan(conn, load_queries()["sync_changes"], values)
    _assert_reads_only_a_page(plan, f"sync with {changes} changes", budget=changes + 1)
    assert len(conn.execute(load_queries()["sync_changes"], values).fetchall()) == max(changes, 1)


@pytest.fixture(scope="module")
def beside_old_deletions(database_url: str, citus: bool) -> Iterator[tuple[psycopg.Connection[dict[str, Any]], str]]:
    """A user with a few tasks and many recent deletions, beside a few users with many deletions past
    the retention: statistics under which the planner expects the user to have old tombstones. On
    Citus those users' rows share the user's shard, whose statistics the plan there is made from."""
    user_id = f"plans-{uuid.uuid4().hex[:8]}"
    with connect(database_url, row_factory=dict_row, autocommit=True) as conn:
        heavy = _users_beside(conn, user_id, HEAVY_DELETERS, citus)
        # Tombstones are written straight (no trigger reads them); the counter goes past them, as deletions take it.
        conn.execute("INSERT INTO sync_state (user_id, last_seq) VALUES (%s, %s)", [user_id, RECENT_DELETIONS])
        conn.execute(
            "INSERT INTO task_tombstones (user_id, sync_seq, task_id, deleted_at)"
            " SELECT %s, n, n, now() - n * interval '1 s' FROM generate_series(1, %s) AS n",
            [user_id, RECENT_DELETIONS],
        )
        conn.execute(SEED_SQL, {"user_id": user_id, "count": 100, "newest": "2026-01-01T00:00:00Z"})
        conn.execute(
            "INSERT INTO task_tombstones (user_id, sync_seq, task_id, deleted_at)"
            " SELECT (%s::text[])[1 + n %% %s], n, n, now() - interval '60 days' - n * interval '1 s'"
            " FROM generate_series(1, %s) AS n",
            [heavy, HEAVY_DELETERS, HEAVY_DELETERS * OLD_DELETIONS_EACH],
        )
        conn.execute("VACUUM ANALYZE task_tombstones, tasks")
        yield conn, user_id
        conn.execute("DELETE FROM tasks WHERE user_id = %s", [user_id])
        conn.execute("DELETE FROM task_tombstones WHERE user_id = ANY(%s)", [[user_id, *heavy]])


def _users_beside(conn, user_id: str, count: int, citus: bool) -> list[str]:
    """`count` new user ids; on Citus, ids whose rows share `user_id`'s shards."""
    if not citus:
        return [f"plans-heavy-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    rows = conn.execute(
        "SELECT %(prefix)s || n AS name FROM generate_series(1, 10000) AS n"
        " WHERE get_shard_id_for_distribution_column('task_tombstones', %(prefix)s || n)"
        "     = get_shard_id_for_distribution_column('task_tombstones', %(user_id)s::text)"
        " LIMIT %(count)s",
        {"prefix": f"{user_id}-heavy-", "user_id": user_id, "count": count},
    ).fetchall()
    assert len(rows) == count
    return [row["name"] for row in rows]


def _on_its_shards(conn, database_url: str, statement: sql.Composable, user_id: str) -> tuple[str, sql.SQL]:
    """On Citus: the URL of the worker holding `user_id`'s rows, and `statement` as that worker runs it
    for the user, on the user's shards (tasks_102008 for tasks, ...). Every table the statement names
    must be here: one left under its distributed name makes the worker plan a distributed subquery,
    whose EXPLAIN (FORMAT JSON) Citus 14.0.1 writes as invalid JSON (the remote plan as bare text)."""
    rows = conn.execute(
        "SELECT table_name::text AS table_name, shard_name, nodename, nodeport FROM citus_shards"
        " WHERE table_name IN ('tasks'::regclass, 'task_tombstones'::regclass, 'sync_state'::regclass,"
        "                     'lists'::regclass)"
        "   AND shardid = get_shard_id_for_distribution_column(table_name, %s::text)",
        [user_id],
    ).fetchall()
    ((host, port),) = {(row["nodename"], row["nodeport"]) for row in rows}  # colocated: one worker
    shards = {row["table_name"]: row["shard_name"] for row in rows}
    text = re.sub(
        r"\b(task_tombstones|sync_state|tasks|lists)\b", lambda m: shards[m.group(1)], statement.as_string(conn)
    )
    parts = urlsplit(database_url)
    user = parts.netloc.rpartition("@")[0]
    worker_url = urlunsplit(parts._replace(netloc=f"{user}@{host}:{port}" if user else f"{host}:{port}"))
    return worker_url, sql.SQL(text)  # type: ignore[arg-type]


def _prepared_plan(
    conn, statement: sql.SQL, params: dict[str, Any], plan_cache_mode: str, *, triggers: bool = True
) -> dict[str, Any]:
    """EXPLAIN ANALYZE of `statement` run as a prepared statement, as the service runs it from its 6th
    call on a connection, with plan_cache_mode choosing a generic or a custom plan; in a transaction
    rolled back after it (a deletion is undone). Prepared, run and deallocated inside that one
    transaction, so behind PgBouncer in transaction mode all of it reaches one server connection; a
    name of its own, so a probe that failed before its DEALLOCATE leaves nothing a later one meets.
    `triggers=False`: the statement's own plan, its table's triggers not fired (session_replication_role).
    On a Citus worker, a generic plan forced for the transaction reaches the webhook trigger's query of
    the distributed `webhooks` table too, which Citus cannot plan generically (it never gets one
    otherwise: Citus prices such plans out); that trigger is not what the probe looks at."""
    text = statement.as_string(conn)
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", text)))
    numbered = re.sub(r"%\((\w+)\)s", lambda match: f"${names.index(match.group(1)) + 1}", text)
    probe = sql.Identifier(f"plan_probe_{uuid.uuid4().hex}")
    with conn.transaction(force_rollback=True):
        conn.execute(sql.SQL("PREPARE {} AS {}").format(probe, sql.SQL(numbered)))  # type: ignore[arg-type]
        conn.execute(sql.SQL("SET LOCAL plan_cache_mode = {}").format(sql.Identifier(plan_cache_mode)))
        if not triggers:
            conn.execute("SET LOCAL session_replication_role = replica")
        arguments = sql.SQL(", ").join(sql.Literal(params[name]) for name in names)
        explain = sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {}({})").format(probe, arguments)
        plan = conn.execute(explain).fetchone()["QUERY PLAN"][0]["Plan"]
        conn.execute(sql.SQL("DEALLOCATE {}").format(probe))  # a prepared statement outlives a rollback
    return plan


def _assert_reads_one_tombstone(plan: dict[str, Any], label: Any) -> None:
    """The plan reads the tombstones through an index, one entry at most (the user's oldest)."""
    scans = [node for node in _nodes(plan) if _relation(node) == "task_tombstones" and "Scan" in node["Node Type"]]
    assert scans and all("Index" in node["Node Type"] for node in scans), label
    assert sum(_rows_touched(node) for node in scans) <= 1, label


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize("query", ["sync_changes", "forget_deletions", "delete_task"])
def test_an_idle_sync_reads_none_of_the_tombstones_of_other_users(
    beside_old_deletions, database_url, citus, query, plan_cache_mode
):
    """Issue 22: "is one of the user's tombstones past the retention?" (a sync, and a deletion, ask it)
    is one step down an index, whatever the planner expects; EXISTS (... deleted_at < ...) was planned
    as a scan of every user's tombstones.

    On Citus the coordinator plans these statements only with their values (it refuses a generic plan
    of them, and prices it so that PostgreSQL never picks it) and routes each to one shard, whose
    worker plans it again: the statement runs through the coordinator (one task), then is prepared
    on that worker, on the user's shards, under the plan_cache_mode."""
    conn, user_id = beside_old_deletions
    position = conn.execute("SELECT last_seq FROM sync_state WHERE user_id = %s", [user_id]).fetchone()["last_seq"]
    task_id = conn.execute("SELECT min(id) AS id FROM tasks WHERE user_id = %s", [user_id]).fetchone()["id"]
    values = {
        "user_id": user_id,
        "after": position,
        "deleted_after": position,
        "page_size": 201,
        "retention_days": 30,
        "batch": 1000,
        "task_id": task_id,
        "expected_versions": None,
    }
    statement = load_queries()[query]
    if not citus:
        _assert_reads_one_tombstone(_prepared_plan(conn, statement, values, plan_cache_mode), (query, plan_cache_mode))
        return
    with conn.transaction(force_rollback=True):  # the deletion is undone
        _assert_reads_one_tombstone(_plan(conn, statement, values), (query, "routed"))  # _plan: Task Count 1
    worker_url, on_shards = _on_its_shards(conn, database_url, statement, user_id)
    with connect(worker_url, row_factory=dict_row, autocommit=True) as worker:
        plan = _prepared_plan(worker, on_shards, values, plan_cache_mode, triggers=False)
    _assert_reads_one_tombstone(plan, (query, plan_cache_mode, "on the worker"))


def test_the_seed_has_the_shape_the_plans_assume(seeded):
    conn, user_id = seeded
    shape = conn.execute(
        """SELECT count(*) AS tasks, count(*) FILTER (WHERE NOT completed) AS pending,
                  count(*) FILTER (WHERE 'work' = ANY(tags)) AS work,
                  count(*) FILTER (WHERE 'Passport' = ANY(tags)) AS passport,
                  count(*) FILTER (WHERE title LIKE '%%milk%%') AS milk,
                  count(*) FILTER (WHERE title LIKE '%%notary%%') AS notary,
                  count(*) FILTER (WHERE due_at IS NULL) AS no_due,
                  count(*) FILTER (WHERE remind_at IS NOT NULL) AS reminded,
                  count(*) FILTER (WHERE NOT completed AND remind_at < '2026-01-15T00:00:00Z') AS reminders_due
           FROM tasks WHERE user_id = %s""",
        [user_id],
    ).fetchone()
    assert shape["tasks"] == USER_TASKS
    assert 700 < shape["pending"] < 1_100
    assert 1_000 < shape["work"] < 1_500 and 0 < shape["passport"] < 15
    assert 400 < shape["milk"] < 600 and 0 < shape["notary"] < 10
    assert 5_500 < shape["no_due"] < 6_500
    assert 1_500 < shape["reminded"] < 2_500 and shape["reminders_due"] > 21  # the poll has a second page
