"""People and places as tickets see them: what a ticket refers to cannot vanish under it, and
renaming it keeps the ticket search right."""

from __future__ import annotations

import httpx

from tests.conftest import Tenant
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
    assert [e["ref_id"] for e in await desk.get(f"/api/contacts/{contact['id']}/activity")] == [t["id"]]
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
