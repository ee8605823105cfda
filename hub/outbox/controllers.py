"""Administrators see what the hub sends, what failed, and retry dead letters."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get, post
from litestar.params import Parameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.guards import administrators
from hub.auth.principal import Principal
from hub.outbox import service
from hub.outbox.models import DeliveryAttempt, OutboxMessage
from hub.outbox.schemas import AttemptRead, OutboxMessageDetail, OutboxMessageRead
from hub.paging import DEFAULT_LIMIT, Cursor, Limit, Page, by_id, fetch_page
from hub.schemas import to_read

__all__ = ["OutboxController"]


class OutboxController(Controller):
    path = "/api/outbox"
    tags = ["outbox"]
    guards = [administrators]

    @get("/", summary="Outbound messages of the account, newest first (filter dead letters with status=dead)")
    async def list_messages(
        self,
        db_session: AsyncSession,
        principal: Principal,
        status: Literal["pending", "delivering", "delivered", "dead"] | None = None,
        topic: Annotated[str | None, Parameter(max_length=100)] = None,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[OutboxMessageRead]:
        query = select(OutboxMessage).where(OutboxMessage.account_id == principal.account_id)
        if status:
            query = query.where(OutboxMessage.status == status)
        if topic:
            query = query.where(OutboxMessage.topic == topic)
        order = by_id(OutboxMessage.id, newest_first=True)
        rows, next_cursor = await fetch_page(db_session, query, order, cursor=cursor, limit=limit)
        return Page([to_read(OutboxMessageRead, row) for row in rows], next_cursor)

    @get("/{message_id:int}", summary="One message with its payload and every delivery attempt")
    async def get_message(
        self, message_id: int, db_session: AsyncSession, principal: Principal
    ) -> OutboxMessageDetail:
        message = await service.get_message(db_session, principal.account_id, message_id)
        attempts = await db_session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.message_id == message.id)
            .order_by(DeliveryAttempt.id)
        )
        return OutboxMessageDetail(
            message=to_read(OutboxMessageRead, message),
            payload=message.payload,
            attempts=[to_read(AttemptRead, attempt) for attempt in attempts],
        )

    @post("/{message_id:int}/retry", status_code=200, summary="Send a dead-lettered message again")
    async def retry(
        self, message_id: int, db_session: AsyncSession, principal: Principal
    ) -> OutboxMessageRead:
        return to_read(
            OutboxMessageRead, await service.retry_dead(db_session, principal.account_id, message_id)
        )
