"""Client cards: a company, a contact, a service object, each with its tickets (DESK-2, DESK-8).

The reads are the people and desk services the API uses; a card of another account's row is the
services' NotFound, shown as the 404 page.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from hub.desk import service as desk
from hub.desk import visibility
from hub.desk.models import ActivityEntry, Ticket
from hub.people import service as people
from hub.people.models import Contact
from hub.web.lookups import Names, by_id, names_for
from hub.web.pages import page
from hub.web.session import WebSession, csrf_checked, signed_in, web_session

__all__ = ["ClientPages"]

CARD_TICKETS = 20


async def _tickets(
    db_session: AsyncSession, session: WebSession, filters: desk.TicketFilters
) -> tuple[list[Ticket], Names]:
    """The newest tickets of a card that the employee may see (its own link opens the full,
    filtered list)."""
    assert session.principal is not None
    account_id = session.principal.account_id
    viewer = await visibility.viewer_of(db_session, session.principal)
    rows, _ = await desk.list_tickets(
        db_session, account_id, filters, limit=CARD_TICKETS, visible=visibility.ticket_clause(viewer)
    )
    return rows, await names_for(db_session, account_id, rows)


async def _activity(db_session: AsyncSession, session: WebSession, contact_id: int) -> list[Any]:
    """The contact's feed without the entries of tickets the employee may not see (DESK-8, 12)."""
    assert session.principal is not None
    viewer = await visibility.viewer_of(db_session, session.principal)
    visible = visibility.ticket_id_clause(viewer, ActivityEntry.ticket_id, unbound_visible=True)
    return await desk.list_activity(
        db_session, session.principal.account_id, contact_id, limit=50, visible=visible
    )


async def _company(db_session: AsyncSession, account_id: int, company_id: int | None) -> Any:
    return await people.get_company(db_session, account_id, company_id) if company_id else None


async def _signed(request: Request[Any, Any, Any]) -> tuple[WebSession, int]:
    session = await web_session(request)
    assert session.principal is not None
    return session, session.principal.account_id


class ClientPages(Controller):
    guards = [signed_in, csrf_checked]

    @get("/companies/{company_id:int}")
    async def company(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, company_id: int
    ) -> Template:
        session, account_id = await _signed(request)
        company = await people.get_company(db_session, account_id, company_id)
        tickets, names = await _tickets(db_session, session, desk.TicketFilters(company_id=company_id))
        return page(
            request,
            session,
            "clients/company.html",
            company=company,
            contacts=(await people.list_contacts(db_session, account_id, company_id=company_id, limit=200))[
                0
            ],
            objects=(await people.list_objects(db_session, account_id, company_id=company_id, limit=200))[0],
            tickets=tickets,
            names=names,
        )

    @get("/contacts/{contact_id:int}")
    async def contact(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, contact_id: int
    ) -> Template:
        session, account_id = await _signed(request)
        contact = await people.get_contact(db_session, account_id, contact_id)
        company = (
            await people.get_company(db_session, account_id, contact.company_id)
            if contact.company_id
            else None
        )
        tickets, names = await _tickets(db_session, session, desk.TicketFilters(contact_id=contact_id))
        return page(
            request,
            session,
            "clients/contact.html",
            contact=contact,
            company=company,
            activity=await _activity(db_session, session, contact_id),
            tickets=tickets,
            names=names,
        )

    @get("/objects/{object_id:int}")
    async def service_object(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, object_id: int
    ) -> Template:
        session, account_id = await _signed(request)
        site = await people.get_object(db_session, account_id, object_id)
        company = (
            await people.get_company(db_session, account_id, site.company_id) if site.company_id else None
        )
        users, _ = await people.list_object_users(db_session, account_id, object_id, limit=200)
        contacts = await by_id(db_session, Contact, account_id, (u.contact_id for u in users))
        tickets, names = await _tickets(db_session, session, desk.TicketFilters(object_id=object_id))
        return page(
            request,
            session,
            "clients/object.html",
            site=site,
            company=company,
            users=users,
            contacts=contacts,
            tickets=tickets,
            names=names,
        )
