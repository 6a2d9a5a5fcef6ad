"""The task listing: filters, sort keys and keyset pagination with sealed, opaque cursors.

The query is `list_tasks` from sql/tasks.sql with its `{filters}`, `{after}`, `{sort_key}` and
`{direction}` holes filled from the fixed fragments below; user text only ever travels as a
parameter. Sorting is always `(sort_key, id)` in one direction, so a page is one index range scan
and the cursor is simply the last row's `(sort_key, id)`.

With a tag, word, priority or due-date filter, which plan is cheapest depends on the values: a
common tag fills a page within a few rows of the ordered scan, a rare one is best collected from its
GIN index and sorted. Such statements are never prepared (`ListQuery.plan_depends_on_values`; the
view passes prepare=False): PostgreSQL plans each with its own values, and never settles on a
generic plan that would walk a million rows for a tag that is not there. The rest (status, sort and
cursor only: the frontend's everyday listings) are one index range scan whatever the values, so
they are prepared like every other statement and not planned again on each request.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from marshmallow import ValidationError
from psycopg import sql

from ..platform.fields import format_timestamp
from ..platform.http import MAX_ID
from ..platform.sealing import Purpose, TokenCodec
from .schemas import PRIORITIES


@dataclass(frozen=True)
class SortKey:
    """How one `sort` value orders rows: the SQL expression, the parameter type for the cursor."""

    column: str
    expression: sql.Composable
    cast: sql.Composable
    descending: bool


def _timestamp_key(column: str, descending: bool) -> SortKey:
    return SortKey(column, sql.Identifier(column), sql.SQL("timestamptz"), descending)


# Tasks without due_at (remind_at) sort last in both directions: they take +infinity ascending,
# -infinity descending. Each expression has an index of its own (migrations/0003, 0006).
_DUE_ASC = sql.SQL("COALESCE(due_at, 'infinity'::timestamptz)")
_DUE_DESC = sql.SQL("COALESCE(due_at, '-infinity'::timestamptz)")
_REMIND_ASC = sql.SQL("COALESCE(remind_at, 'infinity'::timestamptz)")
_REMIND_DESC = sql.SQL("COALESCE(remind_at, '-infinity'::timestamptz)")
UNDATED_LAST = ("due_at", "remind_at")  # the sort keys whose missing values are +-infinity

SORT_KEYS: dict[str, SortKey] = {}
for _descending in (False, True):
    _prefix = "-" if _descending else ""
    SORT_KEYS[_prefix + "created_at"] = _timestamp_key("created_at", _descending)
    SORT_KEYS[_prefix + "updated_at"] = _timestamp_key("updated_at", _descending)
    SORT_KEYS[_prefix + "due_at"] = SortKey(
        "due_at", _DUE_DESC if _descending else _DUE_ASC, sql.SQL("timestamptz"), _descending
    )
    SORT_KEYS[_prefix + "remind_at"] = SortKey(
        "remind_at", _REMIND_DESC if _descending else _REMIND_ASC, sql.SQL("timestamptz"), _descending
    )
    SORT_KEYS[_prefix + "priority"] = SortKey(
        "priority", sql.Identifier("priority"), sql.SQL("task_priority"), _descending
    )
    SORT_KEYS[_prefix + "title"] = SortKey("title", sql.Identifier("title"), sql.SQL("text"), _descending)
    # Positions compare byte-wise (API.md §9): COLLATE "C" here, in the column and in its indexes.
    SORT_KEYS[_prefix + "position"] = SortKey(
        "position", sql.SQL('position COLLATE "C"'), sql.SQL('text COLLATE "C"'), _descending
    )

# Each filter is a fixed fragment, used when its parameter is given.
_FILTERS: dict[str, sql.SQL] = {
    "pending": sql.SQL("AND NOT completed"),
    "completed": sql.SQL("AND completed"),
    "priority": sql.SQL("AND priority = ANY(%(priorities)s::task_priority[])"),
    "tag": sql.SQL("AND tags_lower @> lower_tags(%(tags)s::text[])"),
    "q": sql.SQL("AND (title ILIKE %(pattern)s OR description ILIKE %(pattern)s)"),
    # The due (remind) bounds are written on {due}, the due_at (remind_at) expression of the index
    # being scanned (the sort's own when sorting by it), so they bound its range instead of
    # filtering every row.
    "due_after": sql.SQL("AND {due} >= %(due_after)s"),
    "due_before": sql.SQL("AND {due} < %(due_before)s"),
    "remind_after": sql.SQL("AND {due} >= %(remind_after)s"),
    "remind_before": sql.SQL("AND {due} < %(remind_before)s"),
    # A list's tasks or the inbox's, a task's subtasks or the top level (API.md §4): with sort=position,
    # one range scan of tasks_user_list_position_idx or tasks_user_parent_position_idx (migrations/0009).
    "list_id": sql.SQL("AND list_id = %(list_id)s"),
    "inbox": sql.SQL("AND list_id IS NULL"),
    "parent_id": sql.SQL("AND parent_id = %(parent_id)s"),
    "top_level": sql.SQL("AND parent_id IS NULL"),
    # With a bound, tasks without that timestamp never match: drop their +-infinity stand-ins.
    "has_due": sql.SQL("AND {due} > '-infinity'::timestamptz AND {due} < 'infinity'::timestamptz"),
}
# One sibling group (list_id and parent_id both filtered): list_id and parent_id are the same on every
# row, so ordering by them first changes nothing, but lets PostgreSQL read the order straight from
# tasks_user_list_position_idx: an IS NULL condition (the inbox, the top level) does not make a column
# constant for the planner as an equality does, and it would sort the whole group instead.
_GROUP_ORDER = sql.SQL("list_id {direction}, parent_id {direction}, {key}")
_AFTER_ASC = sql.SQL("AND ({key}, id) > (%(after_key)s::{cast}, %(after_id)s)")
_AFTER_DESC = sql.SQL("AND ({key}, id) < (%(after_key)s::{cast}, %(after_id)s)")

CURSOR = Purpose("listing cursor")
_PAD_BYTES = 64


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class ListQuery:
    """A loaded `ListQuerySchema` turned into SQL fragments and parameters."""

    options: dict[str, Any]

    @property
    def sort(self) -> SortKey:
        return SORT_KEYS[self.options["sort"]]

    @property
    def one_group(self) -> bool:
        """Whether the listing is one sibling group in position order (see _GROUP_ORDER)."""
        options = self.options
        return self.sort.column == "position" and options["list_id"] is not None and options["parent_id"] is not None

    @property
    def plan_depends_on_values(self) -> bool:
        """Whether a filter's value decides the best plan (see the module docstring)."""
        options = self.options
        return bool(
            options["priority"]
            or options["tag"]
            or options["q"] is not None
            or options["due_after"] is not None
            or options["due_before"] is not None
            # the due-reminders poll, sorted by remind_at, is one range scan of its index whatever the bound
            or (self.sort.column != "remind_at" and (options["remind_after"] or options["remind_before"]))
        )

    def filters(self) -> tuple[sql.Composable, dict[str, Any]]:
        fragments: list[sql.Composable] = []
        params: dict[str, Any] = {}
        options = self.options
        if options["status"] != "all":
            fragments.append(_FILTERS[options["status"]])
        for name, unset in (("list_id", "inbox"), ("parent_id", "top_level")):
            if options[name] == "none":
                fragments.append(_FILTERS[unset])
            elif options[name] is not None:
                fragments.append(_FILTERS[name])
                params[name] = options[name]
        if options["priority"]:
            fragments.append(_FILTERS["priority"])
            params["priorities"] = sorted(set(options["priority"]))
        if options["tag"]:
            fragments.append(_FILTERS["tag"])
            params["tags"] = sorted(set(options["tag"]))  # lower-cased by the SQL, as the stored tags are
        if options["q"] is not None:
            fragments.append(_FILTERS["q"])
            params["pattern"] = _like_pattern(options["q"])
        for column, ascending in (("due_at", _DUE_ASC), ("remind_at", _REMIND_ASC)):
            prefix = column.removesuffix("_at")
            bounds = [bound for bound in (f"{prefix}_after", f"{prefix}_before") if options[bound] is not None]
            if bounds:
                due = self.sort.expression if self.sort.column == column else ascending
                for bound in bounds:
                    fragments.append(_FILTERS[bound].format(due=due))
                    params[bound] = options[bound]
                fragments.append(_FILTERS["has_due"].format(due=due))
        return sql.SQL(" ").join(fragments), params

    @cached_property  # a page both checks a cursor and makes one: work it out once
    def fingerprint(self) -> str:
        """What a cursor is bound to: the sort and every filter, normalised."""
        _, params = self.filters()
        canonical = {
            "sort": self.options["sort"],
            "status": self.options["status"],
            "inbox": self.options["list_id"] == "none",
            "top_level": self.options["parent_id"] == "none",
            **{k: format_timestamp(v) if isinstance(v, datetime) else v for k, v in params.items()},
        }
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()[:16]


class CursorCodec:
    """Cursors of one user's listings: the last row's (sort key, id), sealed (see platform/sealing.py) and bound
    to the user and to the listing's sort and filters."""

    def __init__(self, tokens: TokenCodec, user_id: str):
        self._tokens = tokens
        self._user_id = user_id

    def encode(self, query: ListQuery, row: dict[str, Any]) -> str:
        key = row[query.sort.column]
        if query.sort.column in UNDATED_LAST and key is None:
            key = "-infinity" if query.sort.descending else "infinity"
        elif isinstance(key, datetime):
            key = key.isoformat()
        # ensure_ascii=False: a 200-character title of emoji stays well inside the cursor's length limit.
        payload = json.dumps([key, row["id"]], separators=(",", ":"), ensure_ascii=False).encode()
        payload += b" " * (-len(payload) % _PAD_BYTES)  # a cursor's length tells only roughly how long a title is
        return self._tokens.seal(CURSOR, payload, user_id=self._user_id, context=query.fingerprint)

    def decode(self, query: ListQuery, cursor: str) -> tuple[Any, int]:
        """The (sort key, id) a cursor points after; ValidationError naming `cursor` otherwise."""
        invalid = ValidationError(
            {"cursor": ["Not a cursor of this listing (changed, or from another user, sort or filter)."]}
        )
        try:
            payload = self._tokens.open(CURSOR, cursor, user_id=self._user_id, context=query.fingerprint)
            key, task_id = json.loads(payload)
        except (ValueError, TypeError):
            raise invalid from None
        if type(task_id) is not int or not 0 < task_id <= MAX_ID:
            raise invalid
        try:
            return _sort_value(query.sort, key), task_id
        except (ValueError, TypeError, OverflowError):
            raise invalid from None


def _sort_value(sort: SortKey, key: Any) -> Any:
    """A cursor's sort key as a parameter PostgreSQL will take for this sort; raises otherwise.

    Only sealed cursors get here, so this is defence in depth against a leaked or misused key.
    """
    if not isinstance(key, str):
        raise TypeError("a cursor's sort key is a string")
    if sort.column == "priority":
        if key not in PRIORITIES:
            raise ValueError("not a priority")
        return key
    if sort.column == "position":
        if not key.isascii() or len(key) > 64:
            raise ValueError("not a position")
        return key
    if sort.column == "title":
        if "\x00" in key:
            raise ValueError("NUL in a title")
        key.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError, a ValueError
        return key
    if sort.column in UNDATED_LAST and key in ("infinity", "-infinity"):
        return key
    moment = datetime.fromisoformat(key)
    if moment.tzinfo is None:
        raise ValueError("a naive timestamp")
    return moment.astimezone(UTC)


def build_list_statement(
    template: sql.SQL, query: ListQuery, after: tuple[Any, int] | None
) -> tuple[sql.Composed, dict[str, Any]]:
    """Fill `list_tasks` for one page; the caller adds user_id and the page size."""
    filters, params = query.filters()
    sort = query.sort
    after_fragment: sql.Composable = sql.SQL("")
    if after is not None:
        pattern = _AFTER_DESC if sort.descending else _AFTER_ASC
        after_fragment = pattern.format(key=sort.expression, cast=sort.cast)
        params["after_key"], params["after_id"] = after
    direction = sql.SQL("DESC" if sort.descending else "ASC")
    statement = template.format(
        filters=filters,
        after=after_fragment,
        sort_key=_GROUP_ORDER.format(direction=direction, key=sort.expression) if query.one_group else sort.expression,
        direction=direction,
    )
    return statement, params


def build_count_statement(template: sql.SQL, query: ListQuery) -> tuple[sql.Composed, dict[str, Any]]:
    filters, params = query.filters()
    return template.format(filters=filters), params
