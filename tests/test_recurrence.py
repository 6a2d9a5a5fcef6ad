"""todo_api.recurrence on its own: rules parsed as API.md §5 says, and next occurrences whose
expected instants are written out here (worked out by hand from the calendar), not computed."""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from dateutil import rrule
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from todo_api.tasks import recurrence
from todo_api.tasks.recurrence import _CANDIDATE_BUDGET as CANDIDATE_BUDGET
from todo_api.tasks.recurrence import _STEP_BUDGET as STEP_BUDGET
from todo_api.tasks.recurrence import (
    Rule,
    RuleError,
    _BoundedRule,
    _expansion,
    _most_candidates,
    _occurrences,
    _period_start,
    _SearchExhausted,
    check_task_rule,
    check_zone,
    next_occurrence,
    parse_rule,
    zone_names,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def chain(rule: str, zone: str, due_at: str, completed_at: list[str]) -> list[tuple[str, str]]:
    """Complete a task at each of `completed_at` in turn, each time the successor of the last."""
    due, text, found = at(due_at), rule, []
    for now in completed_at:
        following = next_occurrence(parse_rule(text), due, zone, at(now))
        if following is None:
            found.append(("none", ""))
            break
        due, text = following.due_at, following.recurrence
        found.append((due.isoformat(), text))
    return found


# -- parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("FREQ=WEEKLY;BYDAY=MO,WE", "FREQ=WEEKLY;BYDAY=MO,WE"),
        ("rrule:freq=weekly;byday=we,mo", "FREQ=WEEKLY;BYDAY=WE,MO"),
        ("RRULE:BYDAY=-1FR;FREQ=MONTHLY", "BYDAY=-1FR;FREQ=MONTHLY"),
        ("FREQ=YEARLY;BYDAY=+53MO;WKST=SU", "FREQ=YEARLY;BYDAY=+53MO;WKST=SU"),
        ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1"),
        ("FREQ=DAILY;UNTIL=20261231T235959Z", "FREQ=DAILY;UNTIL=20261231T235959Z"),
        ("FREQ=DAILY;INTERVAL=1000;COUNT=1000", "FREQ=DAILY;INTERVAL=1000;COUNT=1000"),
        ("FREQ=MONTHLY;BYMONTHDAY=-31,31;BYMONTH=12,1", "FREQ=MONTHLY;BYMONTHDAY=-31,31;BYMONTH=12,1"),
    ],
)
def test_rules_are_upper_cased_with_parts_in_the_order_given(given, stored):
    assert parse_rule(given).text == stored


def test_255_characters_without_the_prefix_is_the_limit():
    rule = "FREQ=MONTHLY;BYMONTHDAY=" + "1," * 115 + "1"
    assert len(rule) == 255
    assert parse_rule("RRULE:" + rule).text == rule
    with pytest.raises(RuleError, match="255"):
        parse_rule(rule + "1")


@pytest.mark.parametrize(
    "rule",
    [
        "",
        "FREQ=HOURLY",
        "FREQ=DAILY;BYHOUR=9",
        "DTSTART=20260101T000000Z;FREQ=DAILY",
        "FREQ=DAILY;X-NAME=1",
        "BYDAY=MO",  # no FREQ
        "FREQ=DAILY;FREQ=DAILY",
        "FREQ=DAILY;INTERVAL=2;INTERVAL=2",
        "FREQ=DAILY;COUNT=2;UNTIL=20270101",
        "FREQ=DAILY;INTERVAL=0",
        "FREQ=DAILY;INTERVAL=1001",
        "FREQ=DAILY;INTERVAL=1,2",
        "FREQ=DAILY;INTERVAL=-1",
        "FREQ=DAILY;COUNT=0",
        "FREQ=DAILY;COUNT=1001",
        "FREQ=DAILY;UNTIL=2026-01-01",
        "FREQ=DAILY;UNTIL=20260230",
        "FREQ=DAILY;UNTIL=20260101T000000",
        "FREQ=WEEKLY;BYDAY=1MO",  # ordinals only with MONTHLY or YEARLY
        "FREQ=DAILY;BYDAY=-1FR",
        "FREQ=MONTHLY;BYDAY=6MO",
        "FREQ=MONTHLY;BYDAY=0MO",
        "FREQ=YEARLY;BYDAY=54MO",
        "FREQ=YEARLY;BYDAY=-54MO",
        "FREQ=YEARLY;BYMONTH=2;BYDAY=53MO",  # with BYMONTH an ordinal counts within the month
        "FREQ=YEARLY;BYMONTH=2;BYDAY=1MO,51MO",
        "FREQ=YEARLY;BYDAY=-6FR;BYMONTH=12",
        "FREQ=WEEKLY;BYDAY=XX",
        "FREQ=WEEKLY;BYDAY=",
        "FREQ=MONTHLY;BYMONTHDAY=0",
        "FREQ=MONTHLY;BYMONTHDAY=32",
        "FREQ=MONTHLY;BYMONTHDAY=-32",
        "FREQ=YEARLY;BYMONTH=13",
        "FREQ=YEARLY;BYMONTH=0",
        "FREQ=YEARLY;BYMONTH=-1",
        "FREQ=MONTHLY;BYSETPOS=1",  # BYSETPOS alone
        "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=367",
        "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=0",
        "FREQ=WEEKLY;WKST=XX",
        "FREQ=DAILY;",
        "FREQ=DAILY;;COUNT=2",
        "FREQ=DAILY; COUNT=2",
        "FREQ=DAILY;COUNT=99999999999999999999",
        "FREQ=DAILY\x00",
        "FREQ=DAILY;WK\u017ft=MO",  # the long s: its upper case is an ASCII "S"
        "FREQ=" + "D" * 10_000,
    ],
)
def test_rules_outside_the_contract_are_refused(rule):
    with pytest.raises(RuleError):
        parse_rule(rule)


@pytest.mark.parametrize("rule", ["FREQ=YEARLY;BYMONTH=2;BYDAY=53MO", "FREQ=YEARLY;BYDAY=1MO,-6MO;BYMONTH=1,7"])
def test_with_bymonth_a_yearly_ordinal_counts_within_the_month_and_says_so(rule):
    with pytest.raises(RuleError, match="With BYMONTH, a BYDAY ordinal counts within the month: 1 to 5 or -5 to -1"):
        parse_rule(rule)


@pytest.mark.parametrize(
    "rule", ["FREQ=YEARLY;BYMONTH=2;BYDAY=5MO", "FREQ=YEARLY;BYDAY=-5SU;BYMONTH=12", "FREQ=YEARLY;BYDAY=53MO,-53SU"]
)
def test_yearly_ordinals_up_to_5_with_bymonth_and_53_without_are_accepted(rule):
    assert parse_rule(rule).text == rule


def test_every_accepted_part_is_a_known_part_and_others_are_named():
    with pytest.raises(RuleError, match="BYHOUR is not a part"):
        parse_rule("FREQ=DAILY;BYHOUR=9")
    with pytest.raises(RuleError, match="COUNT is given twice"):
        parse_rule("FREQ=DAILY;COUNT=1;COUNT=1")


# -- zones -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Europe/Berlin", "UTC", "US/Eastern", "Asia/Kathmandu", "America/Argentina/Buenos_Aires"]
)
def test_zone_names_as_the_tz_database_spells_them_are_accepted(name):
    assert check_zone(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "europe/berlin",
        "EUROPE/BERLIN",
        "utc",
        "posix/Europe/Berlin",
        "right/Europe/Berlin",
        "localtime",
        "/usr/share/zoneinfo/Europe/Berlin",
        "../../etc/passwd",
        "Europe/../Europe/Berlin",
        "Europe/Berlin\x00",
        "",
        "Mars/Olympus_Mons",
        "E" * 10_000,
    ],
)
def test_other_zone_names_are_refused(name):
    with pytest.raises(RuleError):
        check_zone(name)


def test_zone_list_comes_from_tzdata_without_file_paths():
    names = zone_names()
    assert "Europe/Berlin" in names and "US/Eastern" in names
    assert not any(name.startswith(("posix/", "right/")) or name == "localtime" for name in names)


# -- a rule must yield a date at or after due_at ---------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "due_at", "zone"),
    [
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "2026-01-01T09:00:00+00:00", "UTC"),
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=31", "2026-01-01T09:00:00+00:00", "UTC"),
        ("FREQ=MONTHLY;BYMONTH=4;BYMONTHDAY=31", "2026-01-01T09:00:00+00:00", "UTC"),
        ("FREQ=DAILY;UNTIL=20251231", "2026-01-01T09:00:00+00:00", "UTC"),
        ("FREQ=DAILY;UNTIL=20260101T085959Z", "2026-01-01T09:00:00+00:00", "UTC"),
        ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=6", "2026-01-01T09:00:00+00:00", "UTC"),
    ],
)
def test_a_rule_with_no_date_at_or_after_due_at_is_refused(rule, due_at, zone):
    with pytest.raises(RuleError, match="no date"):
        check_task_rule(parse_rule(rule), at(due_at), zone)


@pytest.mark.parametrize(
    ("rule", "due_at", "zone"),
    [
        ("FREQ=DAILY;COUNT=1", "2026-01-01T09:00:00+00:00", "UTC"),
        ("FREQ=WEEKLY;BYDAY=MO", "2026-01-06T09:00:00+00:00", "UTC"),  # due on a Tuesday: next Monday
        ("FREQ=DAILY;UNTIL=20260101T090000Z", "2026-01-01T09:00:00+00:00", "UTC"),  # UNTIL is inclusive
        ("FREQ=DAILY;UNTIL=20260101", "2026-01-01T22:30:00+00:00", "America/New_York"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO", "2026-01-01T09:00:00+00:00", "UTC"),  # 2044
    ],
)
def test_a_rule_with_a_date_at_or_after_due_at_is_accepted(rule, due_at, zone):
    check_task_rule(parse_rule(rule), at(due_at), zone)


def test_the_walk_through_periods_that_yield_nothing_is_bounded():
    walk = _BoundedRule(rrule.DAILY, dtstart=datetime(2026, 1, 1), bymonth=2, bymonthday=30, budget=48)
    with pytest.raises(_SearchExhausted):
        next(iter(walk))


# -- next occurrences ------------------------------------------------------------------------------


def test_daily_0900_berlin_keeps_its_wall_clock_across_the_spring_change():
    # 2026-03-29 is the last Sunday of March: CET (+01) becomes CEST (+02).
    found = chain(
        "FREQ=DAILY",
        "Europe/Berlin",
        "2026-03-28T09:00:00+01:00",
        ["2026-03-28T10:00:00+00:00", "2026-03-29T10:00:00+00:00"],
    )
    assert [due for due, _ in found] == ["2026-03-29T07:00:00+00:00", "2026-03-30T07:00:00+00:00"]


def test_daily_0900_berlin_keeps_its_wall_clock_across_the_autumn_change():
    # 2026-10-25 is the last Sunday of October: CEST (+02) becomes CET (+01).
    found = chain(
        "FREQ=DAILY",
        "Europe/Berlin",
        "2026-10-24T09:00:00+02:00",
        ["2026-10-24T10:00:00+00:00", "2026-10-25T10:00:00+00:00"],
    )
    assert [due for due, _ in found] == ["2026-10-25T08:00:00+00:00", "2026-10-26T08:00:00+00:00"]


def test_0230_on_the_spring_forward_day_takes_the_offset_before_the_gap_and_keeps_the_moved_time():
    # 02:30 does not exist in Berlin on 2026-03-29; with +01 it is 01:30Z (03:30 CEST), and the
    # successor runs from its own due_at (03:30 local) from then on.
    found = chain(
        "FREQ=DAILY",
        "Europe/Berlin",
        "2026-03-28T02:30:00+01:00",
        ["2026-03-28T02:00:00+00:00", "2026-03-29T02:00:00+00:00"],
    )
    assert [due for due, _ in found] == ["2026-03-29T01:30:00+00:00", "2026-03-30T01:30:00+00:00"]


def test_a_time_in_the_repeated_autumn_hour_is_the_first_of_the_two():
    # Berlin repeats 02:00-03:00 on 2026-10-25: 02:30 is first +02 (00:30Z), then +01 (01:30Z).
    found = chain("FREQ=DAILY", "Europe/Berlin", "2026-10-24T02:30:00+02:00", ["2026-10-24T01:00:00+00:00"])
    assert found[0][0] == "2026-10-25T00:30:00+00:00"
    # New York repeats 01:00-02:00 on 2026-11-01: 01:30 is first -04 (05:30Z), then -05 (06:30Z).
    found = chain(
        "FREQ=DAILY",
        "America/New_York",
        "2026-10-31T01:30:00-04:00",
        ["2026-10-31T06:00:00+00:00", "2026-11-01T07:00:00+00:00"],
    )
    assert [due for due, _ in found] == ["2026-11-01T05:30:00+00:00", "2026-11-02T06:30:00+00:00"]


def test_bymonthday_31_skips_months_without_a_31st():
    found = chain(
        "FREQ=MONTHLY;BYMONTHDAY=31",
        "UTC",
        "2026-01-31T10:00:00+00:00",
        ["2026-01-31T11:00:00+00:00", "2026-03-31T11:00:00+00:00"],
    )
    assert [due for due, _ in found] == ["2026-03-31T10:00:00+00:00", "2026-05-31T10:00:00+00:00"]


def test_bymonthday_minus_1_is_the_last_day_of_every_month():
    found = chain(
        "FREQ=MONTHLY;BYMONTHDAY=-1",
        "UTC",
        "2026-01-31T10:00:00+00:00",
        ["2026-01-31T11:00:00+00:00", "2026-02-28T11:00:00+00:00", "2026-03-31T11:00:00+00:00"],
    )
    assert [due for due, _ in found] == [
        "2026-02-28T10:00:00+00:00",
        "2026-03-31T10:00:00+00:00",
        "2026-04-30T10:00:00+00:00",
    ]
    leap = chain("FREQ=MONTHLY;BYMONTHDAY=-1", "UTC", "2028-01-31T10:00:00+00:00", ["2028-01-31T11:00:00+00:00"])
    assert leap[0][0] == "2028-02-29T10:00:00+00:00"


def test_yearly_on_february_29_comes_back_in_the_next_leap_year():
    found = chain("FREQ=YEARLY", "UTC", "2028-02-29T12:00:00+00:00", ["2028-02-29T13:00:00+00:00"])
    assert found[0][0] == "2032-02-29T12:00:00+00:00"


def test_last_friday_of_each_month():
    found = chain(
        "FREQ=MONTHLY;BYDAY=-1FR",
        "UTC",
        "2026-01-30T09:00:00+00:00",
        ["2026-01-30T10:00:00+00:00", "2026-02-27T10:00:00+00:00"],
    )
    assert [due for due, _ in found] == ["2026-02-27T09:00:00+00:00", "2026-03-27T09:00:00+00:00"]


def test_every_other_week_on_tuesday_and_thursday():
    # Weeks start on Monday: 2026-01-05 (on), 01-12 (off), 01-19 (on).
    found = chain(
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH",
        "UTC",
        "2026-01-06T08:00:00+00:00",
        ["2026-01-06T09:00:00+00:00", "2026-01-08T09:00:00+00:00", "2026-01-20T09:00:00+00:00"],
    )
    assert [due for due, _ in found] == [
        "2026-01-08T08:00:00+00:00",
        "2026-01-20T08:00:00+00:00",
        "2026-01-22T08:00:00+00:00",
    ]
    # Completed in the off week: the next one is in the next on week, not the off week.
    late = chain(
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH", "UTC", "2026-01-06T08:00:00+00:00", ["2026-01-14T12:00:00+00:00"]
    )
    assert late[0][0] == "2026-01-20T08:00:00+00:00"


def test_count_counts_the_occurrences_left_down_to_the_last():
    found = chain(
        "FREQ=DAILY;COUNT=3",
        "UTC",
        "2026-05-01T09:00:00+00:00",
        ["2026-05-01T10:00:00+00:00", "2026-05-02T10:00:00+00:00", "2026-05-03T10:00:00+00:00"],
    )
    assert found == [
        ("2026-05-02T09:00:00+00:00", "FREQ=DAILY;COUNT=2"),
        ("2026-05-03T09:00:00+00:00", "FREQ=DAILY;COUNT=1"),
        ("none", ""),
    ]


def test_a_date_only_until_runs_to_the_end_of_that_day_in_the_tasks_zone():
    # 22:00 in New York (-04) is 02:00Z the next day: May 3rd's occurrence is within UNTIL=20260503.
    found = chain(
        "FREQ=DAILY;UNTIL=20260503",
        "America/New_York",
        "2026-05-02T22:00:00-04:00",
        ["2026-05-03T03:00:00+00:00", "2026-05-04T03:00:00+00:00"],
    )
    assert found == [("2026-05-04T02:00:00+00:00", "FREQ=DAILY;UNTIL=20260503"), ("none", "")]


def test_a_date_time_until_is_an_inclusive_utc_instant():
    inclusive = chain(
        "FREQ=DAILY;UNTIL=20260504T020000Z",
        "America/New_York",
        "2026-05-02T22:00:00-04:00",
        ["2026-05-03T03:00:00+00:00"],
    )
    assert inclusive[0][0] == "2026-05-04T02:00:00+00:00"
    past = chain(
        "FREQ=DAILY;UNTIL=20260504T015959Z",
        "America/New_York",
        "2026-05-02T22:00:00-04:00",
        ["2026-05-03T03:00:00+00:00"],
    )
    assert past == [("none", "")]


def test_an_overdue_task_continues_after_now_without_a_backlog_and_skipped_days_do_not_count():
    # Due 2026-06-01 09:00 Berlin (07:00Z), completed three days later at 12:00Z.
    found = chain("FREQ=DAILY;COUNT=5", "Europe/Berlin", "2026-06-01T09:00:00+02:00", ["2026-06-04T12:00:00+00:00"])
    assert found == [("2026-06-05T07:00:00+00:00", "FREQ=DAILY;COUNT=4")]
    # Completed late but before that day's 09:00: that same day's occurrence is next.
    early = chain("FREQ=DAILY", "Europe/Berlin", "2026-06-01T09:00:00+02:00", ["2026-06-04T06:00:00+00:00"])
    assert early[0][0] == "2026-06-04T07:00:00+00:00"


def test_an_overdue_task_from_decades_ago_is_found_without_walking_the_decades():
    found = chain("FREQ=DAILY", "UTC", "1970-01-01T09:00:00+00:00", ["2026-06-04T12:00:00+00:00"])
    assert found[0][0] == "2026-06-05T09:00:00+00:00"


def test_zones_with_half_and_three_quarter_hour_offsets():
    kolkata = chain("FREQ=DAILY", "Asia/Kolkata", "2026-01-10T09:00:00+05:30", ["2026-01-10T04:00:00+00:00"])
    assert kolkata[0][0] == "2026-01-11T03:30:00+00:00"
    kathmandu = chain("FREQ=WEEKLY", "Asia/Kathmandu", "2026-01-10T09:00:00+05:45", ["2026-01-10T04:00:00+00:00"])
    assert kathmandu[0][0] == "2026-01-17T03:15:00+00:00"


def test_a_zone_keeps_the_wall_clock_a_utc_offset_would_lose():
    # The same instant as the Berlin task above, but in UTC: 08:00Z every day, DST or not.
    found = chain("FREQ=DAILY", "UTC", "2026-03-28T08:00:00+00:00", ["2026-03-28T10:00:00+00:00"])
    assert found[0][0] == "2026-03-29T08:00:00+00:00"


def test_microseconds_of_due_at_are_kept():
    found = chain("FREQ=DAILY", "UTC", "2026-01-01T09:00:00.123456+00:00", ["2026-01-01T10:00:00+00:00"])
    assert found[0][0] == "2026-01-02T09:00:00.123456+00:00"


def test_the_year_9999_ends_the_rule_without_an_error():
    found = chain("FREQ=YEARLY", "UTC", "9999-06-01T09:00:00+00:00", ["9999-06-01T10:00:00+00:00"])
    assert found == [("none", "")]
    assert (
        next_occurrence(
            parse_rule("FREQ=DAILY"),
            at("9999-12-31T23:00:00+00:00"),
            "Pacific/Kiritimati",
            at("9999-12-31T23:30:00+00:00"),
        )
        is None
    )
    assert (
        next_occurrence(
            parse_rule("FREQ=DAILY"), at("9999-12-31T12:00:00+00:00"), "UTC", at("9999-12-31T12:00:00+00:00")
        )
        is None
    )
    assert (
        next_occurrence(
            parse_rule("FREQ=DAILY"), at("9999-12-30T12:00:00+00:00"), "UTC", at("9999-12-30T13:00:00+00:00")
        )
        is not None
    )


# -- rules stored before the grammar refused them --------------------------------------------------


def test_a_stored_rule_with_an_ordinal_past_the_5th_in_its_month_keeps_its_rfc_meaning():
    # Stored when YEARLY took ordinals to 53 even with BYMONTH: 51MO in February matches nothing,
    # so the rule is the first Monday of February. 2027 and 2028 start on a Friday and a Saturday,
    # the years in which dateutil used to fail on it with an IndexError.
    rule = parse_rule("FREQ=YEARLY;BYMONTH=2;BYDAY=1MO,51MO", stored=True)
    assert rule.text == "FREQ=YEARLY;BYMONTH=2;BYDAY=1MO,51MO"
    due = at("2026-02-02T09:00:00+00:00")
    found = []
    for now in ["2026-02-02T10:00:00+00:00", "2027-02-01T10:00:00+00:00", "2028-02-07T10:00:00+00:00"]:
        following = next_occurrence(rule, due, "UTC", at(now))
        assert following is not None and following.recurrence == rule.text
        due = following.due_at
        found.append(due.isoformat())
    assert found == ["2027-02-01T09:00:00+00:00", "2028-02-07T09:00:00+00:00", "2029-02-05T09:00:00+00:00"]
    check_task_rule(rule, at("2027-01-10T09:00:00+00:00"), "UTC")


def test_a_stored_rule_whose_every_ordinal_is_past_the_5th_yields_nothing():
    rule = parse_rule("FREQ=YEARLY;BYMONTH=2;BYDAY=53MO", stored=True)
    with pytest.raises(RuleError, match="no date"):
        check_task_rule(rule, at("2027-01-10T09:00:00+00:00"), "UTC")
    assert next_occurrence(rule, at("2027-01-10T09:00:00+00:00"), "UTC", at("2027-01-10T10:00:00+00:00")) is None


def test_a_library_failure_is_a_rule_error_never_another_exception(monkeypatch):
    """Whatever dateutil raises on a rule the grammar lets through, a check refuses the rule and a
    search for the next occurrence says so with a RuleError: callers turn that into a 400, or a
    completion without a successor, never a 500."""

    def broken(self, year, month):
        raise KeyError("a bug in dateutil")

    monkeypatch.setattr(rrule._iterinfo, "rebuild", broken)
    rule = parse_rule("FREQ=MONTHLY;BYDAY=-1FR")
    with pytest.raises(RuleError, match="could not be expanded"):
        check_task_rule(rule, at("2027-01-10T09:00:00+00:00"), "UTC")
    with pytest.raises(RuleError, match="could not be expanded"):
        next_occurrence(rule, at("2027-01-10T09:00:00+00:00"), "UTC", at("2027-01-10T10:00:00+00:00"))


# -- any rule of the grammar: a result or a RuleError, never another exception ----------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Australia/Lord_Howe"]
weekdays = st.sampled_from(["MO", "TU", "WE", "TH", "FR", "SA", "SU"])
signs = st.sampled_from(["", "+", "-"])


def _values(numbers: st.SearchStrategy[int], *, signed: bool, most: int) -> st.SearchStrategy[str]:
    value = st.builds(lambda sign, n: f"{sign}{n}", signs if signed else st.just(""), numbers)
    return st.lists(value, min_size=1, max_size=most).map(",".join)


@st.composite
def rules(draw: st.DrawFn, *, stored: bool = False, most: int = 12) -> str:
    """A rule of API.md §5's grammar (with `stored`: of the one before ordinals within a month were
    capped at 5), parts in any order and any case, each list of at most `most` values."""
    freq = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]))
    parts = {"FREQ": freq}
    bymonth = draw(st.booleans())
    if bymonth:
        parts["BYMONTH"] = draw(_values(st.integers(1, 12), signed=False, most=most))
    if draw(st.booleans()):
        parts["INTERVAL"] = str(draw(st.integers(1, 1000)))
    ending = draw(st.sampled_from(["", "COUNT", "UNTIL"]))
    if ending == "COUNT":
        parts["COUNT"] = str(draw(st.integers(1, 1000)))
    elif ending == "UNTIL":
        day = draw(st.dates(date(1, 1, 1), date(9999, 12, 31)))
        parts["UNTIL"] = f"{day.year:04}{day.month:02}{day.day:02}" + draw(
            st.sampled_from(["", "T000000Z", "T235959Z"])
        )
    if draw(st.booleans()):
        limit = {"MONTHLY": 5, "YEARLY": 5 if bymonth and not stored else 53}.get(freq)
        ordinals = st.just("") if limit is None else st.just("") | st.builds(str, st.integers(1, limit))
        day = st.builds(lambda sign, n, d: (sign if n else "") + n + d, signs, ordinals, weekdays)
        parts["BYDAY"] = ",".join(draw(st.lists(day, min_size=1, max_size=most)))
    if draw(st.booleans()):
        parts["BYMONTHDAY"] = draw(_values(st.integers(1, 31), signed=True, most=most))
    if len(parts) > 1 and parts.keys() & {"BYDAY", "BYMONTHDAY", "BYMONTH"} and draw(st.booleans()):
        positions = st.integers(1, 8) | st.integers(1, 366)  # small ones often: a period's first few
        parts["BYSETPOS"] = draw(_values(positions, signed=True, most=most))
    if draw(st.booleans()):
        parts["WKST"] = draw(weekdays)
    names = draw(st.permutations(list(parts)))
    text = ";".join(f"{name}={parts[name]}" for name in names)
    text = draw(st.sampled_from([text, text.lower(), "RRULE:" + text]))
    assume(len(text.removeprefix("RRULE:")) <= 255)
    return text


due_ats = st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30), timezones=st.just(UTC)) | st.datetimes(
    datetime(2020, 1, 1), datetime(2040, 1, 1), timezones=st.just(UTC)
)
later = st.timedeltas(timedelta(0), timedelta(days=5000))
examples = settings(max_examples=400, deadline=None)


def _search(rule: Rule, due_at: datetime, zone: str, after: timedelta) -> None:
    with contextlib.suppress(RuleError):
        check_task_rule(rule, due_at, zone)
    try:
        now = due_at + after
    except OverflowError:
        now = due_at
    try:
        following = next_occurrence(rule, due_at, zone, now)
    except RuleError:
        return
    if following is not None:
        assert following.due_at > now and parse_rule(following.recurrence, stored=True)


@examples
@given(text=rules(), due_at=due_ats, zone=st.sampled_from(ZONES), after=later)
def test_any_rule_of_the_grammar_is_parsed_and_searched_or_refused_with_a_rule_error(text, due_at, zone, after):
    rule = parse_rule(text)
    assert parse_rule(rule.text) == rule
    _search(rule, due_at, zone, after)


@examples
@given(text=rules(stored=True), due_at=due_ats, zone=st.sampled_from(ZONES), after=later)
def test_any_rule_stored_under_the_earlier_grammar_is_searched_or_refused_with_a_rule_error(text, due_at, zone, after):
    _search(parse_rule(text, stored=True), due_at, zone, after)


def _first(walk, size: int = 6) -> list[datetime]:
    """The first `size` dates of `walk()`, or as many as it gives before its bound or the calendar's end."""
    found = []
    with contextlib.suppress(_SearchExhausted, OverflowError, ValueError):
        for moment in walk():
            found.append(moment)
            if len(found) == size:
                break
    return found


@examples
@given(text=rules().filter(lambda text: "BYSETPOS" in text.upper()), start=st.datetimes(datetime(1, 1, 1)))
def test_bysetpos_picks_the_dates_dateutils_own_bysetpos_picks(text, start):
    """However BYSETPOS is applied (cut to the positions a period can reach, then by dateutil or per
    period here), the dates are those dateutil's rrule picks from the whole rule, in the same order
    (DTSTART's defaults and first period left to dateutil)."""
    rule = parse_rule(text)
    start = start.replace(microsecond=0)
    ours = _first(lambda: (moment for moment in _occurrences(rule, start, start) if moment >= start))
    theirs = _first(
        lambda: _BoundedRule(
            rule.freq,
            dtstart=start,
            budget=STEP_BUDGET[rule.freq],
            candidates=10**6,
            interval=rule.interval,
            wkst=rule.wkst,
            bymonth=rule.bymonth or None,
            bymonthday=rule.bymonthday or None,
            byweekday=[rrule.weekday(day, ordinal) for ordinal, day in rule.byday] or None,
            bysetpos=rule.bysetpos,
        )
    )
    common = min(len(ours), len(theirs))  # either may stop at its bound first
    assert ours[:common] == theirs[:common]


@examples
@given(text=rules(), start=st.datetimes(datetime(1900, 1, 1), datetime(2100, 1, 1)))
def test_no_period_holds_more_candidates_than_the_bound_bysetpos_is_cut_to(text, start):
    """BYSETPOS positions past _most_candidates are dropped unread: no period may hold more."""
    rule = parse_rule(text)
    start = start.replace(microsecond=0)
    candidates = _first(lambda: _expansion(rule, start, start) or (), size=1500)
    periods = Counter(_period_start(rule.freq, candidate, rule.wkst) for candidate in candidates)
    assert max(periods.values(), default=0) <= _most_candidates(rule)


# -- the work a search does ------------------------------------------------------------------------


def lines_run(call) -> int:
    """The lines of dateutil's rrule and of todo_api.recurrence that `call` executes: the work of a
    search, counted without a clock (the timings are in `make bench-rules`)."""
    watched = {rrule.__file__, recurrence.__file__}
    lines = 0

    def count(frame, event, arg):
        nonlocal lines
        lines += event == "line"
        return count

    sys.settrace(lambda frame, event, arg: count if frame.f_code.co_filename in watched else None)
    try:
        call()
    finally:
        sys.settrace(None)
    return lines


def refusal_work(rule: str) -> int:
    def check() -> None:
        with pytest.raises(RuleError, match="no date"):
            check_task_rule(parse_rule(rule), at("2026-01-01T09:00:00+00:00"), "UTC")

    return lines_run(check)


NEVER = "BYMONTH=2;BYMONTHDAY=30"  # February 30th: the search walks its whole window
DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@pytest.mark.parametrize("freq", ["DAILY", "WEEKLY", "MONTHLY", "YEARLY"])
@pytest.mark.parametrize(
    "positions",
    [
        ",".join(["1"] * 105),  # the 253-character rule
        ",".join(str(n) for n in range(1, 65)),
        ",".join(f"-{n}" for n in range(1, 52)),
    ],
    ids=["1x105", "1..64", "-1..-51"],
)
def test_bysetpos_values_cost_nothing_when_no_date_is_a_candidate(freq, positions):
    rule = f"FREQ={freq};{NEVER};BYSETPOS={positions}"
    assert len(rule) <= 255
    assert refusal_work(rule) < 1.1 * refusal_work(f"FREQ={freq};{NEVER}")


FIRST_28 = ",".join(str(day) for day in range(1, 29))
MONTH_ORDINALS = ",".join(f"{sign}{n}{day}" for n in range(1, 4) for sign in "+-" for day in DAYS)  # 42


@pytest.mark.parametrize(
    "rule",
    [
        f"FREQ=DAILY;BYMONTHDAY={FIRST_28};BYSETPOS=2",  # a day holds one candidate
        "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA;BYSETPOS=7",  # six weekdays: six candidates a week
        f"FREQ=MONTHLY;BYMONTHDAY={FIRST_28};BYSETPOS=29,30,31",  # 28 days of a month
        f"FREQ=YEARLY;BYMONTHDAY={FIRST_28};BYSETPOS=337",  # 28 days of each of 12 months
        "FREQ=MONTHLY;BYMONTHDAY=1,2,3,4;BYSETPOS=5",  # found by a hypothesis.target search
        "FREQ=MONTHLY;BYMONTHDAY=-5,-28,-4,-2;BYSETPOS=80,81,74,72,63,79,-100,366,214,332,-183,-297",  # so was this
        "FREQ=YEARLY;BYMONTH=2;BYDAY=1MO,-1MO;BYSETPOS=3,-3",  # two ordinals in one month
    ],
)
def test_bysetpos_past_what_any_period_can_hold_is_refused_without_a_walk(rule):
    assert refusal_work(rule) < 1_000  # lines: no month or year walked (the plain walk: ~144,000)


def test_a_long_ordinal_list_walks_fewer_months_for_the_same_work():
    rule = f"FREQ=MONTHLY;{NEVER};BYDAY={MONTH_ORDINALS}"
    assert len(rule) <= 255
    assert refusal_work(rule) < 1.2 * refusal_work(f"FREQ=MONTHLY;{NEVER};BYDAY=1MO")


HEAVY = [  # the shapes that still walk a whole window after the cuts above, each yielding no date from 2026 on
    f"FREQ=MONTHLY;{NEVER};BYDAY={MONTH_ORDINALS}",
    "FREQ=YEARLY;BYMONTHDAY=31;BYMONTH=2,4,6,9,11;BYDAY=" + ",".join(f"{n}{day}" for n in (1, 2, 3) for day in DAYS),
    "FREQ=MONTHLY;BYDAY=MO;BYMONTHDAY=1,2,3,4,5,6,7;BYSETPOS=2",  # one candidate a month, five allowed for
    "FREQ=WEEKLY;BYDAY=MO,TU;BYMONTHDAY=1,15;BYSETPOS=2",  # no week holds a 1st and a 15th
    "FREQ=MONTHLY;BYDAY=5MO;BYMONTHDAY=1",  # no list at all: every filter of every day
]


@pytest.mark.parametrize("rule", HEAVY)
def test_no_rule_does_much_more_work_than_a_plain_one_walking_its_whole_window(rule):
    assert refusal_work(rule) < 2.5 * refusal_work(f"FREQ=MONTHLY;{NEVER}")  # 480 months, the longest walk


def test_a_search_examines_at_most_its_budget_of_candidate_dates():
    walk = _BoundedRule(rrule.YEARLY, dtstart=datetime(2026, 1, 1), bymonthday=list(range(1, 29)), budget=40)
    examined = 0
    with pytest.raises(_SearchExhausted):
        for _ in walk:
            examined += 1
    assert examined == CANDIDATE_BUDGET == 2000
