"""DESK-12 routing: who may be made responsible, and who becomes responsible on their own
(the first employee to reply, when the account asks for it). The default responsible of a new
ticket (object, else contact, else company manager) is read with the ticket's number, in
:mod:`hub.desk.numbering`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import Account, Employee
from hub.desk.actors import Actor
from hub.desk.events import TicketUpdated, emit
from hub.desk.models import Ticket
from hub.errors import Unprocessable

__all__ = ["assign_first_replier", "check_can_be_responsible", "inactive_responsible"]


def inactive_responsible(employee_id: int) -> Unprocessable:
    return Unprocessable(
        "A deactivated employee cannot be responsible", code="employee_inactive", employee_id=employee_id
    )


async def check_can_be_responsible(session: AsyncSession, account_id: int, employee_id: int | None) -> None:
    """422 ``employee_not_found`` outside the account, 422 ``employee_inactive`` when deactivated."""
    if employee_id is None:
        return
    active = await session.scalar(
        select(Employee.active).where(Employee.id == employee_id, Employee.account_id == account_id)
    )
    if active is None:
        raise Unprocessable("No such employee", code="employee_not_found")
    if not active:
        raise inactive_responsible(employee_id)


async def assign_first_replier(session: AsyncSession, ticket: Ticket, actor: Actor, now: datetime) -> None:
    """The employee whose public reply is the first on an unassigned ticket becomes responsible,
    when the account's ``first_reply_assigns`` is on. The caller holds the ticket's row lock, so of
    two employees replying at once exactly one is assigned."""
    if ticket.responsible_id is not None or actor.kind != "employee" or actor.id is None:
        return
    enabled = await session.scalar(select(Account.first_reply_assigns).where(Account.id == ticket.account_id))
    if not enabled:
        return
    # Imported here: the service calls this module while it handles a comment.
    from hub.desk.service import record_history

    ticket.responsible_id = actor.id
    await record_history(
        session,
        ticket,
        actor,
        "assignment",
        {"responsible_id": [None, actor.id], "reason": "first_reply"},
        now=now,
    )
    await session.flush()
    await emit(session, TicketUpdated(ticket, actor, changes={"responsible_id": (None, actor.id)}))
