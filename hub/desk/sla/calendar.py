"""Working-time arithmetic for SLA deadlines (DESK-5): pure, no database.

A calendar is a weekly schedule of wall-clock intervals in one time zone, minus holidays. Working
time is real elapsed time inside those intervals: a working day that spans a daylight-saving
change is an hour shorter or longer, as the people working it experience it.

Wall times are turned into instants with a mapping that never goes backwards (so intervals never
overlap and deadlines only move forward): a wall time that does not exist (clocks jumped forward)
becomes the instant of the jump; a wall time that happens twice (clocks went back) is its first
occurrence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DAY_NAMES",
    "FULL_DAY",
    "Calendar",
    "CalendarExhausted",
    "InvalidSchedule",
    "format_week",
    "parse_week",
    "zone_of",
]

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
FULL_DAY = ((0, MINUTES_PER_DAY),)
# How far ahead a deadline is looked for before giving up (a calendar made of holidays only).
HORIZON_DAYS = 3 * 366 + 7

Interval = tuple[int, int]  # minutes after local midnight, 0 <= start < end <= 1440
Week = tuple[tuple[Interval, ...], ...]  # Monday .. Sunday

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


class InvalidSchedule(ValueError):
    """A weekly schedule or time zone that cannot be used; the message says what is wrong."""


class CalendarExhausted(LookupError):
    """No working time within the horizon (every day a holiday, or a schedule with no hours)."""


def zone_of(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (e.g. ``Europe/Moscow``) or InvalidSchedule."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidSchedule(f"Unknown time zone {name!r}") from exc


def _minutes(text: str) -> int:
    match = _HHMM.match(text)
    if match is None:
        raise InvalidSchedule(f"{text!r} is not a time HH:MM between 00:00 and 24:00")
    return MINUTES_PER_DAY if text == "24:00" else int(match[1]) * 60 + int(match[2])


def _day(name: str, intervals: Sequence[Sequence[str]]) -> tuple[Interval, ...]:
    parsed = sorted((_minutes(start), _minutes(end)) for start, end in intervals)
    for start, end in parsed:
        if start >= end:
            raise InvalidSchedule(f"{name}: an interval must end after it starts")
    for (_, end), (start, _) in pairwise(parsed):
        if start < end:
            raise InvalidSchedule(f"{name}: intervals overlap")
    return tuple(parsed)


def parse_week(week: Mapping[str, Sequence[Sequence[str]]]) -> Week:
    """``{"mon": [["09:00", "18:00"]], ...}`` (days left out do not work) into a Week."""
    unknown = set(week) - set(DAY_NAMES)
    if unknown:
        raise InvalidSchedule(f"Unknown day names: {', '.join(sorted(unknown))} (use {', '.join(DAY_NAMES)})")
    parsed = tuple(_day(name, week.get(name, ())) for name in DAY_NAMES)
    if not any(parsed):
        raise InvalidSchedule("The week has no working hours")
    return parsed


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def format_week(week: Week) -> dict[str, list[list[str]]]:
    """The inverse of :func:`parse_week` (every day listed, non-working ones empty)."""
    return {name: [[_hhmm(s), _hhmm(e)] for s, e in day] for name, day in zip(DAY_NAMES, week, strict=True)}


def _round_the_clock() -> Week:
    return (FULL_DAY,) * 7


@dataclass(frozen=True)
class Calendar:
    """Working hours in ``zone`` (Monday..Sunday intervals) minus ``holidays`` (local dates)."""

    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    week: Week = field(default_factory=_round_the_clock)
    holidays: frozenset[date] = frozenset()

    @classmethod
    def round_the_clock(cls) -> Calendar:
        """Every instant counts: plain elapsed time."""
        return cls()

    def instant(self, day: date, minute: int) -> datetime:
        """The UTC instant of wall time ``minute`` after midnight of ``day`` (see module doc)."""
        wall = datetime.combine(day, time()) + timedelta(minutes=minute)
        first = wall.replace(tzinfo=self.zone)
        utc = first.astimezone(UTC)
        if utc.astimezone(self.zone).replace(tzinfo=None) == wall:
            return utc
        return self._jump_after(wall, utc)

    def _jump_after(self, wall: datetime, after: datetime) -> datetime:
        """The instant clocks jumped over ``wall``: between its two readings, found by bisection
        on whole seconds (every zone changes offset on a whole second)."""
        before_offset = wall.replace(tzinfo=self.zone).utcoffset()
        low = int(wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC).timestamp())
        high = int(after.timestamp())
        while high - low > 1:
            middle = (low + high) // 2
            if datetime.fromtimestamp(middle, UTC).astimezone(self.zone).utcoffset() == before_offset:
                low = middle
            else:
                high = middle
        return datetime.fromtimestamp(high, UTC)

    def intervals(self, since: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working intervals in UTC, in time order, cut to start no earlier than ``since``."""
        day = since.astimezone(self.zone).date() - timedelta(days=1)
        for _ in range(HORIZON_DAYS):
            if day not in self.holidays:
                for start, end in self.week[day.weekday()]:
                    begins, ends = self.instant(day, start), self.instant(day, end)
                    if ends > since and ends > begins:
                        yield max(begins, since), ends
            day += timedelta(days=1)
        raise CalendarExhausted(f"No working time within {HORIZON_DAYS} days of {since.isoformat()}")

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant when ``duration`` of working time has passed since ``start``."""
        if duration <= timedelta(0):
            return start
        remaining = duration
        for begins, ends in self.intervals(start):
            if ends - begins >= remaining:
                return begins + remaining
            remaining -= ends - begins
        raise AssertionError("unreachable: intervals() raises at its horizon")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Working time from ``start`` to ``end`` (zero when end is not after start)."""
        total = timedelta(0)
        if end <= start:
            return total
        for begins, ends in self.intervals(start):
            if begins >= end:
                break
            total += min(ends, end) - begins
        return total

    def is_working(self, moment: datetime) -> bool:
        """Whether ``moment`` lies inside working hours (an interval's end excluded)."""
        begins, _ = next(iter(self.intervals(moment)))
        return begins <= moment
