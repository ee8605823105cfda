"""Desk events that cross to partners (EX-5, EX-6, EX-7), with the no-echo rule (EX-10).

What came from a partner (actor kind ``partner`` or context ``exchange_origin``) never leaves
again: not back to its sender and not on to anyone else. So a comment bounces nowhere, also in
chains A -> B -> C where B transferred the ticket on.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from contracts.exchange import CommentPosted
from hub.desk.events import CommentAdded, StatusChanged, TicketUpdated, subscriber
from hub.exchange.inbox import ORIGIN, send_status
from hub.exchange.models import PassedComment
from hub.exchange.service import active_links, send

__all__ = ["on_comment", "on_status", "on_update"]


@subscriber(CommentAdded)
async def on_comment(session: AsyncSession, event: CommentAdded) -> None:
    comment = event.comment
    if comment is None or event.actor.kind == "partner" or ORIGIN in event.context:
        return
    links = await active_links(session, event.ticket.account_id, event.ticket.id)
    if not links:
        return
    pass_to_partner = bool(event.context.get("pass_to_partner"))
    for link, connection in links:
        # Original -> partner when asked, public or staff note alike (EX-5); partner -> original
        # every public comment (EX-6). The partner ticket's private comments never leave (EX-6).
        wanted = pass_to_partner if link.direction == "outgoing" else bool(comment.public)
        if not wanted:
            continue
        author = getattr(comment, "author_name", None) or event.actor.name or "staff"
        await send(
            session,
            connection,
            link,
            CommentPosted(ref=str(comment.id), author_name=author[:200], body=comment.body or ""),
        )
        if link.direction == "outgoing":
            # Its files are uploaded after it: the file job sends them on (EX-5).
            session.add(PassedComment(account_id=link.account_id, link_id=link.id, comment_id=comment.id))


@subscriber(StatusChanged)
async def on_status(session: AsyncSession, event: StatusChanged) -> None:
    await _status_to_originals(session, event.ticket, event.comment)


@subscriber(TicketUpdated)
async def on_update(session: AsyncSession, event: TicketUpdated) -> None:
    if "responsible_id" in event.changes:
        await _status_to_originals(session, event.ticket)


async def _status_to_originals(session: AsyncSession, ticket: object, comment: str | None = None) -> None:
    """EX-7: the partner ticket's state goes to the original's side (tracking, never echo: the
    original applies it to its link only and sends nothing on)."""
    account_id = ticket.account_id  # type: ignore[attr-defined]
    for link, connection in await active_links(session, account_id, ticket.id):  # type: ignore[attr-defined]
        if link.direction == "incoming":
            await send_status(session, connection, link, ticket, comment)
