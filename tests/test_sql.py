"""The SQL files: loaded by name, parameterized, and every statement on user data scoped by user_id
(the property the Citus plan in docs/scaling.md relies on: each statement routes to one shard)."""

from __future__ import annotations

import re

import pytest

from todo_api.platform.db import QueryError, load_queries

QUERIES = {name: query.as_string() for name, query in load_queries().items()}
USER_TABLES = ("tasks", "idempotency_keys", "sync_state", "task_tombstones")
LIST_HOLES = {"{filters}", "{after}", "{sort_key}", "{direction}"}


def touches(statement: str, table: str) -> bool:
    return re.search(rf"\b(FROM|INTO|UPDATE|JOIN)\s+{table}\b", statement, re.IGNORECASE) is not None


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_every_statement_on_user_data_filters_by_user_id(name):
    statement = QUERIES[name]
    for table in USER_TABLES:
        if touches(statement, table):
            if statement.lstrip().upper().startswith("INSERT"):
                assert "%(user_id)s" in statement, f"{name} inserts without the user's id"
            else:
                assert re.search(r"WHERE\s+user_id\s*=\s*%\(user_id\)s", statement), f"{name} is not scoped by user_id"


def test_user_tables_are_reached_by_the_statements_we_expect():
    on_tasks = {name for name, statement in QUERIES.items() if touches(statement, "tasks")}
    assert {"insert_task", "get_task", "update_task", "set_task_completed", "delete_task", "list_tasks"} <= on_tasks


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_statements_take_values_only_as_named_parameters(name):
    statement = QUERIES[name]
    assert "%s" not in statement, "positional parameters: use %(name)s"
    holes = set(re.findall(r"\{\w*\}", statement)) - {"{}"}
    if name == "with_access_token":
        assert holes == {"{statement}"}  # a named SELECT of the request (Database.carried_by)
    else:
        assert holes <= LIST_HOLES and (not holes or name in ("list_tasks", "count_tasks"))


def test_a_fragment_fills_its_holes_in_every_file_and_leaves_the_others(tmp_path):
    (tmp_path / "a.sql").write_text(
        "-- fragment: columns\n-- what a row shows\nid,\nname\n\n-- name: one\nSELECT {columns} FROM a {filters};\n"
    )
    (tmp_path / "b.sql").write_text("-- name: two\nSELECT {columns} FROM b;\n")
    queries = {name: query.as_string() for name, query in load_queries(tmp_path).items()}
    assert queries == {"one": "SELECT id,\nname FROM a {filters}", "two": "SELECT id,\nname FROM b"}


def test_a_duplicate_fragment_fails_the_load(tmp_path):
    (tmp_path / "a.sql").write_text("-- fragment: columns\nid\n\n-- fragment: columns\nname\n")
    with pytest.raises(QueryError, match="fragment 'columns' is defined twice"):
        load_queries(tmp_path)


def test_every_statement_that_returns_tasks_returns_task_schemas_fields_in_order():
    from todo_api.tasks.schemas import TaskSchema

    columns = ", ".join(TaskSchema().fields)
    returning = ("insert_task", "get_task", "lock_task", "update_task", "set_task_completed", "delete_task")
    for name in (*returning, "list_tasks", "sync_changes"):
        assert columns in re.sub(r"\s+", " ", QUERIES[name]), name


def test_a_duplicate_name_fails_the_load(tmp_path):
    (tmp_path / "a.sql").write_text("-- name: same\nSELECT 1;\n")
    (tmp_path / "b.sql").write_text("-- name: same\nSELECT 2;\n")
    with pytest.raises(QueryError, match="defined twice"):
        load_queries(tmp_path)


def test_an_empty_block_fails_the_load(tmp_path):
    (tmp_path / "a.sql").write_text("-- name: nothing\n-- only a comment\n")
    with pytest.raises(QueryError, match="no statement"):
        load_queries(tmp_path)


def test_a_missing_query_fails_the_start(database_url, monkeypatch):
    from conftest import make_settings

    from todo_api import create_app, tasks

    monkeypatch.setattr(tasks, "QUERY_NAMES", (*tasks.QUERY_NAMES, "no_such_query"))
    with pytest.raises(QueryError, match="no_such_query"):
        create_app(make_settings(database_url), configure_logs=False)
