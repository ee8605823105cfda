"""Administrators' view of what the hub received from other systems, and a retry of failed applies."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.guards import administrators
from hub.auth.principal import Principal
from hub.intake import service
from hub.intake.schemas import IntakeEventDetail, IntakeEventRead
from hub.paging import DEFAULT_LIMIT, Cursor, Limit, Page
from hub.schemas import to_read

__all__ = ["IntakeController"]


class IntakeController(Controller):
    path = "/api/intake/events"
    tags = ["intake"]
    guards = [administrators]

    @get("/", summary="Inbound events of the account, newest first: filter by source, state, outcome")
    async def list_events(
        self,
        db_session: AsyncSession,
        principal: Principal,
        source: Annotated[
            str | None, Parameter(max_length=40, description="payments, payments.stripe, telephony, ...")
        ] = None,
        state_is: Annotated[
            Literal["pending", "applying", "done", "failed", "rejected"] | None, Parameter(query="state")
        ] = None,
        outcome: Annotated[str | None, Parameter(max_length=20)] = None,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[IntakeEventRead]:
        rows, next_cursor = await service.list_events(
            db_session,
            principal.account_id,
            source=source,
            state=state_is,
            outcome=outcome,
            cursor=cursor,
            limit=limit,
        )
        return Page([to_read(IntakeEventRead, row) for row in rows], next_cursor)

    @get("/{event_id:int}", summary="One inbound event with its headers, body and outcome")
    async def get_event(
        self, event_id: int, db_session: AsyncSession, principal: Principal
    ) -> IntakeEventDetail:
        return to_read(IntakeEventDetail, await service.get_event(db_session, principal.account_id, event_id))

    @post("/{event_id:int}/retry", status_code=200, summary="Apply an event whose apply failed again")
    async def retry(self, event_id: int, db_session: AsyncSession, principal: Principal) -> IntakeEventRead:
        event = await service.retry_failed(db_session, principal.account_id, event_id)
        return to_read(IntakeEventRead, event)
