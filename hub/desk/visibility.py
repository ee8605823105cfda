"""DESK-12: which tickets an employee may see. The ONE rule; every route that reads a ticket, or
could reveal that one exists, asks here.

Engineers see the tickets they are responsible for, execute, observe or created, unless their
account lets engineers see all; dispatchers and administrators see every ticket of the account.
Other callers (client-app users, integration keys, the system) have rules of their own elsewhere
and are not narrowed here. A hidden ticket answers exactly like another account's: 404.

Two forms of the same rule: :func:`ticket_clause` (a SQL condition on ``tickets``, for lists and
joins) and :func:`require_ticket` (a row check for routes that name one ticket).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import Account, Employee, Role
from hub.auth.principal import Principal
from hub.desk.models import Ticket, TicketExecutor, TicketObserver
from hub.errors import NotFound

__all__ = [
    "Viewer",
    "can_see",
    "require_ticket",
    "ticket_clause",
    "ticket_id_clause",
    "viewer_of",
    "viewers_of_employees",
    "visible_ticket_ids",
]


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking. ``employee_id`` is set only when the rule narrows what they see."""

    account_id: int
    employee_id: int | None = None

    @property
    def sees_all(self) -> bool:
        return self.employee_id is None


async def viewer_of(session: AsyncSession, principal: Principal) -> Viewer:
    if principal.kind != "employee" or principal.role != Role.ENGINEER:
        return Viewer(principal.account_id)
    sees_all = await session.scalar(
        select(Account.engineers_see_all).where(Account.id == principal.account_id)
    )
    return Viewer(principal.account_id, None if sees_all else principal.subject_id)


async def viewers_of_employees(
    session: AsyncSession, account_id: int, employee_ids: Iterable[int]
) -> dict[int, Viewer]:
    """The viewers of several employees of one account at once (pushed frames, e.g. pop-ups)."""
    ids = set(employee_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(Employee.id, Employee.role, Account.engineers_see_all)
        .join(Account, Account.id == Employee.account_id)
        .where(Employee.account_id == account_id, Employee.id.in_(ids))
    )
    return {
        int(eid): Viewer(account_id, int(eid) if role == Role.ENGINEER and not sees_all else None)
        for eid, role, sees_all in rows
    }


def ticket_clause(viewer: Viewer) -> Any:
    """The tickets ``viewer`` may see, as a condition on ``tickets`` (the account is filtered apart)."""
    if viewer.sees_all:
        return true()
    me = viewer.employee_id
    return or_(
        Ticket.responsible_id == me,
        and_(Ticket.created_by_kind == "employee", Ticket.created_by_id == me),
        exists().where(TicketExecutor.ticket_id == Ticket.id, TicketExecutor.employee_id == me),
        exists().where(TicketObserver.ticket_id == Ticket.id, TicketObserver.employee_id == me),
    )


def ticket_id_clause(viewer: Viewer, column: Any, *, unbound_visible: bool = False) -> Any:
    """For rows of other tables that belong to a ticket (bindings, invoices, feed entries):
    ``column`` names a ticket ``viewer`` may see. ``unbound_visible``: rows without a ticket (a
    feed's calls) stay visible."""
    if viewer.sees_all:
        return true()
    visible = column.in_(
        select(Ticket.id).where(Ticket.account_id == viewer.account_id, ticket_clause(viewer))
    )
    return or_(column.is_(None), visible) if unbound_visible else visible


async def visible_ticket_ids(session: AsyncSession, viewer: Viewer, ticket_ids: Iterable[int]) -> set[int]:
    """Which of ``ticket_ids`` (of the viewer's account) the viewer may see."""
    wanted = set(ticket_ids)
    if not wanted:
        return set()
    query = select(Ticket.id).where(Ticket.account_id == viewer.account_id, Ticket.id.in_(wanted))
    if not viewer.sees_all:
        query = query.where(ticket_clause(viewer))
    return {int(i) for i in await session.scalars(query)}


async def can_see(session: AsyncSession, viewer: Viewer, ticket_id: int) -> bool:
    return bool(await visible_ticket_ids(session, viewer, [ticket_id]))


async def require_ticket(
    session: AsyncSession,
    principal: Principal,
    ticket_id: int | None,
    *,
    hidden: NotFound | None = None,
) -> Viewer:
    """Refuse a ticket the caller may not see with ``hidden`` (by default 404 ``ticket_not_found``,
    what another account's ticket answers). Tickets that do not exist are left to the route, which
    answers for them as it always did. Returns the viewer for the route's lists."""
    viewer = await viewer_of(session, principal)
    if viewer.sees_all or ticket_id is None:
        return viewer
    # One probe: no row (not in the account: the route answers as it always did), or whether the
    # rule lets the viewer see it.
    visible = await session.execute(
        select(ticket_clause(viewer)).where(Ticket.id == ticket_id, Ticket.account_id == viewer.account_id)
    )
    row = visible.first()
    if row is not None and not row[0]:
        raise hidden or NotFound("No such ticket", code="ticket_not_found")
    return viewer
