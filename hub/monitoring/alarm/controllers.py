"""MON-8 API: alarm account numbers on objects, their events, the event rules, unknown numbers."""

from __future__ import annotations

from litestar import Controller, delete, get, patch, post, put
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.guards import administrators, employees
from hub.auth.principal import Principal
from hub.monitoring.alarm import admin
from hub.monitoring.alarm.schemas import (
    AlarmAccountCreate,
    AlarmAccountRead,
    AlarmAccountUpdate,
    AlarmEventRead,
    AlarmRuleRead,
    AlarmRuleSet,
    UnknownAlarmAccountRead,
)
from hub.paging import DEFAULT_LIMIT, Cursor, Limit, Page
from hub.schemas import to_read, updates_of

__all__ = ["ALARM_CONTROLLERS", "AlarmController", "ObjectAlarmController"]


class ObjectAlarmController(Controller):
    path = "/api/objects/{object_id:int}"
    tags = ["alarm receiver"]

    @get("/alarm-accounts", guards=[employees], summary="The object's alarm panel account numbers")
    async def list_accounts(
        self, object_id: int, db_session: AsyncSession, principal: Principal
    ) -> list[AlarmAccountRead]:
        rows = await admin.list_accounts(db_session, principal.account_id, object_id)
        return [admin.account_read(row) for row in rows]

    @post("/alarm-accounts", guards=[administrators], summary="Give the object a panel account number")
    async def add_account(
        self, object_id: int, data: AlarmAccountCreate, db_session: AsyncSession, principal: Principal
    ) -> AlarmAccountRead:
        return admin.account_read(await admin.add_account(db_session, principal.account_id, object_id, data))

    @get("/alarm-events", guards=[employees], summary="Every event the object's panels sent, newest first")
    async def list_events(
        self,
        object_id: int,
        db_session: AsyncSession,
        principal: Principal,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[AlarmEventRead]:
        rows, next_cursor = await admin.list_events(
            db_session, principal.account_id, object_id, cursor=cursor, limit=limit
        )
        return Page([to_read(AlarmEventRead, row) for row in rows], next_cursor)


class AlarmController(Controller):
    path = "/api/alarm"
    tags = ["alarm receiver"]

    @patch(
        "/accounts/{alarm_account_id:int}",
        guards=[administrators],
        summary="Change a panel's key or restore rule",
    )
    async def change_account(
        self, alarm_account_id: int, data: AlarmAccountUpdate, db_session: AsyncSession, principal: Principal
    ) -> AlarmAccountRead:
        row = await admin.change_account(db_session, principal.account_id, alarm_account_id, updates_of(data))
        return admin.account_read(row)

    @delete(
        "/accounts/{alarm_account_id:int}", guards=[administrators], summary="Remove a panel account number"
    )
    async def remove_account(
        self, alarm_account_id: int, db_session: AsyncSession, principal: Principal
    ) -> None:
        await admin.remove_account(db_session, principal.account_id, alarm_account_id)

    @get(
        "/rules",
        guards=[employees],
        summary="Which events open service tickets (defaults and the account's own)",
    )
    async def list_rules(self, db_session: AsyncSession, principal: Principal) -> list[AlarmRuleRead]:
        return await admin.list_rules(db_session, principal.account_id)

    @put("/rules", guards=[administrators], summary="Set whether a code opens tickets (null: the default)")
    async def set_rule(
        self, data: AlarmRuleSet, db_session: AsyncSession, principal: Principal
    ) -> AlarmRuleRead:
        return await admin.set_rule(
            db_session, principal.account_id, data.protocol, data.code, data.opens_ticket
        )

    @get(
        "/unknown-accounts", guards=[administrators], summary="Account numbers panels sent that nobody set up"
    )
    async def list_unknown(
        self, db_session: AsyncSession, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT
    ) -> Page[UnknownAlarmAccountRead]:
        rows, next_cursor = await admin.list_unknown(db_session, cursor=cursor, limit=limit)
        return Page([to_read(UnknownAlarmAccountRead, row) for row in rows], next_cursor)


ALARM_CONTROLLERS = [ObjectAlarmController, AlarmController]
