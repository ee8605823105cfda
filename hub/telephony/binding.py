"""TEL-5: a ticket created during a call (from the pop-up) is bound to that call by itself."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from hub.desk.events import TicketCreated, subscriber
from hub.errors import BadRequest
from hub.telephony import service

__all__ = ["bind_created_ticket"]


@subscriber(TicketCreated)
async def bind_created_ticket(session: AsyncSession, event: TicketCreated) -> None:
    raw = event.context.get("call_id")
    if raw in (None, ""):
        return
    try:
        call_id = int(raw)
    except (TypeError, ValueError) as exc:
        raise BadRequest("call_id must be the hub's call id", code="invalid_call_id") from exc
    ticket = event.ticket
    # bind_ticket reads the call within the ticket's account: another account's call is "not found".
    await service.bind_ticket(session, ticket.account_id, call_id, ticket.id, event.actor, automatic=True)
