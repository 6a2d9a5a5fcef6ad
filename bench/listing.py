"""Listing benchmark (issue 3): does a page cost the same for a user with 1,000,000 tasks as for one with 100?

    .venv/bin/python bench/listing.py [--tasks 1000000] [--runs 50] [--plans PATH] [--table PATH]

Starts a throwaway embedded PostgreSQL (durable=False) in a temporary directory, applies the
migrations before 0003 (the listing indexes), seeds the users (1,000,000 tasks, 100, and 200 for
issue 25) with bench/listing_seed.sql (realistic, deterministic data: see the comments there),
applies the remaining migrations, which builds the listing indexes over the data as on an existing
database, gives some tasks a reminder (bench/reminders_seed.sql, once 0006 has added remind_at) and
lists and subtasks (bench/lists_seed.sql), and runs VACUUM ANALYZE.
Then it measures GET /api/{user}/tasks through the real Flask app (create_app and its test client:
auth, schema, SQL, JSON; no network) and prints the median latency per scenario and user, and the
ratio (1,000,000-task user / 100-task user; / 200-task user for issue 25's lists listings). The page
5,000 deep is reached by walking 4,999 pages by cursor; the 100-task user has no such page, so its
last page (page 5, also reached by cursor) stands in. `--plans` writes EXPLAIN (ANALYZE, BUFFERS) of each
scenario on the large user.

Then GET /api/{user}/sync (API.md §6), the same way: "nothing new" with a token at the user's
latest change, and "20 changes" with a token from just before 20 tasks were updated (both tokens
sealed here with the app's codec, so no walk through a million tasks is needed to get them). Last,
"nothing new" beside 1,000,000 tombstones of other users, all past the retention (10 users who
deleted 100,000 tasks each and never came back): a copy of the database, made right after the seed,
holds them, and a second app on it takes turns with the first, so the same sync is timed with and
without them in the same rounds (issue 22: a probe written as EXISTS could scan them all).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from werkzeug.datastructures import MultiDict

from todo_api import create_app
from todo_api.cli import MIGRATIONS_DIR, yoyo_backend
from todo_api.platform import sealing as tokens
from todo_api.platform.config import Settings
from todo_api.platform.embedded import EmbeddedPostgres
from todo_api.sync.routes import TOKEN as SYNC_TOKEN
from todo_api.tasks import listing
from todo_api.tasks.schemas import list_query

SEED_SQL = (Path(__file__).resolve().parent / "listing_seed.sql").read_text()
REMINDERS_SQL = (Path(__file__).resolve().parent / "reminders_seed.sql").read_text()
LISTS_SQL = (Path(__file__).resolve().parent / "lists_seed.sql").read_text()
LISTING_MIGRATION = "0003.listing-indexes"
SECRET = "bench-secret-that-is-long-enough-0123456789"
NEWEST = "2026-01-01T00:00:00Z"
SMALL_TASKS = 100
# Issue 25 puts its three listings against the same query at 200 tasks: a third user, for those rows.
LISTS_SMALL_TASKS = 200
DEEP_PAGE = 5_000
MAX_SECONDS_PER_SCENARIO = 60.0

DEEP = f"page {DEEP_PAGE:,} (by cursor)"
# (name, query parameters, in the 2.0 target): the four, then other listings a frontend makes.
SCENARIOS: list[tuple[str, dict[str, str], bool]] = [
    ("first page", {}, True),
    (DEEP, {}, True),
    ("q search (q=milk)", {"q": "milk"}, True),
    ("tag filter (tag=work)", {"tag": "work"}, True),
    ("pending, by due date", {"status": "pending", "sort": "due_at"}, False),
    ("completed, recently updated", {"status": "completed", "sort": "-updated_at"}, False),
    ("by title", {"sort": "title"}, False),
    ("high priority first", {"sort": "-priority"}, False),
    ("due in a week, by due date", {"due_after": "2025-12-01T00:00:00Z", "due_before": "2025-12-08T00:00:00Z",
                                    "sort": "due_at"}, False),
    ("rare tag (tag=Passport)", {"tag": "Passport"}, False),
    # The due-reminders poll of API.md §5, "now" two weeks after the newest task: a target (issue 13).
    ("due reminders (pending, remind_before=now, by remind_at)",
     {"status": "pending", "remind_before": "2026-01-15T00:00:00Z", "sort": "remind_at"}, True),
    ("rare word (q=notary)", {"q": "notary"}, False),
    ("first page with total=true", {"total": "true"}, False),
    # Lists, subtasks and manual order (issue 25), against the 200-task user: {list} is the user's first
    # list with top-level tasks, {parent} its newest task with subtasks (bench/lists_seed.sql).
    ("a list's tasks, by position", {"list_id": "{list}", "parent_id": "none", "sort": "position"}, True),
    ("a task's subtasks, by position", {"parent_id": "{parent}", "sort": "position"}, True),
    ("the inbox, by position", {"list_id": "none", "parent_id": "none", "sort": "position"}, True),
]  # fmt: skip
LIST_SCENARIOS = {"a list's tasks, by position", "a task's subtasks, by position", "the inbox, by position"}
SYNC_NOTHING_NEW = "sync, nothing new"
SYNC_CHANGES = 20
SYNC_SCENARIOS = [SYNC_NOTHING_NEW, f"sync, {SYNC_CHANGES} changes"]
OTHER_DELETERS = 10
OTHERS_TOMBSTONES = 1_000_000
SYNC_BESIDE_TOMBSTONES = f"sync, nothing new, beside {OTHERS_TOMBSTONES:,} old tombstones of other users"
BESIDE_DATABASE = "beside_tombstones"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def migrate_and_seed(url: str, users: dict[str, int]) -> None:
    """Migrations before the listing indexes, the seed, then the rest (indexes built over the data)."""
    from yoyo import read_migrations

    backend = yoyo_backend(url)
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with backend.lock():
        pending = backend.to_apply(migrations)
        split = next(i for i, migration in enumerate(pending) if migration.id == LISTING_MIGRATION)
        backend.apply_migrations(pending.filter(lambda migration: migration in pending[:split]))
        with psycopg.connect(url, autocommit=True) as conn:
            for user_id, count in users.items():
                started = time.perf_counter()
                conn.execute(SEED_SQL, {"user_id": user_id, "count": count, "newest": NEWEST})
                log(f"seeded {count:,} tasks for {user_id} in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        backend.apply_migrations(backend.to_apply(migrations))
        log(f"applied {LISTING_MIGRATION} and later migrations in {time.perf_counter() - started:.1f} s")
    backend.connection.close()
    with psycopg.connect(url, autocommit=True) as conn:
        for user_id in users:
            started = time.perf_counter()
            run_script(conn, REMINDERS_SQL, user_id)
            run_script(conn, LISTS_SQL, user_id)
            log(f"set reminders, lists and subtasks for {user_id} in {time.perf_counter() - started:.1f} s")
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute("VACUUM ANALYZE tasks")
        log(f"VACUUM ANALYZE in {time.perf_counter() - started:.1f} s")


def run_script(conn: psycopg.Connection, script: str, user_id: str) -> None:
    """A seed of several statements (triggers set aside, the work, triggers back): one at a time, as
    a statement with parameters must be alone."""
    for statement in script.split(";\n"):
        if statement.strip():
            conn.execute(statement, {"user_id": user_id} if "%(" in statement else None)


class Client:
    """GET /api/{user}/tasks (or another route of the user) through the app, as that user."""

    def __init__(self, app, user_id: str, route: str = "tasks"):
        self.client = app.test_client()
        self.path = f"/api/{user_id}/{route}"
        now = datetime.now(UTC)
        token = jwt.encode({"sub": user_id, "iat": now, "exp": now + timedelta(hours=2)}, SECRET, algorithm="HS256")
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, params: dict[str, str]) -> dict[str, Any]:
        response = self.client.get(self.path, query_string=params, headers=self.headers)
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.get_data(as_text=True)}")
        return response.json

    def cursor_at_page(self, params: dict[str, str], page: int) -> str | None:
        """The cursor that fetches page `page` (or the last page, if there are fewer), by walking."""
        cursor = None
        for _ in range(page - 1):
            next_cursor = self.get({**params, **({"cursor": cursor} if cursor else {})})["meta"]["next_cursor"]
            if next_cursor is None:
                break
            cursor = next_cursor
        return cursor


def median_ms(calls: dict[str, Callable[[], Any]], runs: int) -> tuple[dict[str, float], int]:
    """Median wall time of each call over `runs` rounds after 5 warm-ups, bounded in time.

    The calls take turns within each round (in alternating order), so a noisy neighbour on the
    machine slows both users alike instead of skewing their ratio.
    """
    for _ in range(5):
        for call in calls.values():
            call()
    timings: dict[str, list[float]] = {name: [] for name in calls}
    deadline = time.monotonic() + MAX_SECONDS_PER_SCENARIO
    for round_number in range(runs):
        names = list(calls) if round_number % 2 == 0 else list(calls)[::-1]
        for name in names:
            started = time.perf_counter()
            calls[name]()
            timings[name].append((time.perf_counter() - started) * 1000)
        if time.monotonic() > deadline:
            break
    return {name: statistics.median(values) for name, values in timings.items()}, len(timings[name])


def explain(url: str, user_id: str, params: dict[str, str], cursor: str | None, codec: tokens.TokenCodec) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the statement the view runs for these parameters."""
    from todo_api.platform.db import load_queries

    options = list_query.load_args(MultiDict({**params, **({"cursor": cursor} if cursor else {})}))
    query = listing.ListQuery(options)
    after = listing.CursorCodec(codec, user_id).decode(query, cursor) if cursor else None
    queries = load_queries()
    statement, values = listing.build_list_statement(queries["list_tasks"], query, after)
    statements = [(statement, {**values, "user_id": user_id, "page_size": options["limit"] + 1})]
    if options["total"]:
        statement, values = listing.build_count_statement(queries["count_tasks"], query)
        statements.append((statement, {**values, "user_id": user_id}))
    return explain_statements(url, statements)


def explain_statements(url: str, statements: list[tuple[sql.Composable, dict[str, Any]]]) -> str:
    parts = []
    with psycopg.connect(url, row_factory=dict_row) as conn:
        for statement, values in statements:
            conn.execute(statement, values).fetchall()  # warm, as in the measurement
            rows = conn.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS) {}").format(statement), values).fetchall()
            readable = psycopg.ClientCursor(conn).mogrify(statement, values)
            parts.append(" ".join(readable.split()) + "\n\n" + "\n".join(row["QUERY PLAN"] for row in rows))
    return "\n\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks of the large user")
    parser.add_argument("--runs", type=int, default=50, help="timed requests per scenario and user")
    parser.add_argument("--plans", type=Path, help="write the large user's EXPLAIN ANALYZE plans here (Markdown)")
    parser.add_argument("--table", type=Path, help="write the result table here (Markdown)")
    args = parser.parse_args()
    large, small, lists_small = (f"bench-{count}" for count in (args.tasks, SMALL_TASKS, LISTS_SMALL_TASKS))

    with tempfile.TemporaryDirectory(prefix="todo-bench-") as directory:
        server = EmbeddedPostgres(directory, durable=False).start()
        try:
            url = server.url()
            migrate_and_seed(url, {large: args.tasks, small: SMALL_TASKS, lists_small: LISTS_SMALL_TASKS})
            beside_url = copy_with_tombstones_of_others(url, server.url(BESIDE_DATABASE))
            apps = {}
            try:
                for name, database_url in (("plain", url), (BESIDE_DATABASE, beside_url)):
                    settings = Settings(
                        database_url=database_url, better_auth_secret=SECRET, db_pool_max_size=2, log_level="WARNING"
                    )
                    apps[name] = create_app(settings, configure_logs=False)
                smalls = {SMALL_TASKS: small, LISTS_SMALL_TASKS: lists_small}
                rows, beside = measure(apps["plain"], apps[BESIDE_DATABASE], url, beside_url, large, smalls, args)
            finally:
                for app in apps.values():
                    app.extensions["todo_api.db"].close()
        finally:
            server.stop(mode="fast")
    table = render_table(rows, args.tasks, args.runs, beside)
    print(table)
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(table + "\n")
    with_them, without_them = beside
    targets = [ratio for _, _, _, ratio, target, *_ in rows if target] + [with_them / without_them]
    return 0 if all(ratio <= 2.0 for ratio in targets) else 1


def structure(url: str, user_id: str) -> dict[str, int]:
    """The ids the lists scenarios name for a user: its first list with top-level tasks (a small
    user's first list may have none: 1 in 5 groups of tasks is in one of 20 lists), its newest task
    with subtasks."""
    with psycopg.connect(url) as conn:
        first_list = conn.execute(
            "SELECT id FROM lists WHERE user_id = %(user)s"
            " ORDER BY NOT EXISTS (SELECT FROM tasks WHERE tasks.user_id = %(user)s AND tasks.list_id = lists.id"
            '                      AND tasks.parent_id IS NULL), position COLLATE "C", id LIMIT 1',
            {"user": user_id},
        ).fetchone()[0]
        parent = conn.execute(
            "SELECT max(parent_id) FROM tasks WHERE user_id = %s AND parent_id IS NOT NULL", [user_id]
        ).fetchone()[0]
    return {"list": first_list, "parent": parent}


def measure(app, beside_app, url: str, beside_url: str, large: str, smalls: dict[int, str], args) -> tuple[list, tuple]:
    """The listing rows (each against the 100-task user, issue 25's against the 200-task one), then sync's."""
    clients = {user: Client(app, user) for user in (large, *smalls.values())}
    ids = {user: structure(url, user) for user in clients}
    started = time.perf_counter()
    deep = {user: client.cursor_at_page({}, DEEP_PAGE) for user, client in clients.items()}
    log(f"walked to page {DEEP_PAGE:,} by cursor in {time.perf_counter() - started:.1f} s")
    codec = app.extensions["todo_api.tokens"]  # built by the walk's first request
    rows, plans = [], []
    for name, scenario, target in SCENARIOS:
        small_tasks = LISTS_SMALL_TASKS if name in LIST_SCENARIOS else SMALL_TASKS
        small = smalls[small_tasks]
        calls = {}
        for user in (large, small):
            client = clients[user]
            params = {key: value.format(**ids[user]) for key, value in scenario.items()}
            query = {**params, **({"cursor": deep[user]} if name == DEEP and deep[user] else {})}
            calls[user] = lambda client=client, query=query: client.get(query)
        medians, runs = median_ms(calls, args.runs)
        ratio = medians[large] / medians[small]
        rows.append((name, medians[large], medians[small], ratio, target, runs, small_tasks))
        log(f"{name}: {medians[large]:.2f} ms / {medians[small]:.2f} ms ({small_tasks} tasks) = {ratio:.2f}")
        if args.plans:
            params = {key: value.format(**ids[large]) for key, value in scenario.items()}
            plans.append((name, params, explain(url, large, params, deep[large] if name == DEEP else None, codec)))
    sync_rows, beside = measure_sync(app, beside_app, url, beside_url, large, smalls[SMALL_TASKS], args, plans)
    if args.plans:
        write_plans(args.plans, plans, args.tasks)
    return rows + sync_rows, beside


def sync_tokens(app, url: str, user_id: str) -> dict[str, int]:
    """Positions for the sync scenarios: the latest change, and the one before 20 updated tasks."""
    with psycopg.connect(url, autocommit=True) as conn:
        before = conn.execute("SELECT last_seq FROM sync_state WHERE user_id = %s", [user_id]).fetchone()[0]
        conn.execute(
            "UPDATE tasks SET title = title, updated_at = now(), version = version + 1"
            " WHERE user_id = %s AND id IN (SELECT id FROM tasks WHERE user_id = %s ORDER BY sync_seq LIMIT %s)",
            [user_id, user_id, SYNC_CHANGES],
        )
        latest = conn.execute("SELECT last_seq FROM sync_state WHERE user_id = %s", [user_id]).fetchone()[0]
    return {SYNC_SCENARIOS[0]: latest, SYNC_SCENARIOS[1]: before}


def copy_with_tombstones_of_others(url: str, copy_url: str) -> str:
    """A copy of the seeded database, plus OTHERS_TOMBSTONES deletions of OTHER_DELETERS users, 60 days
    old and more (past the retention), analysed as autovacuum would; the copy's URL."""
    started = time.perf_counter()
    copy = urlsplit(copy_url).path.lstrip("/")
    with psycopg.connect(url, autocommit=True) as conn:
        template = conn.execute("SELECT current_database()").fetchone()[0]
    with psycopg.connect(urlsplit(url)._replace(path="/postgres").geturl(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY file_copy").format(
                sql.Identifier(copy), sql.Identifier(template)
            )
        )
    with psycopg.connect(copy_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO task_tombstones (user_id, sync_seq, task_id, deleted_at)"
            " SELECT 'bench-deleter-' || n %% %s, n, n, now() - interval '60 days' - n * interval '1 s'"
            " FROM generate_series(1, %s) AS n",
            [OTHER_DELETERS, OTHERS_TOMBSTONES],
        )
        conn.execute("VACUUM ANALYZE task_tombstones")
        conn.execute("CHECKPOINT")  # written out now rather than during the timed requests
    log(f"copied the database and added {OTHERS_TOMBSTONES:,} tombstones in {time.perf_counter() - started:.1f} s")
    return copy_url


def measure_sync(
    app, beside_app, url: str, beside_url: str, large: str, small: str, args, plans: list
) -> tuple[list[tuple], tuple[float, float]]:
    """The sync rows, and the large user's idle sync beside the other users' tombstones and without them."""
    from todo_api.platform.db import load_queries

    codec = app.extensions["todo_api.tokens"]  # the copy has the same signing key
    positions = {user: sync_tokens(app, url, user) for user in (large, small)}
    rows = []
    for name in SYNC_SCENARIOS:
        calls = {}
        for user in (large, small):
            calls[user] = sync_call(app, codec, user, positions[user][name])
        medians, runs = median_ms(calls, args.runs)
        ratio = medians[large] / medians[small]
        rows.append((name, medians[large], medians[small], ratio, True, runs, SMALL_TASKS))
        log(f"{name}: {medians[large]:.2f} ms / {medians[small]:.2f} ms = {ratio:.2f}")
        if args.plans:
            values = sync_values(large, positions[large][name])
            plans.append((name, {"token": "…"}, explain_statements(url, [(load_queries()["sync_changes"], values)])))

    with psycopg.connect(beside_url) as conn:  # the copy was made before sync_tokens' updates
        latest = dict(conn.execute("SELECT user_id, last_seq FROM sync_state").fetchall())
    calls = {user: sync_call(beside_app, codec, user, latest[user]) for user in (large, small)}
    calls["without"] = sync_call(app, codec, large, positions[large][SYNC_NOTHING_NEW])
    medians, runs = median_ms(calls, args.runs)
    ratio = medians[large] / medians[small]
    rows.append((SYNC_BESIDE_TOMBSTONES, medians[large], medians[small], ratio, True, runs, SMALL_TASKS))
    log(f"{SYNC_BESIDE_TOMBSTONES}: {medians[large]:.2f} ms / {medians[small]:.2f} ms = {ratio:.2f}")
    log(f"  against the same sync without them: {medians[large]:.2f} ms / {medians['without']:.2f} ms")
    if args.plans:
        statement = load_queries()["sync_changes"]
        values = sync_values(large, latest[large])
        explained = explain_statements(beside_url, [(statement, values)])
        explained += "\n\nThe same, prepared, under its generic plan:\n\n" + explain_generic(
            beside_url, statement, values
        )
        plans.append((SYNC_BESIDE_TOMBSTONES, {"token": "…"}, explained))
    return rows, (medians[large], medians["without"])


def sync_call(app, codec: tokens.TokenCodec, user: str, position: int) -> Callable[[], Any]:
    """GET /api/{user}/sync with a token at `position`."""
    client = Client(app, user, "sync")
    token = codec.seal(SYNC_TOKEN, position.to_bytes(8, "big"), user_id=user)
    return lambda: client.get({"token": token})


def sync_values(user: str, position: int) -> dict[str, Any]:
    """sync_changes' parameters for a token at `position` (as sync/routes.py passes them)."""
    return {
        "user_id": user,
        "after": position,
        "deleted_after": position,
        "page_size": 201,
        "retention_days": 30,
    }


def explain_generic(url: str, statement: sql.SQL, values: dict[str, Any]) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the statement prepared, under its generic plan."""
    with psycopg.connect(url, row_factory=dict_row, autocommit=True) as conn:
        text = statement.as_string(conn)
        names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", text)))
        numbered = re.sub(r"%\((\w+)\)s", lambda match: f"${names.index(match.group(1)) + 1}", text)
        conn.execute(sql.SQL("PREPARE generic AS {}").format(sql.SQL(numbered)))  # type: ignore[arg-type]
        conn.execute("SET plan_cache_mode = force_generic_plan")
        arguments = sql.SQL(", ").join(sql.Literal(values[name]) for name in names)
        explain = sql.SQL("EXPLAIN (ANALYZE, BUFFERS) EXECUTE generic({})").format(arguments)
        return "\n".join(row["QUERY PLAN"] for row in conn.execute(explain).fetchall())


def render_table(rows: list[tuple], tasks: int, runs: int, beside: tuple[float, float]) -> str:
    lines = [
        f"| listing (limit 20) | {tasks:,} tasks | {SMALL_TASKS} tasks (or as marked) | ratio | target ≤ 2.0 |",
        "|---|---:|---:|---:|---|",
    ]
    for name, large_ms, small_ms, ratio, target, _, small_tasks in rows:
        verdict = ("yes" if ratio <= 2.0 else "**no**") if target else "(not a target)"
        small_cell = f"{small_ms:.2f} ms" + (f" ({small_tasks} tasks)" if small_tasks != SMALL_TASKS else "")
        lines.append(f"| {name} | {large_ms:.2f} ms | {small_cell} | {ratio:.2f} | {verdict} |")
    lines.append("")
    lines.append(f"Median of {runs} requests per cell after 5 warm-ups, through the Flask app (test client).")
    lines.append("The sync rows use sync's default limit (200): nothing new returns none, 20 changes all 20.")
    with_them, without_them = beside
    ratio = with_them / without_them
    lines.append(
        f"Beside {OTHERS_TOMBSTONES:,} old tombstones of other users, the {tasks:,}-task user's idle sync took "
        f"{with_them:.2f} ms, against {without_them:.2f} ms without them in the same rounds: ratio {ratio:.2f} "
        f"(target ≤ 2.0: {'yes' if ratio <= 2.0 else '**no**'})."
    )
    return "\n".join(lines)


def _summary(plan: str) -> tuple[str, str]:
    """The scans of a plan (with the Sort above them, if any) and its execution time."""
    scans = re.findall(r"((?:Bitmap )?Index (?:Only )?Scan(?: Backward)?|Seq Scan) (?:using|on) (\w+)", plan)
    shape = ", ".join(dict.fromkeys(f"{kind} {index}" for kind, index in scans))
    if re.search(r"^\s*(->\s+)?Sort\b", plan, re.MULTILINE):
        shape = f"Sort of {shape}"
    times = re.findall(r"Execution Time: ([\d.]+) ms", plan)
    return shape, " + ".join(f"{float(t):.2f} ms" for t in times)


def write_plans(path: Path, plans: list[tuple[str, dict[str, str], str]], tasks: int) -> None:
    parts = [
        f"# Listing plans on a user with {tasks:,} tasks",
        "",
        "Written by `make bench-listing` (bench/listing.py; the data is described in bench/listing_seed.sql):",
        "EXPLAIN (ANALYZE, BUFFERS) of the statements the view runs for each listing of the benchmark, on",
        f"the user with {tasks:,} tasks, right after its timed requests. tests/test_listing_plans.py",
        "checks on every run of the suite that each listing a frontend makes reads a page, not the user.",
        "",
        "| listing | plan | execution |",
        "|---|---|---:|",
    ]
    for name, _, plan in plans:
        shape, execution = _summary(plan)
        parts.append(f"| {name} | {shape} | {execution} |")
    for name, params, plan in plans:
        query = "&".join(f"{key}={value}" for key, value in params.items())
        if name == DEEP:
            query = "cursor=(next_cursor of page 4,999)"
        route = "sync" if name in [*SYNC_SCENARIOS, SYNC_BESIDE_TOMBSTONES] else "tasks"
        request = f"GET /api/{{user}}/{route}{'?' + query if query else ''}"
        parts += ["", f"## {name}", "", f"`{request}`", "", "```", plan, "```"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n")


if __name__ == "__main__":
    sys.exit(main())
