"""Request and response Structs of the SLA admin API (DESK-5)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

from hub.desk.schemas import PriorityName, TypeName

__all__ = [
    "HolidayCreate",
    "HolidayRead",
    "HolidayUpdate",
    "RuleCreate",
    "RuleRead",
    "RuleUpdate",
    "SettingsRead",
    "SettingsUpdate",
    "WorkingHours",
    "WorkingWeek",
]

RefId = Annotated[int, msgspec.Meta(ge=1, le=2**62)]
# Up to a year of working time.
Minutes = Annotated[int, msgspec.Meta(ge=1, le=366 * 24 * 60)]
Position = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Category = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
ZoneName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, examples=["Europe/Moscow"])]
ClockTime = Annotated[
    str, msgspec.Meta(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$", examples=["09:00", "24:00"])
]
CalendarName = Literal["working_hours", "round_the_clock"]


class WorkingHours(msgspec.Struct, forbid_unknown_fields=True):
    """One interval of a working day, wall-clock time in the account's time zone."""

    start: ClockTime
    end: ClockTime


DayHours = Annotated[list[WorkingHours], msgspec.Meta(max_length=12)]


class WorkingWeek(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Working intervals per weekday; a day left empty does not work."""

    mon: DayHours = msgspec.field(default_factory=list)
    tue: DayHours = msgspec.field(default_factory=list)
    wed: DayHours = msgspec.field(default_factory=list)
    thu: DayHours = msgspec.field(default_factory=list)
    fri: DayHours = msgspec.field(default_factory=list)
    sat: DayHours = msgspec.field(default_factory=list)
    sun: DayHours = msgspec.field(default_factory=list)


class SettingsRead(msgspec.Struct, kw_only=True):
    """The account's SLA calendar and default targets (minutes of working time; null: none).
    ``working_hours`` null: the clock runs round the clock (holidays still stop it)."""

    time_zone: str
    working_hours: WorkingWeek | None
    reaction_minutes: int | None
    resolution_minutes: int | None
    reply_minutes: int | None


class SettingsUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    time_zone: ZoneName | msgspec.UnsetType = msgspec.UNSET
    working_hours: WorkingWeek | msgspec.UnsetType | None = msgspec.UNSET
    reaction_minutes: Minutes | msgspec.UnsetType | None = msgspec.UNSET
    resolution_minutes: Minutes | msgspec.UnsetType | None = msgspec.UNSET
    reply_minutes: Minutes | msgspec.UnsetType | None = msgspec.UNSET


class RuleCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Conditions left null match any ticket; a target left null falls back to the account
    default. Rules are tried by ``position`` (then id); the first match wins. Without a
    position the rule goes last."""

    name: Name
    position: Position | None = None
    ticket_type: TypeName | None = None
    priority: PriorityName | None = None
    client_category: Category | None = None
    company_id: RefId | None = None
    object_id: RefId | None = None
    reaction_minutes: Minutes | None = None
    resolution_minutes: Minutes | None = None
    reply_minutes: Minutes | None = None
    calendar: CalendarName = "working_hours"


class RuleUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    position: Position | msgspec.UnsetType = msgspec.UNSET
    ticket_type: TypeName | msgspec.UnsetType | None = msgspec.UNSET
    priority: PriorityName | msgspec.UnsetType | None = msgspec.UNSET
    client_category: Category | msgspec.UnsetType | None = msgspec.UNSET
    company_id: RefId | msgspec.UnsetType | None = msgspec.UNSET
    object_id: RefId | msgspec.UnsetType | None = msgspec.UNSET
    reaction_minutes: Minutes | msgspec.UnsetType | None = msgspec.UNSET
    resolution_minutes: Minutes | msgspec.UnsetType | None = msgspec.UNSET
    reply_minutes: Minutes | msgspec.UnsetType | None = msgspec.UNSET
    calendar: CalendarName | msgspec.UnsetType = msgspec.UNSET


class RuleRead(msgspec.Struct, kw_only=True):
    id: int
    name: str
    position: int
    ticket_type: str | None
    priority: str | None
    client_category: str | None
    company_id: int | None
    object_id: int | None
    reaction_minutes: int | None
    resolution_minutes: int | None
    reply_minutes: int | None
    calendar: str
    created_at: datetime
    updated_at: datetime


class HolidayCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A non-working date in the account's time zone."""

    day: date
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""


class HolidayUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    day: date | msgspec.UnsetType = msgspec.UNSET
    name: Annotated[str, msgspec.Meta(max_length=200)] | msgspec.UnsetType = msgspec.UNSET


class HolidayRead(msgspec.Struct, kw_only=True):
    id: int
    day: date
    name: str
