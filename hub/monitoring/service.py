"""The client app (MON-2..7) and the monitoring-centre intake (MON-1). Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import load_only

from contracts.monitoring import MonitoringTicketRequest, MonitoringTicketResult
from hub.accounts.models import Account, Employee
from hub.auth.principal import Principal
from hub.desk import service as desk
from hub.desk.actors import Actor
from hub.desk.models import Ticket
from hub.desk.schemas import TicketCreate
from hub.errors import Conflict, Forbidden, NotFound
from hub.monitoring import rules
from hub.monitoring.models import ActiveAppTicket
from hub.monitoring.schemas import AppObjectRead, AppTicketList, AppTicketRead, ObjectHeader
from hub.people.models import ObjectUser, ObjectUserRole, ServiceObject

__all__ = [
    "APP_TITLE",
    "LIST_SIZE",
    "app_ticket_views",
    "create_app_ticket",
    "list_app_tickets",
    "list_objects",
    "membership",
    "open_monitoring_ticket",
    "rate_app_ticket",
    "status_label",
]

LIST_SIZE = 20
# App tickets carry a fixed title: the client's words go to the description only, which other
# users of the object may not see (MON-4).
APP_TITLE = "Service request from the client app"
_LABELS = {"open": "processing", "reopened": "processing"}


def status_label(status: str) -> str:
    return _LABELS.get(status, status)


def _contact(principal: Principal) -> int:
    if principal.contact_id is None:
        raise NotFound("No such object", code="object_not_found")
    return principal.contact_id


# --- objects -------------------------------------------------------------------------------------


async def list_objects(session: AsyncSession, principal: Principal) -> list[AppObjectRead]:
    rows = await session.execute(
        select(ServiceObject, ObjectUser.role)
        .join(ObjectUser, ObjectUser.object_id == ServiceObject.id)
        .where(ObjectUser.account_id == principal.account_id, ObjectUser.contact_id == _contact(principal))
        .order_by(ServiceObject.number)
    )
    return [AppObjectRead(o.id, o.number, o.name, o.address, role) for o, role in rows]


async def membership(
    session: AsyncSession, principal: Principal, object_id: int
) -> tuple[ServiceObject, bool]:
    """The object and whether the user is its admin; 404 unless the user is one of its users."""
    obj, is_admin, _header = await _membership(session, principal, object_id)
    return obj, is_admin


async def _membership(
    session: AsyncSession, principal: Principal, object_id: int
) -> tuple[ServiceObject, bool, ObjectHeader | None]:
    # One round trip: the object, the user's role on it and the company's name and phone.
    row = (
        await session.execute(
            select(ServiceObject, ObjectUser.role, Account.name, Account.phone)
            .join(ObjectUser, ObjectUser.object_id == ServiceObject.id)
            .join(Account, Account.id == ServiceObject.account_id)
            .where(
                ServiceObject.id == object_id,
                ServiceObject.account_id == principal.account_id,
                ObjectUser.contact_id == _contact(principal),
            )
        )
    ).first()
    if row is None:
        raise NotFound("No such object", code="object_not_found")
    obj, role, name, phone = row
    header = None
    if (name or "").strip() and (phone or "").strip():
        # MON-2: shown only when the security company has set its name and phone.
        header = ObjectHeader(name, phone or "", obj.number)
    return obj, role == ObjectUserRole.ADMIN, header


# --- MON-2 list ----------------------------------------------------------------------------------


async def app_ticket_views(
    session: AsyncSession,
    tickets: Sequence[Ticket],
    contact_id: int,
    is_admin: bool,
    names: dict[int, str] | None = None,
) -> list[AppTicketRead]:
    if names is None:
        staff = {t.responsible_id for t in tickets if t.responsible_id}
        names = {}
        if staff:
            rows = await session.execute(select(Employee.id, Employee.name).where(Employee.id.in_(staff)))
            names = {employee_id: name for employee_id, name in rows}
    return [
        AppTicketRead(
            id=t.id,
            number=t.number,
            title=rules.neutral_title(t),
            status=t.status,
            status_label=status_label(t.status),
            source=t.source,
            created_at=t.created_at,
            engineer=names.get(t.responsible_id) if t.responsible_id else None,
            repair_date=t.repair_date,
            rating_score=t.rating_score,
            description=t.description if rules.description_visible(t, contact_id, is_admin) else None,
            mine=rules.app_author(t) == contact_id,
            can_rate=rules.can_rate(t, contact_id, is_admin),
            can_reply=rules.can_reply(t, contact_id, is_admin),
            can_confirm=rules.can_confirm(t, contact_id, is_admin),
            can_cancel=rules.can_cancel(t, contact_id),
        )
        for t in tickets
    ]


# Only the columns the app shows and the rules read: the list is the app's hottest query.
_APP_COLUMNS = load_only(
    Ticket.id,
    Ticket.number,
    Ticket.title,
    Ticket.status,
    Ticket.source,
    Ticket.type,
    Ticket.created_at,
    Ticket.responsible_id,
    Ticket.repair_date,
    Ticket.rating_score,
    Ticket.description,
    Ticket.created_by_kind,
    Ticket.created_by_id,
    Ticket.contact_id,
)


def _object_tickets(account_id: int, object_id: int) -> Any:
    return (
        select(Ticket, Employee.name)
        .options(_APP_COLUMNS)
        .outerjoin(Employee, Employee.id == Ticket.responsible_id)
        .where(Ticket.account_id == account_id, Ticket.object_id == object_id, Ticket.type != "internal")
    )


async def list_app_tickets(
    session: AsyncSession, principal: Principal, object_id: int, *, first: int | None = None
) -> AppTicketList:
    """The object's last 20 tickets from any source; ``first`` (the rating push's deep link,
    MON-6) puts that ticket on top."""
    obj, is_admin, header = await _membership(session, principal, object_id)
    query = _object_tickets(principal.account_id, obj.id)
    # Newest first by the (account_id, object_id, created_at) index; id breaks ties.
    rows = list(
        (
            await session.execute(query.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(LIST_SIZE))
        ).all()
    )
    if first is not None and all(t.id != first for t, _ in rows):
        top = (await session.execute(query.where(Ticket.id == first))).first()
        if top is not None:
            rows = [top, *rows][:LIST_SIZE]
    if first is not None:
        rows.sort(key=lambda row: row[0].id != first)  # stable: the rest keep their order
    names = {t.responsible_id: name for t, name in rows if t.responsible_id and name}
    tickets = [t for t, _ in rows]
    views = await app_ticket_views(session, tickets, _contact(principal), is_admin, names)
    return AppTicketList(object_id=obj.id, header=header, tickets=views)


# --- MON-3 create --------------------------------------------------------------------------------


async def _take_slot(
    session: AsyncSession, account_id: int, object_id: int, contact_id: int
) -> ActiveAppTicket:
    slot = ActiveAppTicket(account_id=account_id, object_id=object_id, contact_id=contact_id)
    try:
        async with session.begin_nested():
            session.add(slot)
            await session.flush()
    except IntegrityError:
        raise Conflict(
            "You already have an active request for this object. You can send a new one once it is done.",
            code="active_ticket_exists",
        ) from None
    return slot


async def create_app_ticket(
    session: AsyncSession, principal: Principal, object_id: int, description: str
) -> AppTicketRead:
    obj, is_admin = await membership(session, principal, object_id)
    contact_id = _contact(principal)
    slot = await _take_slot(session, principal.account_id, obj.id, contact_id)
    ticket = await desk.create_ticket(
        session,
        principal.account_id,
        Actor("contact", contact_id, principal.name),
        TicketCreate(
            title=APP_TITLE,
            description=description.strip() or description,
            source="client_app",
            object_id=obj.id,
            contact_id=contact_id,
            company_id=obj.company_id,
        ),
    )
    slot.ticket_id = ticket.id
    await session.flush()
    return (await app_ticket_views(session, [ticket], contact_id, is_admin))[0]


async def release_slot(session: AsyncSession, ticket: Ticket) -> None:
    """The ticket is done (resolved, closed, cancelled): its author may send a new one."""
    slot = await session.scalar(select(ActiveAppTicket).where(ActiveAppTicket.ticket_id == ticket.id))
    if slot is not None:
        await session.delete(slot)
        await session.flush()


async def retake_slot(session: AsyncSession, ticket: Ticket) -> None:
    """A reopened app ticket is active again (unless its author has sent another meanwhile)."""
    author = rules.app_author(ticket)
    if author is None or ticket.object_id is None:
        return
    try:
        await _take_slot(session, ticket.account_id, ticket.object_id, author)
    except Conflict:
        return
    slot = await session.scalar(
        select(ActiveAppTicket).where(
            ActiveAppTicket.account_id == ticket.account_id,
            ActiveAppTicket.object_id == ticket.object_id,
            ActiveAppTicket.contact_id == author,
        )
    )
    if slot is not None:
        slot.ticket_id = ticket.id
        await session.flush()


# --- MON-7 rating --------------------------------------------------------------------------------


async def rate_app_ticket(
    session: AsyncSession, principal: Principal, ticket_id: int, score: int, comment: str | None
) -> AppTicketRead:
    contact_id = _contact(principal)
    ticket = await session.scalar(
        select(Ticket).where(
            Ticket.id == ticket_id, Ticket.account_id == principal.account_id, Ticket.type != "internal"
        )
    )
    if ticket is None or ticket.object_id is None:
        raise NotFound("No such ticket", code="ticket_not_found")
    try:
        _obj, is_admin = await membership(session, principal, ticket.object_id)
    except NotFound:
        raise NotFound("No such ticket", code="ticket_not_found") from None
    author = rules.app_author(ticket)
    if author is not None and author != contact_id:
        raise Forbidden("Only the author of this request may rate it", code="rating_author_only")
    if author is None and not is_admin:
        raise Forbidden("Only an administrator of the object may rate this ticket", code="rating_admin_only")
    # The desk locks the ticket row and refuses a second rating (first come, first served).
    ticket = await desk.rate_ticket(
        session, principal.account_id, ticket.id, Actor("contact", contact_id, principal.name), score, comment
    )
    return (await app_ticket_views(session, [ticket], contact_id, is_admin))[0]


# --- MON-1 monitoring centre ---------------------------------------------------------------------


async def open_monitoring_ticket(
    session: AsyncSession, account_id: int, api_key_id: int, data: MonitoringTicketRequest
) -> MonitoringTicketResult:
    """MON-1: a ticket for the object with this number (applied by the intake pipeline, which
    keeps a repeated request from opening a second one: ``hub.monitoring.intake``)."""
    obj = await session.scalar(
        select(ServiceObject).where(
            ServiceObject.account_id == account_id, ServiceObject.number == data.object_number.strip()
        )
    )
    if obj is None:
        raise NotFound(f"No object numbered {data.object_number!r}", code="object_not_found")
    actor = Actor("monitoring", None, data.operator_name)
    ticket = await desk.create_ticket(
        session,
        account_id,
        actor,
        TicketCreate(
            title=data.title or f"Monitoring centre: object {obj.number}",
            description=data.description,
            priority=data.priority,
            source="monitoring",
            object_id=obj.id,
            company_id=obj.company_id,
            operator_name=data.operator_name,
        ),
        context={"monitoring_ref": data.external_ref, "api_key_id": api_key_id},
    )
    if data.external_ref:
        await desk.record_history(
            session, ticket, actor, "monitoring_ref", {"external_ref": data.external_ref}
        )
    return MonitoringTicketResult(ticket.id, ticket.number, ticket.status, obj.number)
