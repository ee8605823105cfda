"""The desk's events turned into notifications (DESK-10). Subscribers run inside the desk's
transaction and only queue outbox messages; nothing here can fail the ticket action because of
a channel (delivery happens later, in the outbox worker)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.desk.events import CommentAdded, StatusChanged, TicketCreated, TicketUpdated, subscriber
from hub.monitoring import rules
from hub.notifications.service import Notice, Recipient, active_channels, notify, notify_all

__all__ = ["client_recipients", "staff_recipients"]


async def staff_recipients(
    session: AsyncSession,
    ticket: Any,
    *,
    exclude: int | None = None,
    executors: Iterable[int] | None = None,
) -> list[Recipient]:
    """The ticket's responsible and executors; with nobody assigned, the dispatchers and admins.
    ``executors`` are read here unless the caller knows them (a ticket just created)."""
    executors_of, desk_staff = _staff_statements()
    if executors is None:
        executors = await session.scalars(executors_of, {"ticket_id": ticket.id})
    ids = [i for i in [ticket.responsible_id, *executors] if i]
    if not ids:
        ids = list(await session.scalars(desk_staff, {"account_id": ticket.account_id}))
    return [("employee", i) for i in dict.fromkeys(ids) if i != exclude]


@functools.cache
def _staff_statements() -> tuple[Any, Any]:
    """A ticket's executors; an account's active dispatchers and administrators. Built once, on
    first use (the desk's models import this module's package)."""
    from hub.accounts.models import Employee, Role
    from hub.desk.models import TicketExecutor

    executors_of = (
        select(TicketExecutor.employee_id)
        .where(TicketExecutor.ticket_id == bindparam("ticket_id"))
        .order_by(TicketExecutor.employee_id)
    )
    desk_staff = select(Employee.id).where(
        Employee.account_id == bindparam("account_id"),
        Employee.active.is_(True),
        Employee.role.in_([Role.ADMINISTRATOR, Role.DISPATCHER]),
    )
    return executors_of, desk_staff


def client_recipients(ticket: Any, *, exclude: int | None = None) -> list[Recipient]:
    """The client of the ticket (never for internal tickets, DESK-3)."""
    if getattr(ticket, "type", None) == "internal":
        return []
    ids = [getattr(ticket, "contact_id", None)]
    if getattr(ticket, "created_by_kind", None) == "contact":
        ids.append(getattr(ticket, "created_by_id", None))
    return [("contact", i) for i in dict.fromkeys(ids) if i and i != exclude]


@subscriber(TicketCreated)
async def on_ticket_created(session: AsyncSession, event: TicketCreated) -> None:
    ticket = event.ticket
    exclude = event.actor.id if event.actor.kind == "employee" else None
    staff = await staff_recipients(session, ticket, exclude=exclude, executors=event.executor_ids)
    notices = [Notice("new_ticket", staff, {"source": getattr(ticket, "source", None)})]
    clients = client_recipients(ticket)
    if clients:
        # DESK-10, seed 004: "the client is notified that the ticket was registered".
        notices.append(Notice("ticket_registered", clients, {"number": ticket.number}))
    await notify_all(session, account_id=ticket.account_id, ticket=ticket, notices=notices)


@subscriber(TicketUpdated)
async def on_ticket_updated(session: AsyncSession, event: TicketUpdated) -> None:
    """DESK-10, seed 003: a change of responsible goes to the new responsible and the observers."""
    change = event.changes.get("responsible_id")
    if change is None or change[1] is None:
        return
    ticket, actor = event.ticket, event.actor
    observers = event.changes.get("observer_ids", (None, None))[1]
    if observers is None:
        observers = await session.scalars(_observers_statement(), {"ticket_id": ticket.id})
    me = actor.id if actor.kind == "employee" else None
    recipients = [("employee", i) for i in dict.fromkeys([change[1], *observers]) if i != me]
    if recipients:
        await notify(
            session,
            account_id=ticket.account_id,
            event="responsible_changed",
            ticket=ticket,
            recipients=recipients,
            data={"responsible_id": change[1], "previous_responsible_id": change[0]},
        )


@functools.cache
def _observers_statement() -> Any:
    from hub.desk.models import TicketObserver

    return (
        select(TicketObserver.employee_id)
        .where(TicketObserver.ticket_id == bindparam("ticket_id"))
        .order_by(TicketObserver.employee_id)
    )


@subscriber(StatusChanged)
async def on_status_changed(session: AsyncSession, event: StatusChanged) -> None:
    ticket, actor = event.ticket, event.actor
    recipients = client_recipients(ticket, exclude=actor.id if actor.kind == "contact" else None)
    if rules.rating_requested(ticket, event.new_status) and await _rating_request_covers(session, ticket):
        # The rating request (hub/monitoring/subscribers.py) already tells them it is resolved,
        # on every channel this message would use: one message, not two.
        asked = {("contact", c) for c in await rules.rating_push_recipients(session, ticket)}
        recipients = [r for r in recipients if r not in asked]
    responsible = getattr(ticket, "responsible_id", None)
    if actor.is_client:
        # DESK-11: the client confirmed, reopened or cancelled: whoever handles it is told (the
        # desk staff when nobody has taken it yet).
        recipients += await staff_recipients(session, ticket)
    elif responsible and not (actor.kind == "employee" and actor.id == responsible):
        recipients.append(("employee", responsible))
    await notify(
        session,
        account_id=ticket.account_id,
        event="status_changed",
        ticket=ticket,
        recipients=recipients,
        data={"status": event.new_status, "previous": event.old_status},
    )


async def _rating_request_covers(session: AsyncSession, ticket: Any) -> bool:
    status_channels = await active_channels(session, ticket.account_id, "status_changed")
    return status_channels <= await active_channels(session, ticket.account_id, "rating_request")


@subscriber(CommentAdded)
async def on_comment_added(session: AsyncSession, event: CommentAdded) -> None:
    comment, ticket, actor = event.comment, event.ticket, event.actor
    if comment is None or not getattr(comment, "public", False):
        return
    if actor.is_client:
        recipients = await staff_recipients(session, ticket)
    else:
        recipients = client_recipients(ticket)
    await notify(
        session,
        account_id=ticket.account_id,
        event="public_comment",
        ticket=ticket,
        recipients=recipients,
        data={"comment_id": getattr(comment, "id", None)},
    )
