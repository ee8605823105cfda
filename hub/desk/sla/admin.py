"""The SLA admin service (DESK-5): settings, rules and holidays of one account. Takes the
session first and never commits."""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import dialect_insert, utcnow
from hub.desk.sla.calendar import DAY_NAMES, InvalidSchedule, format_week, parse_week, zone_of
from hub.desk.sla.models import DEFAULT_REPLY_MINUTES, SlaHoliday, SlaRule, SlaSettings
from hub.desk.sla.schemas import (
    HolidayRead,
    RuleRead,
    SettingsRead,
    WorkingHours,
    WorkingWeek,
)
from hub.errors import Conflict, NotFound, Unprocessable
from hub.people.models import Company, ServiceObject

__all__ = [
    "create_holiday",
    "create_rule",
    "delete_holiday",
    "delete_rule",
    "get_holiday",
    "get_rule",
    "holiday_read",
    "list_holidays",
    "list_rules",
    "read_settings",
    "rule_read",
    "update_holiday",
    "update_rule",
    "update_settings",
]

TARGETS = ("reaction_minutes", "resolution_minutes", "reply_minutes")


# --- settings --------------------------------------------------------------------------------


def _week_read(week: dict[str, Any] | None) -> WorkingWeek | None:
    if week is None:
        return None
    days = format_week(parse_week(week))
    return WorkingWeek(**{day: [WorkingHours(start, end) for start, end in days[day]] for day in DAY_NAMES})


def _week_stored(week: WorkingWeek) -> dict[str, list[list[str]]]:
    stored = {day: [[h.start, h.end] for h in getattr(week, day)] for day in DAY_NAMES}
    try:
        return format_week(parse_week(stored))
    except InvalidSchedule as exc:
        raise Unprocessable(str(exc), code="invalid_working_hours") from None


async def read_settings(session: AsyncSession, account_id: int) -> SettingsRead:
    settings = await session.get(SlaSettings, account_id)
    if settings is None:
        return SettingsRead(
            time_zone="UTC",
            working_hours=None,
            reaction_minutes=None,
            resolution_minutes=None,
            reply_minutes=DEFAULT_REPLY_MINUTES,
        )
    return SettingsRead(
        time_zone=settings.time_zone,
        working_hours=_week_read(settings.week),
        reaction_minutes=settings.reaction_minutes,
        resolution_minutes=settings.resolution_minutes,
        reply_minutes=settings.reply_minutes,
    )


async def update_settings(session: AsyncSession, account_id: int, changes: dict[str, Any]) -> SettingsRead:
    """Change the calendar or default targets (only the fields given). New deadlines use them;
    deadlines already computed stay."""
    if "time_zone" in changes:
        try:
            zone_of(changes["time_zone"])
        except InvalidSchedule as exc:
            raise Unprocessable(str(exc), code="unknown_time_zone") from None
    if "working_hours" in changes:
        week = changes.pop("working_hours")
        changes["week"] = None if week is None else _week_stored(week)
    # The row appears on the first change; two first changes at once do not collide.
    await session.execute(
        dialect_insert(session, SlaSettings.__table__)
        .values(
            account_id=account_id, time_zone="UTC", reply_minutes=DEFAULT_REPLY_MINUTES, updated_at=utcnow()
        )
        .on_conflict_do_nothing(index_elements=["account_id"])
    )
    settings = await session.scalar(
        select(SlaSettings)
        .where(SlaSettings.account_id == account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert settings is not None
    for field, value in changes.items():
        setattr(settings, field, value)
    settings.updated_at = utcnow()
    await session.flush()
    return await read_settings(session, account_id)


# --- rules -----------------------------------------------------------------------------------


def rule_read(rule: SlaRule) -> RuleRead:
    return RuleRead(
        id=rule.id,
        name=rule.name,
        position=rule.position,
        ticket_type=rule.ticket_type,
        priority=rule.priority,
        client_category=rule.client_category,
        company_id=rule.company_id,
        object_id=rule.object_id,
        reaction_minutes=rule.reaction_minutes,
        resolution_minutes=rule.resolution_minutes,
        reply_minutes=rule.reply_minutes,
        calendar="working_hours" if rule.working_hours else "round_the_clock",
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


async def list_rules(session: AsyncSession, account_id: int) -> list[SlaRule]:
    """In the order they are tried."""
    query = select(SlaRule).where(SlaRule.account_id == account_id).order_by(SlaRule.position, SlaRule.id)
    return list(await session.scalars(query))


async def get_rule(session: AsyncSession, account_id: int, rule_id: int) -> SlaRule:
    rule = await session.get(SlaRule, rule_id)
    if rule is None or rule.account_id != account_id:
        raise NotFound("No such SLA rule", code="sla_rule_not_found")
    return rule


async def _check_references(session: AsyncSession, account_id: int, fields: dict[str, Any]) -> None:
    """A rule may name only the account's own company and object (the same answer for another
    account's as for none, DESK-1)."""
    models: tuple[tuple[str, type[Company | ServiceObject], str], ...] = (
        ("company_id", Company, "company_not_found"),
        ("object_id", ServiceObject, "object_not_found"),
    )
    for name, model, code in models:
        ref_id = fields.get(name)
        if ref_id is None:
            continue
        owner = await session.scalar(select(model.account_id).where(model.id == ref_id))
        if owner != account_id:
            raise Unprocessable(f"No such {name.removesuffix('_id')}", code=code)


def _rule_fields(data: dict[str, Any]) -> dict[str, Any]:
    fields = dict(data)
    if "calendar" in fields:
        fields["working_hours"] = fields.pop("calendar") == "working_hours"
    return fields


def _check_has_target(rule: SlaRule) -> None:
    if all(getattr(rule, target) is None for target in TARGETS):
        raise Unprocessable(
            "A rule needs at least one target (reaction, resolution or reply minutes)",
            code="rule_without_target",
        )


async def create_rule(session: AsyncSession, account_id: int, data: msgspec.Struct) -> SlaRule:
    fields = _rule_fields(msgspec.structs.asdict(data))
    await _check_references(session, account_id, fields)
    if fields["position"] is None:
        last = await session.scalar(
            select(func.max(SlaRule.position)).where(SlaRule.account_id == account_id)
        )
        fields["position"] = (last or 0) + 10
    now = utcnow()
    rule = SlaRule(account_id=account_id, created_at=now, updated_at=now, **fields)
    _check_has_target(rule)
    session.add(rule)
    await session.flush()
    return rule


async def update_rule(
    session: AsyncSession, account_id: int, rule_id: int, changes: dict[str, Any]
) -> SlaRule:
    """Change a rule. Tickets keep the deadlines they have until their type or priority changes."""
    rule = await get_rule(session, account_id, rule_id)
    fields = _rule_fields(changes)
    await _check_references(session, account_id, fields)
    for name, value in fields.items():
        setattr(rule, name, value)
    _check_has_target(rule)
    rule.updated_at = utcnow()
    await session.flush()
    return rule


async def delete_rule(session: AsyncSession, account_id: int, rule_id: int) -> None:
    await session.delete(await get_rule(session, account_id, rule_id))
    await session.flush()


# --- holidays --------------------------------------------------------------------------------


def holiday_read(holiday: SlaHoliday) -> HolidayRead:
    return HolidayRead(id=holiday.id, day=holiday.day, name=holiday.name)


async def list_holidays(session: AsyncSession, account_id: int, year: int | None = None) -> list[SlaHoliday]:
    query = select(SlaHoliday).where(SlaHoliday.account_id == account_id)
    if year is not None:
        query = query.where(SlaHoliday.day >= date(year, 1, 1), SlaHoliday.day <= date(year, 12, 31))
    return list(await session.scalars(query.order_by(SlaHoliday.day)))


async def get_holiday(session: AsyncSession, account_id: int, holiday_id: int) -> SlaHoliday:
    holiday = await session.get(SlaHoliday, holiday_id)
    if holiday is None or holiday.account_id != account_id:
        raise NotFound("No such holiday", code="holiday_not_found")
    return holiday


async def _check_day_free(session: AsyncSession, account_id: int, day: date, but: int | None = None) -> None:
    taken = await session.scalar(
        select(SlaHoliday.id).where(SlaHoliday.account_id == account_id, SlaHoliday.day == day)
    )
    if taken is not None and taken != but:
        raise Conflict(f"{day.isoformat()} is already a holiday", code="holiday_exists", holiday_id=taken)


async def create_holiday(session: AsyncSession, account_id: int, day: date, name: str) -> SlaHoliday:
    """A new holiday; the same day twice is 409 ``holiday_exists`` (a concurrent twin loses on the
    unique constraint: 409 ``concurrent_conflict``)."""
    await _check_day_free(session, account_id, day)
    holiday = SlaHoliday(account_id=account_id, day=day, name=name, created_at=utcnow())
    session.add(holiday)
    await session.flush()
    return holiday


async def update_holiday(
    session: AsyncSession, account_id: int, holiday_id: int, changes: dict[str, Any]
) -> SlaHoliday:
    holiday = await get_holiday(session, account_id, holiday_id)
    if "day" in changes:
        await _check_day_free(session, account_id, changes["day"], but=holiday.id)
    for name, value in changes.items():
        setattr(holiday, name, value)
    await session.flush()
    return holiday


async def delete_holiday(session: AsyncSession, account_id: int, holiday_id: int) -> None:
    await session.delete(await get_holiday(session, account_id, holiday_id))
    await session.flush()
