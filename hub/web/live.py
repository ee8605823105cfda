"""Live changes of an account's tickets for the web app's open pages (ISSUE 13: a ticket created
through the API appears in an open list; a partner's comment appears on an open ticket page).

One frame per desk event, on one channel per account, published with the desk's transaction
(a rolled-back change never reaches a screen). The frame names the ticket only: the page reloads
what it shows through the same services, so no rule is repeated here.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from hub.desk.events import CommentAdded, DeskEvent, StatusChanged, TicketCreated, subscriber
from hub.live import channel_name, publish_after_commit

__all__ = ["desk_channel", "on_desk_event"]


def desk_channel(account_id: int) -> str:
    return channel_name(account_id, "desk")


def _change_of(event: DeskEvent) -> str:
    if isinstance(event, TicketCreated):
        return "created"
    if isinstance(event, StatusChanged):
        return "status"
    if isinstance(event, CommentAdded):
        return "comment"
    return "updated"


@subscriber(DeskEvent)
async def on_desk_event(session: AsyncSession, event: DeskEvent) -> None:
    ticket = event.ticket
    publish_after_commit(
        session,
        desk_channel(ticket.account_id),
        "ticket",
        {"ticket_id": ticket.id, "number": ticket.number, "change": _change_of(event)},
    )
