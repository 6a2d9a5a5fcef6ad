"""Recurrence-rule benchmark (issue 22): does any rule make a POST noticeably slower than a plain one?

    .venv/bin/python bench/rules.py [--runs 30] [--table PATH]

Starts a throwaway embedded PostgreSQL (durable=False), applies the migrations, and POSTs tasks
through the real Flask app (create_app and its test client: auth, schema, the rule's check, SQL,
JSON; no network): a plain task, a task with an everyday rule, and tasks with rules built to make
the search for an occurrence work hard — BYSETPOS lists that once multiplied the work of every
period (the issue's 105 values), the longest lists of each part that fit in 255 characters, rules
that yield nothing and so walk the whole search window, rules with many candidate dates of which
BYSETPOS rarely picks one, and the slowest shapes a property-based search of the grammar found.
Each POST is answered 201 (created) or 400 (refused); either way the rule was searched.

The scenarios take turns within each round, so a noisy neighbour slows them alike. Prints each
one's median latency and CPU time (this process's: the app and the search, not PostgreSQL's) and
their ratios to the plain POST's; the slowest rule, and the plain POST, last.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from todo_api import create_app  # noqa: E402
from todo_api.cli import migrate  # noqa: E402
from todo_api.platform.config import Settings  # noqa: E402
from todo_api.platform.embedded import EmbeddedPostgres  # noqa: E402

SECRET = "bench-secret-that-is-long-enough-0123456789"
USER = "bench-rules"
DUE = "2027-01-04T09:00:00Z"
MAX_SECONDS = 300.0
PLAIN = "plain POST (no rule)"


def _list(values) -> str:
    return ",".join(str(value) for value in values)


def _fill(prefix: str, values) -> str:
    """`prefix` followed by as many of `values` as fit in a 255-character rule."""
    rule = prefix + str(next(iter(values)))
    for value in list(values)[1:]:
        if len(rule) + len(str(value)) + 1 > 255:
            break
        rule += f",{value}"
    return rule


NEVER = "BYMONTH=2;BYMONTHDAY=30"  # February 30th: no date, the whole window is walked
ONES = _list([1] * 105)  # with DAILY and NEVER: the 253-character rule
DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
MONTH_ORDINALS = [f"{sign}{n}{day}" for n in range(1, 6) for sign in ("", "-") for day in DAYS]
FIRST_28 = _list(range(1, 29))

SCENARIOS: list[tuple[str, str | None]] = [
    (PLAIN, None),
    ("everyday rule", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"),
    *[(f"{freq} yielding nothing", f"FREQ={freq};{NEVER}") for freq in ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")],
    *[
        (f"{freq} yielding nothing, BYSETPOS=1 x105", f"FREQ={freq};{NEVER};BYSETPOS={ONES}"[:255].rstrip(","))
        for freq in ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
    ],
    *[
        (f"{freq} yielding nothing, BYSETPOS 1..n", _fill(f"FREQ={freq};{NEVER};BYSETPOS=", range(1, 367)))
        for freq in ("MONTHLY", "YEARLY")
    ],
    ("longest BYMONTHDAY list", _fill("FREQ=MONTHLY;BYMONTH=2;BYDAY=MO;BYSETPOS=6;BYMONTHDAY=", range(1, 32))),
    ("longest BYDAY ordinals, MONTHLY", _fill(f"FREQ=MONTHLY;{NEVER};BYDAY=", MONTH_ORDINALS)),
    ("longest BYDAY ordinals, YEARLY", _fill("FREQ=YEARLY;BYMONTHDAY=31;BYMONTH=2,4,6,9,11;BYDAY=", MONTH_ORDINALS)),
    ("many candidates, DAILY", f"FREQ=DAILY;BYMONTHDAY={FIRST_28};BYSETPOS=2"),
    ("many candidates, WEEKLY", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA;BYSETPOS=7"),
    ("many candidates, MONTHLY", f"FREQ=MONTHLY;BYMONTHDAY={FIRST_28};BYSETPOS=29,30,31"),
    ("many candidates, YEARLY", f"FREQ=YEARLY;BYMONTHDAY={FIRST_28};BYSETPOS=337"),
    ("filters on every day, no list", "FREQ=MONTHLY;BYDAY=5MO;BYMONTHDAY=1"),
    ("one candidate a month, BYSETPOS=2", "FREQ=MONTHLY;BYDAY=MO;BYMONTHDAY=1,2,3,4,5,6,7;BYSETPOS=2"),
    # The costliest rules a property-based search of the grammar found (hypothesis.target on the lines
    # executed), before this bench's change and after it.
    ("search before: MONTHLY, 4 candidates a month", "FREQ=MONTHLY;BYMONTHDAY=1,2,3,4;BYSETPOS=5"),
    (
        "search before: MONTHLY, BYSETPOS past the candidates",
        "FREQ=MONTHLY;BYMONTHDAY=-5,-28,-4,-2;BYSETPOS=80,81,74,72,63,79,-100,366,214,332,-183,-297",
    ),
    (
        "search after: YEARLY, INTERVAL=115, weekdays and an ordinal",
        "FREQ=YEARLY;INTERVAL=115;BYDAY=SA,TH,SU,+15SU,MO;BYSETPOS=2,2,+4,2,+39,+37,2,5,-6,2,-39,+37;WKST=WE",
    ),
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def medians_ms(
    calls: dict[str, Callable[[], int]], runs: int
) -> tuple[dict[str, float], dict[str, float], dict[str, int], int]:
    """Median wall and CPU time (this process: the app and the rule's search, not PostgreSQL) of each
    call over `runs` rounds after 3 warm-ups, bounded in time; and each call's status."""
    statuses = {}
    for _ in range(3):
        for name, call in calls.items():
            statuses[name] = call()
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    deadline = time.monotonic() + MAX_SECONDS
    for round_number in range(runs):
        names = list(calls) if round_number % 2 == 0 else list(calls)[::-1]
        for name in names:
            started, started_cpu = time.perf_counter(), time.process_time()
            calls[name]()
            cpu[name].append((time.process_time() - started_cpu) * 1000)
            wall[name].append((time.perf_counter() - started) * 1000)
        if time.monotonic() > deadline:
            break
    median = statistics.median
    return (
        {name: median(values) for name, values in wall.items()},
        {name: median(values) for name, values in cpu.items()},
        statuses,
        len(wall[PLAIN]),
    )


def render(wall: dict[str, float], cpu: dict[str, float], statuses: dict[str, int], runs: int) -> str:
    rules = dict(SCENARIOS)
    lines = [
        f"POST /api/{{user}}/tasks through the Flask test client, medians of {runs} rounds; CPU: this process",
        "",
        "| scenario | status | wall ms | ratio | CPU ms | ratio | rule (characters) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, _ in SCENARIOS:
        rule = rules[name]
        shown = "" if rule is None else f"`{rule[:60]}{'…' if len(rule) > 60 else ''}` ({len(rule)})"
        lines.append(
            f"| {name} | {statuses[name]} | {wall[name]:.2f} | {wall[name] / wall[PLAIN]:.2f} "
            f"| {cpu[name]:.2f} | {cpu[name] / cpu[PLAIN]:.2f} | {shown} |"
        )
    slowest = max((name for name, rule in SCENARIOS if rule is not None), key=wall.__getitem__)
    lines += [
        "",
        f"slowest rule: {slowest}: {wall[slowest]:.2f} ms ({cpu[slowest]:.2f} ms CPU); "
        f"plain POST: {wall[PLAIN]:.2f} ms ({cpu[PLAIN]:.2f} ms CPU); ratio {wall[slowest] / wall[PLAIN]:.2f}",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="timed POSTs per scenario")
    parser.add_argument("--table", type=Path, help="also write the result table here (Markdown)")
    args = parser.parse_args()
    assert all(rule is None or len(rule) <= 255 for _, rule in SCENARIOS), "a scenario's rule is too long"

    with tempfile.TemporaryDirectory(prefix="todo-bench-rules-") as directory:
        server = EmbeddedPostgres(directory, durable=False).start()
        try:
            os.environ["DATABASE_URL"] = server.url()
            migrate()
            settings = Settings(
                database_url=server.url(), better_auth_secret=SECRET, db_pool_max_size=2, log_level="WARNING"
            )
            app = create_app(settings, configure_logs=False)
            try:
                client = app.test_client()
                now = datetime.now(UTC)
                token = jwt.encode({"sub": USER, "iat": now, "exp": now + timedelta(hours=2)}, SECRET, "HS256")
                headers = {"Authorization": f"Bearer {token}"}

                def post(rule: str | None) -> int:
                    body = {"title": "bench", "due_at": DUE, **({"recurrence": rule} if rule else {})}
                    response = client.post(f"/api/{USER}/tasks", json=body, headers=headers)
                    if response.status_code not in (201, 400):
                        raise RuntimeError(f"{response.status_code}: {response.get_data(as_text=True)}")
                    return response.status_code

                calls = {name: (lambda rule=rule: post(rule)) for name, rule in SCENARIOS}
                wall, cpu, statuses, runs = medians_ms(calls, args.runs)
            finally:
                app.extensions["todo_api.db"].close()
        finally:
            server.stop(mode="fast")
    table = render(wall, cpu, statuses, runs)
    print(table)
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
