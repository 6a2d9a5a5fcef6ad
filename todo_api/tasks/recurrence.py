"""Recurrence rules (API.md §5): parse and normalise an RFC 5545 RRULE, check a time zone name, and
find a task's next occurrence. Pure functions: the caller passes `now`.

The rule runs from the task's `due_at` taken as wall-clock time in its zone (its DTSTART), expanded by
dateutil's rrule on naive wall-clock times; each candidate then gets its zone's offset with fold=0,
which is RFC 5545 §3.3.5: a time in a spring-forward gap takes the offset before the gap, a time
that occurs twice is the first. COUNT and UNTIL are applied here, not by dateutil (COUNT counts the
occurrences left; a date-only UNTIL ends with its day in the task's zone). BYSETPOS is cut to the
positions a period can reach; dateutil applies a few, at a pass over the period's days each, and
more are applied here to each period's candidates, at a cost per candidate.

Every search is bounded: dateutil walks periods that yield nothing (Feb 30 would be walked to year
9999), so the walk starts at the period of the search point, not at DTSTART (every BY part the rule
leaves to DTSTART is made explicit first, so the occurrences are the same), and `_BoundedRule`
stops after a number of dateutil's month or year steps (fewer for long ordinal lists) and of
candidate dates. A rule with nothing inside that bound counts as yielding nothing. Whatever else
dateutil raises is a RuleError. docs/recurring-tasks.md#bounded has the figures.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from dateutil import rrule

log = logging.getLogger("todo_api.recurrence")

MAX_RULE_LENGTH = 255
MAX_ZONE_LENGTH = 64
_FREQS = {"DAILY": rrule.DAILY, "WEEKLY": rrule.WEEKLY, "MONTHLY": rrule.MONTHLY, "YEARLY": rrule.YEARLY}
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_PARTS = ("FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "WKST")
_NUMBER = re.compile(r"^[+-]?[0-9]{1,4}$")
_BYDAY = re.compile(r"^([+-]?[0-9]{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
_UNTIL = re.compile(r"^([0-9]{8})(T[0-9]{6}Z)?$")
# How many of dateutil's rebuilds (one per period for YEARLY and MONTHLY, one per month walked for
# WEEKLY and DAILY) a search may take: about 40 years of a yearly or monthly rule, 10 of a weekly,
# 4 of a daily one (docs/recurring-tasks.md#bounded has what each costs).
_STEP_BUDGET = {rrule.YEARLY: 40, rrule.MONTHLY: 480, rrule.WEEKLY: 120, rrule.DAILY: 48}
# A rebuild looks at each day of its month (year) and places each BYDAY ordinal in each month it
# spans: every so many placements cost one more step, so long ordinal lists get fewer steps.
_PLACEMENTS_PER_STEP = {rrule.YEARLY: 366, rrule.MONTHLY: 31}
# How many candidate dates (those every BY part but BYSETPOS allows) a search may examine. Without
# BYSETPOS the first one at or after the search point ends it (at most a period's 366 come before);
# with it, five years of a yearly rule whose every day is a candidate fit (the last day of a leap year).
_CANDIDATE_BUDGET = 2000
# Up to so many BYSETPOS values (those a period can reach), dateutil's pass over a period's days per
# value costs less than grouping its candidates here.
_FEW_POSITIONS = 4
# With BYMONTH (YEARLY) or per month (MONTHLY), a BYDAY ordinal counts within the month (RFC 5545).
_MONTH_ORDINALS = 5
_YEAR_ORDINALS = 53


class RuleError(ValueError):
    """A recurrence rule or zone the contract refuses; the message is for the client."""


@dataclass(frozen=True)
class Rule:
    """A parsed rule: `text` is the normalised form that is stored and returned."""

    text: str
    freq: int
    interval: int = 1
    count: int | None = None
    until: str | None = None  # as given: YYYYMMDD or YYYYMMDDTHHMMSSZ
    byday: tuple[tuple[int | None, int], ...] = ()  # (ordinal or None, weekday 0-6)
    bymonthday: tuple[int, ...] = ()
    bymonth: tuple[int, ...] = ()
    bysetpos: tuple[int, ...] = ()
    wkst: int = 0


def _numbers(name: str, value: str, low: int, high: int, *, signed: bool = False) -> tuple[int, ...]:
    numbers = []
    for item in value.split(","):
        if not _NUMBER.match(item) or (not signed and item[0] in "+-"):
            raise RuleError(f"{name} must be a comma-separated list of whole numbers.")
        number = int(item)
        if not (low <= abs(number) <= high) or (not signed and number < 0):
            span = f"{low} to {high} or -{high} to -{low}" if signed else f"{low} to {high}"
            raise RuleError(f"{name} values must be {span}.")
        numbers.append(number)
    return tuple(numbers)


def _number(name: str, value: str, low: int, high: int) -> int:
    if "," in value:
        raise RuleError(f"{name} is one number.")
    return _numbers(name, value, low, high)[0]


def _until(value: str) -> str:
    match = _UNTIL.match(value)
    if not match:
        raise RuleError("UNTIL must be a date (YYYYMMDD) or a UTC date-time (YYYYMMDDTHHMMSSZ).")
    try:
        datetime.strptime(value.rstrip("Z"), "%Y%m%dT%H%M%S" if match.group(2) else "%Y%m%d")
    except ValueError:
        raise RuleError("UNTIL is not a real date.") from None
    return value


def parse_rule(text: str, *, stored: bool = False) -> Rule:
    """Parse and normalise a rule as API.md §5 says; RuleError for anything it refuses.

    `stored`: a rule read back from the database, which an earlier version may have accepted with
    YEARLY and BYMONTH ordinals up to 53 (they match nothing past a month's 5th; the search skips them).
    """
    if not text.isascii():  # and str.upper() would turn some letters into ASCII ones (the long s, U+017F, into "S")
        raise RuleError("A rule is ASCII text, like FREQ=WEEKLY;BYDAY=MO.")
    rule = text.upper()
    if rule.startswith("RRULE:"):
        rule = rule[len("RRULE:") :]
    if len(rule) > MAX_RULE_LENGTH:
        raise RuleError(f"A rule is at most {MAX_RULE_LENGTH} characters.")
    parts: dict[str, str] = {}
    for part in rule.split(";"):
        name, equals, value = part.partition("=")
        if not equals or not value:
            raise RuleError("A rule is NAME=VALUE parts separated by ';', like FREQ=WEEKLY;BYDAY=MO.")
        if name not in _PARTS:
            raise RuleError(f"{name[:20]} is not a part this API accepts (accepted: {', '.join(_PARTS)}).")
        if name in parts:
            raise RuleError(f"{name} is given twice.")
        parts[name] = value
    if "FREQ" not in parts:
        raise RuleError("FREQ is required.")
    if parts["FREQ"] not in _FREQS:
        raise RuleError("FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY.")
    if "COUNT" in parts and "UNTIL" in parts:
        raise RuleError("COUNT and UNTIL cannot be used together.")
    freq = parts["FREQ"]
    fields: dict[str, Any] = {"text": rule, "freq": _FREQS[freq]}
    if "INTERVAL" in parts:
        fields["interval"] = _number("INTERVAL", parts["INTERVAL"], 1, 1000)
    if "COUNT" in parts:
        fields["count"] = _number("COUNT", parts["COUNT"], 1, 1000)
    if "UNTIL" in parts:
        fields["until"] = _until(parts["UNTIL"])
    if "BYDAY" in parts:
        fields["byday"] = _byday(parts["BYDAY"], freq)
    if "BYMONTHDAY" in parts:
        fields["bymonthday"] = _numbers("BYMONTHDAY", parts["BYMONTHDAY"], 1, 31, signed=True)
    if "BYMONTH" in parts:
        fields["bymonth"] = _numbers("BYMONTH", parts["BYMONTH"], 1, 12)
    if "BYSETPOS" in parts:
        if not {"BYDAY", "BYMONTHDAY", "BYMONTH"} & parts.keys():
            raise RuleError("BYSETPOS needs another BY part (BYDAY, BYMONTHDAY or BYMONTH) beside it.")
        fields["bysetpos"] = _numbers("BYSETPOS", parts["BYSETPOS"], 1, 366, signed=True)
    if "WKST" in parts:
        if parts["WKST"] not in _WEEKDAYS:
            raise RuleError("WKST must be one of MO, TU, WE, TH, FR, SA, SU.")
        fields["wkst"] = _WEEKDAYS.index(parts["WKST"])
    parsed = Rule(**fields)
    if not stored and any(abs(ordinal or 0) > _ordinal_limit(parsed) for ordinal, _ in parsed.byday):
        raise RuleError("With BYMONTH, a BYDAY ordinal counts within the month: 1 to 5 or -5 to -1.")
    return parsed


def _ordinal_limit(rule: Rule) -> int:
    return _MONTH_ORDINALS if rule.freq == rrule.MONTHLY or rule.bymonth else _YEAR_ORDINALS


def _byday(value: str, freq: str) -> tuple[tuple[int | None, int], ...]:
    days = []
    limit = {"MONTHLY": _MONTH_ORDINALS, "YEARLY": _YEAR_ORDINALS}.get(freq)
    for item in value.split(","):
        match = _BYDAY.match(item)
        if not match:
            raise RuleError("BYDAY takes weekdays (MO ... SU), each optionally after an ordinal such as 1MO or -1FR.")
        ordinal = int(match.group(1)) if match.group(1) else None
        if ordinal is not None:
            if limit is None:
                raise RuleError("An ordinal in BYDAY (like 1MO) needs FREQ=MONTHLY or FREQ=YEARLY.")
            if not 1 <= abs(ordinal) <= limit:
                raise RuleError(f"A BYDAY ordinal with FREQ={freq} must be 1 to {limit} or -{limit} to -1.")
        days.append((ordinal, _WEEKDAYS.index(match.group(2))))
    return tuple(days)


def with_count(rule: Rule, count: int) -> str:
    """The rule's text with COUNT set to `count`, every other part as it was."""
    return ";".join(f"COUNT={count}" if part.startswith("COUNT=") else part for part in rule.text.split(";"))


@cache
def zone_names() -> frozenset[str]:
    """Every zone name of the tz database as the tzdata package ships it (no posix/, right/ or localtime)."""
    text = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def check_zone(name: str) -> str:
    """`name` if the tz database has a zone of exactly that spelling; RuleError otherwise."""
    if len(name) > MAX_ZONE_LENGTH or name not in zone_names():
        raise RuleError("Not a time zone name of the IANA tz database, like Europe/Berlin (names are case-sensitive).")
    return name


@cache
def zone(name: str) -> ZoneInfo:
    """The zone from the tzdata package, whatever the host has in /usr/share/zoneinfo."""
    check_zone(name)
    path = resources.files("tzdata.zoneinfo").joinpath(*name.split("/"))
    with path.open("rb") as file:
        return ZoneInfo.from_file(file, key=name)


class _SearchExhausted(Exception):
    """The bounded walk ran out of steps or candidates."""


class _BoundedRule(rrule.rrule):
    """dateutil's rrule, stopped after `budget` rebuilds of its period tables or `candidates` dates.

    dateutil reads `_byeaster` once per rebuild (each YEARLY or MONTHLY period, each month a WEEKLY or
    DAILY rule walks into) and nowhere else in its loop, so counting those reads bounds the walk
    through periods; counting the dates it yields bounds what the search does with them.
    """

    def __init__(self, *args: Any, budget: int, candidates: int = _CANDIDATE_BUDGET, **kwargs: Any):
        self._steps_left = budget + 2  # __init__ and _iter read it once each
        self._candidates_left = candidates
        super().__init__(*args, **kwargs)

    @property
    def _byeaster(self) -> Any:
        self._steps_left -= 1
        if self._steps_left < 0:
            raise _SearchExhausted
        return self._easter

    @_byeaster.setter
    def _byeaster(self, value: Any) -> None:
        self._easter = value

    def _iter(self) -> Iterator[datetime]:
        for candidate in super()._iter():
            self._candidates_left -= 1
            if self._candidates_left < 0:
                raise _SearchExhausted
            yield candidate


def _period_start(freq: int, moment: datetime, wkst: int) -> datetime:
    day = moment.date()
    if freq == rrule.YEARLY:
        day = day.replace(month=1, day=1)
    elif freq == rrule.MONTHLY:
        day = day.replace(day=1)
    elif freq == rrule.WEEKLY:
        day -= timedelta(days=(day.weekday() - wkst) % 7)
    return datetime.combine(day, datetime.min.time())


def _periods_between(freq: int, first: datetime, later: datetime) -> int:
    if freq == rrule.YEARLY:
        return later.year - first.year
    if freq == rrule.MONTHLY:
        return (later.year - first.year) * 12 + later.month - first.month
    days = (later - first).days
    return days // 7 if freq == rrule.WEEKLY else days


def _advance(freq: int, start: datetime, periods: int) -> datetime:
    if freq == rrule.YEARLY:
        return start.replace(year=start.year + periods)
    if freq == rrule.MONTHLY:
        months = start.year * 12 + start.month - 1 + periods
        return start.replace(year=months // 12, month=months % 12 + 1)
    return start + timedelta(days=periods * (7 if freq == rrule.WEEKLY else 1))


def _expansion(
    rule: Rule, dtstart: datetime, search_from: datetime, bysetpos: tuple[int, ...] = ()
) -> _BoundedRule | None:
    """An rrule giving the rule's candidates (those `bysetpos` picks, if given) from the start of the
    period holding `search_from` on (both naive, local); None if its BYDAY can match no day."""
    # Ordinals past a month's 5th (a rule stored before they were refused) match nothing.
    byday = [rrule.weekday(day, ordinal) for ordinal, day in rule.byday if abs(ordinal or 0) <= _ordinal_limit(rule)]
    if rule.byday and not byday:
        return None
    kwargs: dict[str, Any] = {
        "interval": rule.interval,
        "wkst": rule.wkst,
        "byhour": dtstart.hour,
        "byminute": dtstart.minute,
        "bysecond": dtstart.second,
        "bymonth": rule.bymonth or None,
        "bymonthday": rule.bymonthday or None,
        "byweekday": byday or None,
        "bysetpos": bysetpos or None,
    }
    # What dateutil would take from DTSTART, made explicit, so a later DTSTART yields the same dates.
    if not rule.bymonthday and not rule.byday:
        if rule.freq == rrule.YEARLY:
            kwargs["bymonth"] = rule.bymonth or dtstart.month
            kwargs["bymonthday"] = dtstart.day
        elif rule.freq == rrule.MONTHLY:
            kwargs["bymonthday"] = dtstart.day
        elif rule.freq == rrule.WEEKLY:
            kwargs["byweekday"] = dtstart.weekday()
    first = _period_start(rule.freq, dtstart, rule.wkst)
    periods = _periods_between(rule.freq, first, _period_start(rule.freq, search_from, rule.wkst))
    if periods >= rule.interval:
        start = _advance(rule.freq, first, periods - periods % rule.interval)
    else:  # DTSTART's period as dateutil has it: BYSETPOS picks from its whole month or year, from its week's rest
        start = first if rule.freq in (rrule.MONTHLY, rrule.YEARLY) else dtstart
    return _BoundedRule(rule.freq, dtstart=start, budget=_step_budget(rule, byday), **kwargs)


def _step_budget(rule: Rule, byday: list[rrule.weekday]) -> int:
    """_STEP_BUDGET, divided by what each step costs in ordinal placements on top of its days."""
    ordinals = len({(day.weekday, day.n) for day in byday if day.n})
    if not ordinals:
        return _STEP_BUDGET[rule.freq]
    placements = ordinals * (len(set(rule.bymonth)) if rule.freq == rrule.YEARLY and rule.bymonth else 1)
    return _STEP_BUDGET[rule.freq] // (1 + placements // _PLACEMENTS_PER_STEP[rule.freq])


def _most_candidates(rule: Rule) -> int:
    """At most how many candidates one period holds (a bound, not the count): BYSETPOS positions
    past it never pick anything."""
    most = {rrule.DAILY: 1, rrule.WEEKLY: 7, rrule.MONTHLY: 31, rrule.YEARLY: 366}[rule.freq]
    months = (len(set(rule.bymonth)) or 12) if rule.freq == rrule.YEARLY else 1  # of a period
    if rule.bymonthday:  # a value names at most one day of a month, or of a week
        most = min(most, len(set(rule.bymonthday)) * months)
    if rule.byday:  # an ordinal names one day of its month (of its year without BYMONTH), a weekday one a week
        yearly = rule.freq == rrule.YEARLY and not rule.bymonth
        ordinal, weekday = (1, 53) if yearly else (months, 1 if rule.freq == rrule.WEEKLY else 5 * months)
        most = min(most, sum(ordinal if number else weekday for number, _ in set(rule.byday)))
    if not rule.bymonthday and not rule.byday:  # the day of DTSTART, in each month BYMONTH names
        most = min(most, len(set(rule.bymonth)) if rule.freq == rrule.YEARLY and rule.bymonth else 1)
    return most


@dataclass(frozen=True)
class _Positions:
    """BYSETPOS, each value once and only those a period can reach: `forward` holds the positive
    ones as 0-based indexes, `backward` the negative ones as distances from the end, both sorted, so
    a period of n candidates costs a bisection and the dates picked, not a look at every value."""

    forward: tuple[int, ...]
    backward: tuple[int, ...]

    @classmethod
    def of(cls, bysetpos: tuple[int, ...], most: int) -> _Positions:
        return cls(
            tuple(sorted({position - 1 for position in bysetpos if 0 < position <= most})),
            tuple(sorted({-position for position in bysetpos if 0 < -position <= most})),
        )

    def values(self) -> tuple[int, ...]:
        return tuple(index + 1 for index in self.forward) + tuple(-distance for distance in self.backward)

    def pick(self, candidates: list[datetime]) -> list[datetime]:
        size = len(candidates)
        picked = {candidates[index] for index in self.forward[: bisect_right(self.forward, size - 1)]}
        picked.update(candidates[-distance] for distance in self.backward[: bisect_right(self.backward, size)])
        return sorted(picked)


# A number per period, the same for every date of it: a year, a month, a week beginning on WKST
# (0001-01-01, ordinal 1, is a Monday).
_PERIOD_NUMBER: dict[int, Callable[[datetime, int], int]] = {
    rrule.YEARLY: lambda moment, wkst: moment.year,
    rrule.MONTHLY: lambda moment, wkst: moment.year * 12 + moment.month,
    rrule.WEEKLY: lambda moment, wkst: (moment.toordinal() - 1 - wkst) // 7,
}


def _by_position(candidates: Iterable[datetime], rule: Rule, positions: _Positions) -> Iterator[datetime]:
    """The dates BYSETPOS picks from each period's candidates (RFC 5545: 1 is a period's first, -1 its last)."""
    number = _PERIOD_NUMBER[rule.freq]
    group: list[datetime] = []
    period = None
    for candidate in candidates:
        if (candidate_period := number(candidate, rule.wkst)) != period:
            yield from positions.pick(group)
            period, group = candidate_period, []
        group.append(candidate)
    yield from positions.pick(group)  # dateutil stopped at the year 9999, after this period's last date


def _occurrences(rule: Rule, dtstart: datetime, search_from: datetime) -> Iterable[datetime]:
    """The rule's occurrences from the start of the period holding `search_from` (naive, local)."""
    if not rule.bysetpos:
        return _expansion(rule, dtstart, search_from) or ()
    most = _most_candidates(rule)
    positions = _Positions.of(rule.bysetpos, most)
    reachable = positions.values()
    if not reachable:  # no period holds enough candidates for any position
        return ()
    if most == 1:  # a period holds one candidate at most: what is left of BYSETPOS (1, -1) picks it
        return _expansion(rule, dtstart, search_from) or ()
    if len(reachable) <= _FEW_POSITIONS:  # dateutil's pass over a period per value costs less than grouping
        return _expansion(rule, dtstart, search_from, reachable) or ()
    candidates = _expansion(rule, dtstart, search_from)
    return () if candidates is None else _by_position(candidates, rule, positions)


def _until_instant(rule: Rule, tz: ZoneInfo) -> datetime | None:
    if rule.until is None:
        return None
    if rule.until.endswith("Z"):
        return datetime.strptime(rule.until, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    day = datetime.strptime(rule.until, "%Y%m%d").date()
    if day == date.max:
        return datetime.max.replace(tzinfo=UTC)
    # Inclusive to the end of that day in the task's zone: before the next day's first instant.
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz) - timedelta(microseconds=1)


def _first_occurrence(
    rule: Rule, due_at: datetime, tz: ZoneInfo, after: datetime, *, inclusive: bool
) -> datetime | None:
    """The rule's first occurrence at (or strictly after) `after`, within UNTIL and the search bound."""
    try:
        local = due_at.astimezone(tz)
        dtstart = local.replace(tzinfo=None, microsecond=0)
        until = _until_instant(rule, tz)
        search_from = after.astimezone(tz).replace(tzinfo=None)
        for candidate in _occurrences(rule, dtstart, search_from):
            moment = candidate.replace(microsecond=local.microsecond, tzinfo=tz, fold=0)
            instant = moment.astimezone(UTC)
            if until is not None and instant > until:
                return None
            if instant > after or (inclusive and instant == after):
                return instant
    except (_SearchExhausted, OverflowError, ValueError):  # past the bound, or past year 9999
        return None
    except Exception:  # dateutil failing on a rule the grammar lets through: refused, never a 500
        log.warning("recurrence rule could not be expanded", exc_info=True, extra={"event": "recurrence.failed"})
        raise RuleError("This rule could not be expanded into dates.") from None
    return None


def check_task_rule(rule: Rule, due_at: datetime, zone_name: str) -> None:
    """RuleError unless the rule yields a date at or after `due_at` in the zone (or could not be expanded)."""
    tz = zone(zone_name)
    if _first_occurrence(rule, due_at, tz, due_at, inclusive=True) is None:
        raise RuleError("This rule yields no date at or after the task's due_at (in its timezone).")


@dataclass(frozen=True)
class Occurrence:
    """The next occurrence of a completed task: its due_at and its recurrence text."""

    due_at: datetime
    recurrence: str


def next_occurrence(rule: Rule, due_at: datetime, zone_name: str, now: datetime) -> Occurrence | None:
    """The occurrence after a task due at `due_at` completed at `now` (API.md §5), or None.

    The first date of the rule strictly after the later of `due_at` and `now`; past ones are
    skipped and do not count: COUNT goes down by one whatever was skipped. RuleError for a zone the
    tz database lacks or a rule dateutil could not expand.
    """
    if rule.count == 1:
        return None
    after = max(due_at, now)
    following = _first_occurrence(rule, due_at, zone(zone_name), after, inclusive=False)
    if following is None:
        return None
    text = rule.text if rule.count is None else with_count(rule, rule.count - 1)
    return Occurrence(following, text)
