"""DESK-10: the two events seeds 003 and 004 add: "ticket registered" to the client, and a
change of responsible to the new responsible and the observers."""

from __future__ import annotations

import httpx
from litestar import Litestar

from tests.conftest import Tenant
from tests.notifications.helpers import configure, messages

_SMTP = {"host": "127.0.0.1", "port": 25, "sender": "desk@alpha.test", "security": "none"}


async def _told(app: Litestar, event: str) -> list[str]:
    return [
        m.payload["to"] for m in await messages(app.state.db, "notify.email") if m.payload["event"] == event
    ]


async def test_desk_10_client_is_told_the_ticket_was_registered(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10, seed 004: the ticket's client gets "ticket registered" (with its number); an
    internal ticket tells no client (DESK-3)."""
    await configure(client, tenant, "email", _SMTP)
    contact = await client.post(
        "/api/contacts", json={"name": "Olga", "email": "olga@client.test"}, headers=tenant.admin.headers
    )
    contact_id = contact.json()["id"]
    made = await client.post(
        "/api/tickets", json={"title": "Door", "contact_id": contact_id}, headers=tenant.dispatcher.headers
    )
    assert made.status_code == 201
    registered = [
        m.payload
        for m in await messages(app.state.db, "notify.email")
        if m.payload["event"] == "ticket_registered"
    ]
    assert [(p["to"], p["ticket_number"]) for p in registered] == [
        ("olga@client.test", made.json()["number"])
    ]
    assert "registered" in registered[0]["text"]
    await client.post(
        "/api/tickets",
        json={"title": "Staff", "contact_id": contact_id, "type": "internal"},
        headers=tenant.dispatcher.headers,
    )
    assert await _told(app, "ticket_registered") == ["olga@client.test"]


async def test_desk_10_change_of_responsible_goes_to_the_new_one_and_the_observers(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10, seed 003: assigning or changing the responsible tells the new responsible and the
    observers, not the employee who made the change; other edits tell nobody of it."""
    await configure(client, tenant, "email", _SMTP)
    made = await client.post(
        "/api/tickets",
        json={"title": "Gate", "observer_ids": [tenant.admin.id]},
        headers=tenant.dispatcher.headers,
    )
    path = f"/api/tickets/{made.json()['id']}"
    await client.patch(path, json={"title": "Gate sticks"}, headers=tenant.dispatcher.headers)
    assert await _told(app, "responsible_changed") == []
    await client.patch(path, json={"responsible_id": tenant.engineer.id}, headers=tenant.dispatcher.headers)
    assert sorted(await _told(app, "responsible_changed")) == sorted(
        [tenant.engineer.email, tenant.admin.email]
    )
    # The administrator hands it to the dispatcher: the dispatcher is told, the admin is not.
    await client.patch(path, json={"responsible_id": tenant.dispatcher.id}, headers=tenant.admin.headers)
    assert (await _told(app, "responsible_changed"))[2:] == [tenant.dispatcher.email]
