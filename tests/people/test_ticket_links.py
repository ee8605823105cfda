"""People and places as tickets see them: what a ticket refers to cannot vanish under it, and
renaming it keeps the ticket search right."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from hub.db import Database
from hub.desk import service as desk
from hub.desk.actors import Actor
from hub.desk.schemas import TicketCreate
from hub.errors import HubError
from hub.people import service as people
from tests.conftest import PG_URL, Tenant
from tests.desk.conftest import Desk


async def test_people_and_places_with_tickets_are_not_deleted(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-2 / DESK-8: deleting a company, contact or object that tickets refer to is refused
    with 409 *_in_use; the tickets keep their links and the contact keeps its activity feed.
    Without tickets they delete."""
    desk = Desk(client, tenant)
    company = await desk.company()
    contact = await desk.contact(company_id=company["id"])
    obj = await desk.object(company_id=company["id"])
    t = await desk.ticket(company_id=company["id"], contact_id=contact["id"], object_id=obj["id"])
    for path, code in (
        (f"/api/contacts/{contact['id']}", "contact_in_use"),
        (f"/api/objects/{obj['id']}", "object_in_use"),
        (f"/api/companies/{company['id']}", "company_in_use"),
    ):
        response = await client.delete(path, headers=desk.headers)
        assert response.status_code == 409, response.text
        assert response.json()["code"] == code
    ticket = await desk.get(f"/api/tickets/{t['id']}")
    assert (ticket["company_id"], ticket["contact_id"], ticket["object_id"]) == (
        company["id"],
        contact["id"],
        obj["id"],
    )
    assert [e["ref_id"] for e in (await desk.get(f"/api/contacts/{contact['id']}/activity"))["items"]] == [
        t["id"]
    ]
    spare = await desk.contact(name="No tickets")
    assert (await client.delete(f"/api/contacts/{spare['id']}", headers=desk.headers)).status_code == 204


async def test_renaming_a_client_or_moving_an_object_updates_ticket_search(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-9: the text search finds tickets by the client's and the object's current name and
    address after a contact or company is renamed or an object's address changes."""
    desk = Desk(client, tenant)
    company = await desk.company(name="Old Company")
    contact = await desk.contact(name="Old Contact")
    obj = await desk.object(address="1 Old Street")
    t = await desk.ticket(company_id=company["id"], contact_id=contact["id"], object_id=obj["id"])
    for path, body in (
        (f"/api/companies/{company['id']}", {"name": "Vasilek Holdings"}),
        (f"/api/contacts/{contact['id']}", {"name": "Maria Sidorova"}),
        (f"/api/objects/{obj['id']}", {"address": "9 Tverskaya Street"}),
    ):
        response = await client.patch(path, json=body, headers=desk.headers)
        assert response.status_code == 200, response.text
    for q in ("vasilek", "sidorova", "tverskaya"):
        found = await desk.get("/api/tickets", q=q)
        assert [i["id"] for i in found["items"]] == [t["id"]], q
    for q in ("old company", "old contact", "old street"):
        assert (await desk.get("/api/tickets", q=q))["items"] == [], q


@pytest.mark.skipif(not PG_URL, reason="row locks: PostgreSQL (SQLite has one writer)")
async def test_deleting_a_contact_while_a_ticket_for_it_is_created(
    client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    """DESK-2 / DESK-8: a delete racing a ticket creation for the same contact waits for it and
    then refuses with 409 contact_in_use; the ticket keeps its contact."""
    contact = await Desk(client, tenant).contact(name="Racing")
    actor = Actor("employee", tenant.dispatcher.id, tenant.dispatcher.name)
    async with db.sessionmaker() as creating:
        await creating.begin()
        ticket = await desk.create_ticket(
            creating, tenant.id, actor, TicketCreate(title="Race", contact_id=contact["id"])
        )

        async def delete() -> None:
            async with db.sessionmaker() as deleting, deleting.begin():
                await people.delete_contact(deleting, tenant.id, contact["id"])

        deleting = asyncio.create_task(delete())
        await asyncio.sleep(0.3)
        assert not deleting.done()  # waits for the ticket's transaction
        await creating.commit()
    with pytest.raises(HubError) as refused:
        await deleting
    assert refused.value.code == "contact_in_use"
    async with db.sessionmaker() as session:
        assert (await desk.get_ticket(session, tenant.id, ticket.id)).contact_id == contact["id"]
