"""The desk's events as the client app sees them: live updates (MON-5), the rating request
push (MON-6), and the one-active-ticket slot (MON-3). All inside the desk's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import Employee
from hub.desk.events import CommentAdded, StatusChanged, TicketCreated, TicketUpdated, subscriber
from hub.desk.models import Ticket
from hub.live import channel_name, publish_after_commit
from hub.monitoring import rules
from hub.monitoring.service import release_slot, retake_slot, status_label
from hub.notifications import notify
from hub.notifications.models import NotificationChannel
from hub.people.models import ObjectUser

__all__ = ["app_channel", "rating_link"]

_DONE = ("resolved", "closed", "cancelled")
_LIVE_FIELDS = {"responsible_id", "repair_date", "rating", "executor_ids"}


# Built once: the live frame is on every ticket change's path.
_OBJECT_USERS = select(ObjectUser.contact_id).where(
    ObjectUser.account_id == bindparam("account_id"), ObjectUser.object_id == bindparam("object_id")
)


def app_channel(account_id: int, contact_id: int) -> str:
    return channel_name(account_id, "app", contact_id)


async def _publish(
    session: AsyncSession,
    ticket: Ticket,
    kind: str,
    *,
    engineer_name: str | None = None,
    users: Iterable[int] | None = None,
) -> None:
    """Every user of the object sees every ticket of it (MON-4): tell each of them. The frame
    carries no description; the app reloads the list for that (the rules apply there).
    ``engineer_name`` and ``users`` are read here unless the caller already knows them."""
    if ticket.type == "internal":
        return
    if engineer_name is None and ticket.responsible_id:
        engineer = await session.get(Employee, ticket.responsible_id)
        engineer_name = engineer.name if engineer else None
    data: dict[str, Any] = {
        "ticket_id": ticket.id,
        "object_id": ticket.object_id,
        "number": ticket.number,
        "status": ticket.status,
        "status_label": status_label(ticket.status),
        "engineer": engineer_name,
        "repair_date": ticket.repair_date.isoformat() if ticket.repair_date else None,
        "rating_score": ticket.rating_score,
    }
    if ticket.object_id is None:
        # A contact given access follows their own tickets that have no object (DESK-11).
        users = [c for c in dict.fromkeys((ticket.contact_id, rules.client_author(ticket))) if c]
    elif users is None:
        users = await session.scalars(
            _OBJECT_USERS, {"account_id": ticket.account_id, "object_id": ticket.object_id}
        )
    for contact_id in users:
        publish_after_commit(session, app_channel(ticket.account_id, contact_id), kind, data)


async def rating_link(session: AsyncSession, ticket: Ticket) -> str:
    """The deep link of the rating push: the object's list with this ticket first (MON-6)."""
    config = await session.scalar(
        select(NotificationChannel.config).where(
            NotificationChannel.account_id == ticket.account_id, NotificationChannel.channel == "push"
        )
    )
    scheme = (config or {}).get("link_scheme") or "hubapp"
    return f"{scheme}://objects/{ticket.object_id}/tickets?first={ticket.id}"


@subscriber(StatusChanged)
async def on_status_changed(session: AsyncSession, event: StatusChanged) -> None:
    ticket = event.ticket
    if event.new_status in _DONE:
        await release_slot(session, ticket)
    elif event.new_status == "reopened":
        await retake_slot(session, ticket)
    await _publish(session, ticket, "ticket_status")
    if rules.rating_requested(ticket, event.new_status):
        recipients = await rules.rating_push_recipients(session, ticket)
        await notify(
            session,
            account_id=ticket.account_id,
            event="rating_request",
            ticket=ticket,
            recipients=[("contact", c) for c in recipients],
            data={"link": await rating_link(session, ticket) if ticket.object_id else None},
            key=f"rating:{ticket.id}:{ticket.resolved_at.isoformat() if ticket.resolved_at else ''}",
        )


@subscriber(TicketCreated)
async def on_ticket_created(session: AsyncSession, event: TicketCreated) -> None:
    # A new ticket of the object (from the app, a dispatcher or the monitoring centre) shows up
    # in every user's open list at once (MON-2, MON-5).
    await _publish(
        session,
        event.ticket,
        "ticket_created",
        engineer_name=event.responsible_name,
        users=event.object_user_ids,
    )


@subscriber(TicketUpdated)
async def on_ticket_updated(session: AsyncSession, event: TicketUpdated) -> None:
    if set(event.changes) & _LIVE_FIELDS:
        await _publish(session, event.ticket, "ticket_updated")


@subscriber(CommentAdded)
async def on_comment_added(session: AsyncSession, event: CommentAdded) -> None:
    """DESK-11: a new public comment reaches the live stream of those who follow the
    conversation (the author, the ticket's contact, the object's admins: MON-4's rules)."""
    ticket, comment = event.ticket, event.comment
    if comment is None or not comment.public or ticket.type == "internal":
        return
    parties = [ticket.contact_id, rules.client_author(ticket)]
    if ticket.object_id is not None:
        parties += await rules.object_admins(session, ticket.account_id, ticket.object_id)
    author, author_name = rules.comment_author(comment.author_kind, comment.author_name)
    data = {
        "ticket_id": ticket.id,
        "object_id": ticket.object_id,
        "comment_id": comment.id,
        "body": comment.body,
        "author": author,
        "author_name": author_name,
        "created_at": comment.created_at.isoformat(),
    }
    for contact_id in dict.fromkeys(c for c in parties if c):
        publish_after_commit(session, app_channel(ticket.account_id, contact_id), "ticket_comment", data)
