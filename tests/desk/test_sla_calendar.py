"""DESK-5 working-time arithmetic (hub/desk/sla/calendar.py): deadlines across nights, weekends,
holidays, time zones and daylight-saving changes. Properties over generated calendars, plus the
cases a dispatcher would check by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hub.desk.sla.calendar import (
    DAY_NAMES,
    Calendar,
    CalendarExhausted,
    InvalidSchedule,
    format_week,
    parse_week,
    zone_of,
)

ZONES = (
    "UTC",
    "Europe/Moscow",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Sao_Paulo",  # switched at midnight until 2019: days that start at 01:00
    "Australia/Sydney",  # southern hemisphere
    "Asia/Kolkata",  # +05:30
    "Pacific/Chatham",  # +12:45 with DST
    "Australia/Lord_Howe",  # a half-hour DST shift
)
OFFICE = {day: [["09:00", "18:00"]] for day in DAY_NAMES[:5]}


@st.composite
def weeks(draw: st.DrawFn) -> dict[str, list[list[str]]]:
    """Up to three intervals a day on 15-minute marks (00:00 .. 24:00), at least one somewhere;
    many of the marks between 00:00 and 04:00, where clocks change."""
    week: dict[str, list[list[str]]] = {}
    quarters = st.integers(0, 96) | st.integers(0, 16)
    for day in DAY_NAMES:
        marks = sorted(draw(st.sets(quarters, max_size=6)))
        pairs = list(zip(marks[0::2], marks[1::2], strict=False))
        week[day] = [[_hhmm(a), _hhmm(b)] for a, b in pairs]
    assume(any(week.values()))
    return week


def _hhmm(quarter: int) -> str:
    return f"{quarter // 4:02d}:{quarter % 4 * 15:02d}"


@st.composite
def moments(draw: st.DrawFn) -> datetime:
    """Instants from 2000 to 2035, half of them in the months clocks change (both hemispheres)."""
    near_change = draw(st.booleans())
    year = draw(st.integers(2000, 2035))
    month = draw(st.sampled_from((3, 4, 10, 11))) if near_change else draw(st.integers(1, 12))
    day = draw(st.integers(1, 28))
    seconds = draw(st.integers(0, 24 * 3600 - 1))
    micro = draw(st.sampled_from((0, 0, 1, 999_999)))
    return datetime(year, month, day, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=micro)


@cache
def _clock_changes(zone_name: str, year: int) -> tuple[datetime, ...]:
    """The instants (to the hour) ``zone_name`` changed its offset in ``year``."""
    zone = ZoneInfo(zone_name)
    hour = datetime(year, 1, 1, tzinfo=UTC)
    changes = []
    while hour.year == year:
        if (hour + timedelta(hours=1)).astimezone(zone).utcoffset() != hour.astimezone(zone).utcoffset():
            changes.append(hour)
        hour += timedelta(hours=1)
    return tuple(changes)


@st.composite
def calendars(draw: st.DrawFn, around: datetime) -> Calendar:
    zone = ZoneInfo(draw(st.sampled_from(ZONES)))
    week = parse_week(draw(weeks()))
    offsets = draw(st.sets(st.integers(-3, 40), max_size=12))
    first = around.astimezone(zone).date()
    return Calendar(zone=zone, week=week, holidays=frozenset(first + timedelta(days=o) for o in offsets))


@st.composite
def cases(draw: st.DrawFn) -> tuple[Calendar, datetime]:
    """A calendar and a start; most starts within two days before the zone changes its clocks."""
    start = draw(moments())
    calendar = draw(calendars(start))
    changes = _clock_changes(str(calendar.zone), start.year)
    if changes and draw(st.integers(0, 3)):
        before = draw(st.integers(0, 2 * 24 * 3600))
        start = draw(st.sampled_from(changes)) - timedelta(seconds=before)
    return calendar, start


durations = st.integers(0, 30 * 24 * 60).map(lambda m: timedelta(minutes=m)) | st.integers(0, 10**9).map(
    lambda us: timedelta(microseconds=us)
)


PROPERTY = settings(max_examples=100, deadline=None)


def _reachable(calendar: Calendar, *targets: timedelta) -> None:
    """Targets a sparse schedule can meet within the horizon (100 weeks of its working time)."""
    weekly = sum(end - start for day in calendar.week for start, end in day)
    assume(sum(targets, timedelta(0)) <= timedelta(minutes=weekly) * 100)


@PROPERTY
@given(cases(), durations)
def test_desk5_the_working_time_until_a_deadline_is_the_target(
    case: tuple[Calendar, datetime], target: timedelta
) -> None:
    """DESK-5: counting the working time from start to the computed deadline gives the target back."""
    calendar, start = case
    _reachable(calendar, target)
    assert calendar.between(start, calendar.add(start, target)) == target


@PROPERTY
@given(cases(), durations, durations)
def test_desk5_deadlines_add_up(case: tuple[Calendar, datetime], first: timedelta, second: timedelta) -> None:
    """DESK-5: a deadline computed in two steps equals the one computed at once, and a longer
    target never gives an earlier deadline."""
    calendar, start = case
    _reachable(calendar, first, second)
    at_once = calendar.add(start, first + second)
    assert calendar.add(calendar.add(start, first), second) == at_once
    assert calendar.add(start, first) <= at_once


@PROPERTY
@given(cases(), durations)
def test_desk5_working_time_never_runs_faster_than_the_clock(
    case: tuple[Calendar, datetime], target: timedelta
) -> None:
    """DESK-5: a deadline is at least the target away; round the clock it is exactly that."""
    calendar, start = case
    _reachable(calendar, target)
    assert calendar.add(start, target) - start >= target
    assert Calendar(zone=calendar.zone).add(start, target) == start + target


@PROPERTY
@given(cases(), st.integers(1, 30 * 24 * 60).map(lambda m: timedelta(minutes=m)))
def test_desk5_a_deadline_falls_in_working_hours_of_a_working_day(
    case: tuple[Calendar, datetime], target: timedelta
) -> None:
    """DESK-5: the last moment before a deadline is inside a working interval of a weekday that
    works and is not a holiday, read on the wall clock (days when clocks change are left to the
    other properties: their wall clock repeats or skips an hour)."""
    calendar, start = case
    _reachable(calendar, target)
    due = calendar.add(start, target)
    local = (due - timedelta(microseconds=1)).astimezone(calendar.zone)
    midnight = datetime.combine(local.date(), time(), tzinfo=calendar.zone)
    next_midnight = datetime.combine(local.date() + timedelta(days=1), time(), tzinfo=calendar.zone)
    assume(midnight.utcoffset() == next_midnight.utcoffset() == local.utcoffset())
    assert local.date() not in calendar.holidays
    minute = local.hour * 60 + local.minute
    assert any(start <= minute < end for start, end in calendar.week[local.weekday()])


@PROPERTY
@given(cases(), moments(), moments())
def test_desk5_working_time_between_splits_at_any_point(
    case: tuple[Calendar, datetime], a: datetime, b: datetime
) -> None:
    """DESK-5: the working time over [x, z] is that over [x, y] plus [y, z], never more than the
    time that passed (no hour counted twice when clocks change), and none of it on a holiday."""
    calendar, start = case
    x, y, z = sorted((start, start + (a - b) % timedelta(days=20), start + (b - a) % timedelta(days=40)))
    assert calendar.between(x, z) == calendar.between(x, y) + calendar.between(y, z)
    assert calendar.between(x, z) <= z - x
    for holiday in calendar.holidays:
        day_start, day_end = calendar.instant(holiday, 0), calendar.instant(holiday + timedelta(days=1), 0)
        assert calendar.between(day_start, day_end) == timedelta(0)


# --- the cases a dispatcher checks by hand ---------------------------------------------------


def _at(zone: str, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=ZoneInfo(zone))  # type: ignore[misc]


def test_desk5_friday_evening_runs_over_the_weekend_and_a_monday_holiday() -> None:
    """DESK-5: Mon-Fri 09-18 Moscow: two working hours from Friday 17:00 end Monday 10:00; with
    Monday a holiday, Tuesday 10:00. A night in the week: 17:00 + 2 h is 10:00 the next day."""
    office = Calendar(zone=ZoneInfo("Europe/Moscow"), week=parse_week(OFFICE))
    friday = _at("Europe/Moscow", 2026, 12, 4, 17, 0)
    assert office.add(friday, timedelta(hours=2)) == _at("Europe/Moscow", 2026, 12, 7, 10, 0)
    holiday = Calendar(zone=office.zone, week=office.week, holidays=frozenset({date(2026, 12, 7)}))
    assert holiday.add(friday, timedelta(hours=2)) == _at("Europe/Moscow", 2026, 12, 8, 10, 0)
    wednesday = _at("Europe/Moscow", 2026, 12, 2, 17, 0)
    assert office.add(wednesday, timedelta(hours=2)) == _at("Europe/Moscow", 2026, 12, 3, 10, 0)
    # Before opening: the clock starts at 09:00.
    assert office.add(_at("Europe/Moscow", 2026, 12, 2, 3, 0), timedelta(minutes=30)) == _at(
        "Europe/Moscow", 2026, 12, 2, 9, 30
    )


def test_desk5_the_same_hours_in_another_time_zone_are_other_instants() -> None:
    """DESK-5: 09:00 in Kolkata (+05:30) is 03:30 UTC; the account's zone decides."""
    kolkata = Calendar(zone=ZoneInfo("Asia/Kolkata"), week=parse_week(OFFICE))
    utc = Calendar(zone=ZoneInfo("UTC"), week=parse_week(OFFICE))
    sunday_night = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
    assert kolkata.add(sunday_night, timedelta(minutes=1)) == datetime(2026, 12, 7, 3, 31, tzinfo=UTC)
    assert utc.add(sunday_night, timedelta(minutes=1)) == datetime(2026, 12, 7, 9, 1, tzinfo=UTC)


def test_desk5_daylight_saving_changes_count_real_time() -> None:
    """DESK-5: round the clock, 24 working hours from Saturday noon in New York end Sunday 13:00
    when clocks go forward that night; a night shift 22:00-06:00 in Berlin lasts 9 hours when
    clocks go back and 7 when they go forward; an office day keeps its 09:00 start."""
    new_york = Calendar(zone=ZoneInfo("America/New_York"))
    saturday = _at("America/New_York", 2026, 3, 7, 12, 0)
    assert new_york.add(saturday, timedelta(hours=24)) == _at("America/New_York", 2026, 3, 8, 13, 0)
    nights = Calendar(
        zone=ZoneInfo("Europe/Berlin"),
        week=parse_week({day: [["00:00", "06:00"], ["22:00", "24:00"]] for day in DAY_NAMES}),
    )
    back = (_at("Europe/Berlin", 2026, 10, 24, 22, 0), _at("Europe/Berlin", 2026, 10, 25, 6, 0))
    forward = (_at("Europe/Berlin", 2026, 3, 28, 22, 0), _at("Europe/Berlin", 2026, 3, 29, 6, 0))
    assert nights.between(*back) == timedelta(hours=9)
    assert nights.between(*forward) == timedelta(hours=7)
    office = Calendar(zone=ZoneInfo("Europe/Berlin"), week=parse_week(OFFICE))
    friday = _at("Europe/Berlin", 2026, 3, 27, 17, 0)
    assert office.add(friday, timedelta(hours=2)) == _at("Europe/Berlin", 2026, 3, 30, 10, 0)


def test_desk5_hours_inside_the_skipped_hour_start_at_the_jump() -> None:
    """DESK-5: work from 02:30 on the night Berlin skips 02:00-03:00 starts at 03:00 (the jump);
    two such intervals never overlap, so no time is counted twice."""
    calendar = Calendar(
        zone=ZoneInfo("Europe/Berlin"),
        week=parse_week({day: [["01:00", "02:30"], ["02:45", "05:00"]] for day in DAY_NAMES}),
    )
    day = date(2026, 3, 29)
    assert calendar.instant(day, 150) == calendar.instant(day, 165) == _at("Europe/Berlin", 2026, 3, 29, 3, 0)
    assert calendar.between(
        _at("Europe/Berlin", 2026, 3, 29, 0, 0), _at("Europe/Berlin", 2026, 3, 29, 6, 0)
    ) == (timedelta(hours=3))


def test_desk5_a_calendar_of_holidays_only_gives_no_deadline() -> None:
    """DESK-5: no working time for years: CalendarExhausted rather than a loop without end."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    every_day = frozenset(date(2025, 12, 1) + timedelta(days=n) for n in range(5 * 366))
    with pytest.raises(CalendarExhausted):
        Calendar(holidays=every_day).add(start, timedelta(minutes=1))


def test_desk5_schedules_are_checked() -> None:
    """DESK-5: times HH:MM up to 24:00, intervals that end after they start and do not overlap,
    known day names, at least one working interval, a known time zone."""
    assert format_week(parse_week({"sat": [["22:00", "24:00"], ["00:00", "01:30"]]}))["sat"] == [
        ["00:00", "01:30"],
        ["22:00", "24:00"],
    ]
    for bad in (
        {"mon": [["18:00", "09:00"]]},
        {"mon": [["09:00", "13:00"], ["12:00", "18:00"]]},
        {"mon": [["9:00", "18:00"]]},
        {"mon": [["09:00", "24:30"]]},
        {"monday": [["09:00", "18:00"]]},
        {"mon": []},
    ):
        with pytest.raises(InvalidSchedule):
            parse_week(bad)
    with pytest.raises(InvalidSchedule):
        zone_of("Mars/Olympus_Mons")
