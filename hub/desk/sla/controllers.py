"""The SLA admin API (DESK-5): the account's calendar and default targets, its rules, its
holidays. Everyone on the staff reads them; administrators change them."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.guards import administrators, employees
from hub.auth.principal import Principal
from hub.desk.sla import admin
from hub.desk.sla.schemas import (
    HolidayCreate,
    HolidayRead,
    HolidayUpdate,
    RuleCreate,
    RuleRead,
    RuleUpdate,
    SettingsRead,
    SettingsUpdate,
)
from hub.schemas import updates_of

__all__ = ["SLA_CONTROLLERS", "SlaHolidayController", "SlaRuleController", "SlaSettingsController"]

Year = Annotated[int | None, Parameter(ge=1900, le=2200)]


class SlaSettingsController(Controller):
    path = "/api/sla/settings"
    tags = ["desk: SLA"]

    @get("", guards=[employees], summary="Working hours, time zone and default SLA targets")
    async def get_settings(self, db_session: AsyncSession, principal: Principal) -> SettingsRead:
        return await admin.read_settings(db_session, principal.account_id)

    @patch("", guards=[administrators], summary="Change working hours, time zone or default targets")
    async def update_settings(
        self, data: SettingsUpdate, db_session: AsyncSession, principal: Principal
    ) -> SettingsRead:
        return await admin.update_settings(db_session, principal.account_id, updates_of(data))


class SlaRuleController(Controller):
    path = "/api/sla/rules"
    tags = ["desk: SLA"]

    @get("", guards=[employees], summary="SLA rules in the order they are tried")
    async def list_rules(self, db_session: AsyncSession, principal: Principal) -> list[RuleRead]:
        return [admin.rule_read(r) for r in await admin.list_rules(db_session, principal.account_id)]

    @post("", guards=[administrators], summary="Add an SLA rule")
    async def create_rule(self, data: RuleCreate, db_session: AsyncSession, principal: Principal) -> RuleRead:
        return admin.rule_read(await admin.create_rule(db_session, principal.account_id, data))

    @get("/{sla_rule_id:int}", guards=[employees], summary="One SLA rule")
    async def get_rule(self, sla_rule_id: int, db_session: AsyncSession, principal: Principal) -> RuleRead:
        return admin.rule_read(await admin.get_rule(db_session, principal.account_id, sla_rule_id))

    @patch("/{sla_rule_id:int}", guards=[administrators], summary="Change an SLA rule (or its position)")
    async def update_rule(
        self, sla_rule_id: int, data: RuleUpdate, db_session: AsyncSession, principal: Principal
    ) -> RuleRead:
        rule = await admin.update_rule(db_session, principal.account_id, sla_rule_id, updates_of(data))
        return admin.rule_read(rule)

    @delete("/{sla_rule_id:int}", guards=[administrators], summary="Delete an SLA rule")
    async def delete_rule(self, sla_rule_id: int, db_session: AsyncSession, principal: Principal) -> None:
        await admin.delete_rule(db_session, principal.account_id, sla_rule_id)


class SlaHolidayController(Controller):
    path = "/api/sla/holidays"
    tags = ["desk: SLA"]

    @get("", guards=[employees], summary="Holidays (non-working dates), optionally of one year")
    async def list_holidays(
        self, db_session: AsyncSession, principal: Principal, year: Year = None
    ) -> list[HolidayRead]:
        rows = await admin.list_holidays(db_session, principal.account_id, year)
        return [admin.holiday_read(h) for h in rows]

    @post("", guards=[administrators], summary="Add a holiday")
    async def create_holiday(
        self, data: HolidayCreate, db_session: AsyncSession, principal: Principal
    ) -> HolidayRead:
        holiday = await admin.create_holiday(db_session, principal.account_id, data.day, data.name)
        return admin.holiday_read(holiday)

    @get("/{sla_holiday_id:int}", guards=[employees], summary="One holiday")
    async def get_holiday(
        self, sla_holiday_id: int, db_session: AsyncSession, principal: Principal
    ) -> HolidayRead:
        return admin.holiday_read(await admin.get_holiday(db_session, principal.account_id, sla_holiday_id))

    @patch("/{sla_holiday_id:int}", guards=[administrators], summary="Move or rename a holiday")
    async def update_holiday(
        self, sla_holiday_id: int, data: HolidayUpdate, db_session: AsyncSession, principal: Principal
    ) -> HolidayRead:
        holiday = await admin.update_holiday(
            db_session, principal.account_id, sla_holiday_id, updates_of(data)
        )
        return admin.holiday_read(holiday)

    @delete("/{sla_holiday_id:int}", guards=[administrators], summary="Delete a holiday")
    async def delete_holiday(
        self, sla_holiday_id: int, db_session: AsyncSession, principal: Principal
    ) -> None:
        await admin.delete_holiday(db_session, principal.account_id, sla_holiday_id)


SLA_CONTROLLERS = (SlaSettingsController, SlaRuleController, SlaHolidayController)
