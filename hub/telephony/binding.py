"""TEL-5: a ticket created during a call (from the pop-up) is bound to that call by itself."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.desk.events import TicketCreated, subscribe
from hub.errors import BadRequest, NotFound
from hub.telephony import service
from hub.telephony.models import Call

__all__ = ["bind_created_ticket"]


@subscribe(TicketCreated)
async def bind_created_ticket(session: AsyncSession, event: TicketCreated) -> None:
    raw = event.context.get("call_id")
    if raw in (None, ""):
        return
    try:
        call_id = int(raw)
    except (TypeError, ValueError) as exc:
        raise BadRequest("call_id must be the hub's call id", code="invalid_call_id") from exc
    ticket = event.ticket
    # A call of another account is "not found", like any foreign id.
    exists = await session.scalar(
        select(Call.id).where(Call.account_id == ticket.account_id, Call.id == call_id)
    )
    if exists is None:
        raise NotFound("No such call", code="call_not_found")
    await service.bind_ticket(session, ticket.account_id, call_id, ticket.id, event.actor, automatic=True)
