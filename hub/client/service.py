"""DESK-11: the client reads and answers a ticket's public conversation, confirms, reopens or
cancels it. Who may do what is seed 000's rules (``hub.monitoring.rules``); every change goes
through the desk's service, so the workflow, history, notifications and live frames are the
desk's own. Never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.principal import Principal
from hub.client.schemas import ClientCommentRead, ClientFileRead
from hub.db import utcnow
from hub.desk import files as desk_files
from hub.desk import service as desk
from hub.desk.actors import Actor
from hub.desk.models import Comment, Ticket, TicketFile
from hub.errors import Forbidden, NotFound, Unprocessable
from hub.monitoring import rules
from hub.monitoring.schemas import AppTicketRead
from hub.monitoring.service import app_ticket_views
from hub.paging import by_id, fetch_page
from hub.people.models import ObjectUser, ObjectUserRole
from hub.settings import Settings

__all__ = [
    "ClientTicket",
    "attach",
    "cancel",
    "confirm",
    "conversation",
    "public_file",
    "public_files",
    "reopen",
    "reply",
    "ticket_of",
    "view",
]

CANCELLED_BY_CLIENT = "Cancelled by the client"


@dataclass(frozen=True)
class ClientTicket:
    """A ticket as one client sees it: whether they are an admin of its object, their actor."""

    ticket: Ticket
    actor: Actor
    is_admin: bool

    @property
    def contact_id(self) -> int:
        assert self.actor.id is not None
        return self.actor.id


def _not_found() -> NotFound:
    return NotFound("No such ticket", code="ticket_not_found")


async def ticket_of(
    session: AsyncSession, principal: Principal, ticket_id: int, *, for_update: bool = False
) -> ClientTicket:
    """The ticket if this client may see it: a user of its object sees it (MON-4), a contact given
    access sees the tickets they are the client or the author of; internal tickets never
    (DESK-3). Anything else is 404, as for another account's ticket (DESK-1)."""
    contact_id = principal.contact_id
    if contact_id is None:
        raise _not_found()
    try:
        ticket = await desk.get_ticket(session, principal.account_id, ticket_id, for_update=for_update)
    except NotFound:
        raise _not_found() from None
    if ticket.type == "internal":
        raise _not_found()
    role = None
    if ticket.object_id is not None:
        role = await session.scalar(
            select(ObjectUser.role).where(
                ObjectUser.account_id == principal.account_id,
                ObjectUser.object_id == ticket.object_id,
                ObjectUser.contact_id == contact_id,
            )
        )
    if role is None and contact_id not in (ticket.contact_id, rules.client_author(ticket)):
        raise _not_found()
    return ClientTicket(ticket, Actor.from_principal(principal), role == ObjectUserRole.ADMIN)


async def _party(
    session: AsyncSession, principal: Principal, ticket_id: int, *, lock: bool = False
) -> ClientTicket:
    """The ticket if this client takes part in its conversation (403 for a plain object user,
    who sees the ticket in the list but not what was said, MON-4)."""
    seen = await ticket_of(session, principal, ticket_id, for_update=lock)
    if not rules.in_conversation(seen.ticket, seen.contact_id, seen.is_admin):
        raise Forbidden(
            "Only the ticket's author, its contact and the object's administrators follow its conversation",
            code="not_in_conversation",
        )
    return seen


async def own_tickets(
    session: AsyncSession, principal: Principal, *, cursor: str | None, limit: int
) -> tuple[list[AppTicketRead], str | None]:
    """DESK-11: the tickets this client is the client or the author of, newest first (a contact
    given access who uses no object finds them here; an object's users also have its list)."""
    contact_id = principal.contact_id
    if contact_id is None:
        return [], None
    query = select(Ticket).where(
        Ticket.account_id == principal.account_id,
        Ticket.type != "internal",
        or_(
            Ticket.contact_id == contact_id,
            and_(Ticket.created_by_kind == "contact", Ticket.created_by_id == contact_id),
        ),
    )
    rows, next_cursor = await fetch_page(
        session, query, by_id(Ticket.id, newest_first=True), cursor=cursor, limit=limit
    )
    return await app_ticket_views(session, rows, contact_id, False), next_cursor


async def view(session: AsyncSession, seen: ClientTicket) -> AppTicketRead:
    return (await app_ticket_views(session, [seen.ticket], seen.contact_id, seen.is_admin))[0]


# --- reading ---------------------------------------------------------------------------------


def _file_read(row: TicketFile, contact_id: int) -> ClientFileRead:
    return ClientFileRead(
        id=row.id,
        comment_id=row.comment_id,
        filename=row.filename,
        content_type=row.content_type,
        size=row.size,
        mine=row.uploaded_by_kind == "contact" and row.uploaded_by_id == contact_id,
        created_at=row.created_at,
    )


def _comment_read(comment: Comment, contact_id: int, files: list[ClientFileRead]) -> ClientCommentRead:
    author, author_name = rules.comment_author(comment.author_kind, comment.author_name)
    return ClientCommentRead(
        id=comment.id,
        body=comment.body,
        author=author,
        author_name=author_name,
        mine=comment.author_kind == "contact" and comment.author_id == contact_id,
        created_at=comment.created_at,
        files=files,
    )


async def public_files(session: AsyncSession, principal: Principal, ticket_id: int) -> list[ClientFileRead]:
    seen = await _party(session, principal, ticket_id)
    rows = await desk_files.list_files(session, principal.account_id, seen.ticket.id, public_only=True)
    return [_file_read(r, seen.contact_id) for r in rows]


async def conversation(
    session: AsyncSession, principal: Principal, ticket_id: int
) -> list[ClientCommentRead]:
    """DESK-11: the public comments, oldest first, each with its public files; private comments
    and staff files not marked public never reach the client (DESK-6)."""
    seen = await _party(session, principal, ticket_id)
    comments = await desk.list_comments(session, principal.account_id, seen.ticket.id, public_only=True)
    rows = await desk_files.list_files(session, principal.account_id, seen.ticket.id, public_only=True)
    by_comment: dict[int, list[ClientFileRead]] = {}
    for row in rows:
        if row.comment_id is not None:
            by_comment.setdefault(row.comment_id, []).append(_file_read(row, seen.contact_id))
    return [_comment_read(c, seen.contact_id, by_comment.get(c.id, [])) for c in comments]


async def public_file(
    session: AsyncSession, principal: Principal, ticket_id: int, file_id: int
) -> TicketFile:
    seen = await _party(session, principal, ticket_id)
    row = await desk_files.get_file(session, principal.account_id, seen.ticket.id, file_id)
    if not row.public:
        raise NotFound("No such file", code="file_not_found")
    return row


# --- writing ---------------------------------------------------------------------------------


async def reply(session: AsyncSession, principal: Principal, ticket_id: int, body: str) -> ClientCommentRead:
    """DESK-11: a public reply; the ticket needs a reply, and one pending while staff waited for
    the client goes back to where it was (the desk's ``client_spoke``)."""
    seen = await _party(session, principal, ticket_id)
    comment = await desk.add_comment(
        session, principal.account_id, seen.ticket.id, seen.actor, body, public=True
    )
    return _comment_read(comment, seen.contact_id, [])


async def _own_public_comment(session: AsyncSession, seen: ClientTicket, comment_id: int | None) -> None:
    """A client's file goes on the ticket or on one of their own replies, never on another's
    comment (whose privacy it would take on, or reveal)."""
    if comment_id is None:
        return
    comment = await session.get(Comment, comment_id)
    if (
        comment is None
        or comment.ticket_id != seen.ticket.id
        or comment.author_kind != "contact"
        or comment.author_id != seen.contact_id
    ):
        raise Unprocessable("No such reply of yours on this ticket", code="comment_not_found")


async def attach(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    ticket_id: int,
    uploads: Sequence[tuple[str, str | None, bytes]],
    comment_id: int | None,
) -> list[ClientFileRead]:
    """DESK-11: the client's files (always public) on the ticket or on their reply; like a reply,
    they make the ticket need one."""
    seen = await _party(session, principal, ticket_id, lock=True)
    await _own_public_comment(session, seen, comment_id)
    stored = [
        await desk_files.attach_file(
            session,
            settings,
            principal.account_id,
            seen.ticket.id,
            seen.actor,
            filename=filename,
            content_type=content_type,
            data=data,
            comment_id=comment_id,
            public=True,
        )
        for filename, content_type, data in uploads
    ]
    if comment_id is None:
        await desk.client_spoke(session, seen.ticket, utcnow())
    return [_file_read(r, seen.contact_id) for r in stored]


async def confirm(session: AsyncSession, principal: Principal, ticket_id: int) -> AppTicketRead:
    """DESK-4, DESK-11: the client confirms the resolution: the ticket closes."""
    seen = await _party(session, principal, ticket_id)
    await desk.change_status(session, principal.account_id, seen.ticket.id, seen.actor, "closed")
    return await view(session, seen)


async def reopen(
    session: AsyncSession, principal: Principal, ticket_id: int, comment: str | None
) -> AppTicketRead:
    """DESK-4, DESK-11: the client sends a resolved ticket back; their note becomes a reply."""
    seen = await _party(session, principal, ticket_id)
    await desk.change_status(
        session, principal.account_id, seen.ticket.id, seen.actor, "reopened", comment=comment
    )
    if comment and comment.strip():
        await desk.add_comment(
            session, principal.account_id, seen.ticket.id, seen.actor, comment, public=True
        )
    return await view(session, seen)


async def cancel(
    session: AsyncSession, principal: Principal, ticket_id: int, comment: str | None
) -> AppTicketRead:
    """DESK-11, seed 002 §16: the author cancels their own new ticket while nobody has taken it
    (the workflow refuses it once someone is responsible: 409 ``ticket_taken``)."""
    seen = await ticket_of(session, principal, ticket_id)
    ticket = seen.ticket
    if rules.client_author(ticket) != seen.contact_id:
        raise Forbidden("Only the author of a request may cancel it", code="cancel_author_only")
    reason = comment.strip() if comment and comment.strip() else CANCELLED_BY_CLIENT
    await desk.change_status(
        session, principal.account_id, ticket.id, seen.actor, "cancelled", comment=reason
    )
    return await view(session, seen)
