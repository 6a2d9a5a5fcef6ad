"""Migration 0008 (docs/scaling.md): on Citus every per-user table is distributed by user_id with
tasks and every shared table is a reference table; on plain PostgreSQL nothing is distributed; task
ids go on from where they stood across 0008 and its rollback. And the single-shard guard of
`make test-citus` is in force on the service's connections."""

from __future__ import annotations

import psycopg
import pytest
from conftest import unguarded
from psycopg import sql

from todo_api.cli import MIGRATIONS_DIR, yoyo_backend

DISTRIBUTING_MIGRATION = "0008.distribute-by-user"
CITUS_ONLY = "needs the citus extension (make test-citus)"


def tables(conn) -> dict[str, dict]:
    """The application's tables (not yoyo's bookkeeping), with whether each has a user_id column."""
    rows = conn.execute(
        """SELECT c.relname AS name, bool_or(a.attname = 'user_id') AS per_user
           FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname !~ '^_?yoyo'
           GROUP BY c.relname"""
    ).fetchall()
    return {row["name"]: row for row in rows}


def test_on_citus_per_user_tables_are_distributed_by_user_id_with_tasks_and_the_rest_are_reference_tables(citus, conn):
    if not citus:
        pytest.skip(CITUS_ONLY)
    placed = {
        row["name"]: row
        for row in conn.execute(
            """SELECT logicalrelid::regclass::text AS name, partmethod,
                      column_to_column_name(logicalrelid, partkey) AS column, colocationid
               FROM pg_dist_partition"""
        ).fetchall()
    }
    found = tables(conn)
    assert {"tasks", "sync_state", "task_tombstones", "idempotency_keys", "signing_keys"} <= set(found)
    group = placed["tasks"]["colocationid"]
    for name, table in found.items():
        placement = placed.get(name)
        assert placement is not None, f"{name} stays on the coordinator alone: call distribute_by_user() for it"
        if table["per_user"]:
            assert (placement["partmethod"], placement["column"]) == ("h", "user_id"), name
            assert placement["colocationid"] == group, f"{name} is not colocated with tasks"
        else:
            assert placement["partmethod"] == "n", f"{name} is shared: make_reference_table() for it"


def test_without_citus_the_distribution_procedures_leave_a_table_as_it_is(citus, conn):
    if citus:
        pytest.skip("on Citus they distribute (the test above)")
    with conn.transaction():  # one transaction: through PgBouncer, one server connection
        conn.execute("CREATE TEMPORARY TABLE notes (user_id text, body text) ON COMMIT DROP")
        conn.execute("INSERT INTO notes VALUES ('alice', 'kept')")
        conn.execute("CALL distribute_by_user('notes')")
        conn.execute("CALL make_reference_table('notes')")
        assert conn.execute("SELECT user_id, body FROM notes").fetchall() == [{"user_id": "alice", "body": "kept"}]
    assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'citus'").fetchone()["count"] == 0


def rows_and_next_id(conn, user_id: str) -> tuple[int, int]:
    count = conn.execute("SELECT count(*) FROM tasks WHERE user_id = %s", [user_id]).fetchone()["count"]
    new = conn.execute("INSERT INTO tasks (user_id, title) VALUES (%s, 'next') RETURNING id", [user_id]).fetchone()
    return count, new["id"]


def id_column(conn) -> dict:
    return conn.execute(
        """SELECT attidentity AS identity, pg_get_expr(adbin, adrelid) AS default
           FROM pg_attribute LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum
           WHERE attrelid = 'tasks'::regclass AND attname = 'id'"""
    ).fetchone()


def sync_numbers(conn, user_id: str) -> dict:
    tasks = conn.execute("SELECT id, sync_seq FROM tasks WHERE user_id = %s ORDER BY id", [user_id]).fetchall()
    state = conn.execute("SELECT last_seq FROM sync_state WHERE user_id = %s", [user_id]).fetchone()
    return {"tasks": tasks, "last_seq": state["last_seq"]}


def test_task_ids_and_sync_numbers_go_on_across_0008_and_its_rollback(database_url, conn, make_api):
    """0008 swaps tasks.id's identity for a sequence (Citus can undistribute and reshard only
    without an identity); its rollback swaps back. Neither hands out an id again, even one whose task
    was deleted. On Citus both move every row (to the shards, back to the coordinator) without
    firing the sync triggers: no task is numbered again."""
    from yoyo import read_migrations

    api = make_api()
    created = [api.create()["id"] for _ in range(3)]
    api.delete(f"/{created[-1]}")  # the highest id is gone: a new task must still get a higher one
    numbered = sync_numbers(conn, api.user_id)
    assert id_column(conn) == {"identity": "", "default": "nextval('tasks_id_seq'::regclass)"}

    backend = yoyo_backend(unguarded(database_url))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    applied = backend.to_rollback(migrations)  # newest first: 0008 and whatever came after it
    ids = [migration.id for migration in applied]
    try:
        with backend.lock():
            backend.rollback_migrations(applied[: ids.index(DISTRIBUTING_MIGRATION) + 1])
        assert id_column(conn) == {"identity": "a", "default": None}
        assert sync_numbers(conn, api.user_id) == numbered
        count, before = rows_and_next_id(conn, api.user_id)
        assert count == 2 and before > created[-1]
    finally:
        with backend.lock():
            backend.apply_migrations(backend.to_apply(migrations))
        backend.connection.close()
    assert id_column(conn) == {"identity": "", "default": "nextval('tasks_id_seq'::regclass)"}
    renumbered = sync_numbers(conn, api.user_id)
    # 0008 numbers no task again; 0009, applied after it, numbers each once more (its new position),
    # past every number handed out before: its old number plus the counter, which then doubles
    counter = numbered["last_seq"] + 1  # and the task inserted while 0008 was rolled back
    assert [task["id"] for task in renumbered["tasks"]] == [*(task["id"] for task in numbered["tasks"]), before]
    assert [task["sync_seq"] for task in renumbered["tasks"][:2]] == [
        task["sync_seq"] + counter for task in numbered["tasks"]
    ]
    assert renumbered["last_seq"] == 2 * counter
    count, after = rows_and_next_id(conn, api.user_id)
    assert count == 3 and after > before
    assert api.get(f"/{after}").json["data"]["title"] == "next"


def test_on_citus_the_service_connections_refuse_a_statement_on_every_shard(citus, app):
    if not citus:
        pytest.skip(CITUS_ONLY)
    database = app.extensions["todo_api.db"]
    assert database.fetch_one(sql.SQL("SELECT count(*) FROM tasks WHERE user_id = 'anyone'"), {})["count"] == 0
    with pytest.raises(psycopg.errors.InternalError_, match="multi-task query"):
        database.fetch_one(sql.SQL("SELECT count(*) FROM tasks"), {})


def test_one_delete_across_users_leaves_each_deleted_task_its_tombstone(conn, make_api):
    """A DELETE that reaches several users at once (a clean-up, not a request) fires the tombstone
    trigger on each of their shards; on Citus, 0007's form of it failed there, 0008's works."""

    def sync(api, token=None):
        query = {"token": token} if token else {}
        response = api.client.get(
            f"/api/{api.user_id}/sync", query_string=query, headers={"Authorization": f"Bearer {api.token}"}
        )
        assert response.status_code == 200
        return response.json

    apis = [make_api() for _ in range(6)]
    created = {}
    for api in apis:  # enough rows that each shard's tombstones fill more than one batch on Citus
        rows = conn.execute(
            "INSERT INTO tasks (user_id, title) SELECT %s, 'Task ' || n FROM generate_series(1, 50) AS n RETURNING id",
            [api.user_id],
        ).fetchall()
        created[api.user_id] = sorted(row["id"] for row in rows)
    tokens = {api.user_id: sync(api)["meta"]["sync_token"] for api in apis}
    assert conn.execute("DELETE FROM tasks WHERE user_id = ANY(%s)", [list(created)]).rowcount == 300
    for api in apis:
        since = sync(api, tokens[api.user_id])["data"]
        assert since["tasks"] == []
        assert sorted(gone["id"] for gone in since["deleted"]) == created[api.user_id]
