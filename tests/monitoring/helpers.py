"""A guarded object with users (two admins, one plain user) signed in to the client app, a
monitoring key, and the dispatcher's desk actions through the desk's service functions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx

from hub.db import Database
from hub.desk import service as desk
from hub.desk.actors import Actor
from hub.desk.models import Ticket
from hub.desk.schemas import TicketCreate
from tests.conftest import Tenant
from tests.notifications.helpers import AppUser, make_app_user

__all__ = [
    "Site",
    "app_ticket",
    "dispatcher_ticket",
    "make_site",
    "resolve",
    "set_status",
    "staff_comment",
    "update",
]


@dataclass
class Site:
    object_id: int
    number: str
    admin: AppUser
    admin2: AppUser
    user: AppUser
    monitoring: dict[str, str]


async def make_site(
    client: httpx.AsyncClient, tenant: Tenant, *, phone: str | None = "+7 495 700-00-01"
) -> Site:
    if phone:
        changed = await client.patch("/api/account", json={"phone": phone}, headers=tenant.admin.headers)
        assert changed.status_code == 200, changed.text
    number = f"OBJ-{uuid.uuid4().hex[:5]}"
    made = await client.post(
        "/api/objects",
        json={"number": number, "name": "Warehouse", "address": "1 Guarded St"},
        headers=tenant.admin.headers,
    )
    assert made.status_code == 201, made.text
    object_id = made.json()["id"]
    people = {}
    for name, role in (("admin", "admin"), ("admin2", "admin"), ("user", "user")):
        person = await make_app_user(client, tenant, f"{name.title()} of {number}")
        joined = await client.post(
            f"/api/objects/{object_id}/users",
            json={"contact_id": person.contact_id, "role": role},
            headers=tenant.admin.headers,
        )
        assert joined.status_code == 201, joined.text
        people[name] = person
    key = await client.post(
        "/api/api-keys",
        json={"name": "Monitoring centre", "kind": "monitoring"},
        headers=tenant.admin.headers,
    )
    assert key.status_code == 201, key.text
    return Site(
        object_id, number, people["admin"], people["admin2"], people["user"], {"X-Api-Key": key.json()["key"]}
    )


def _dispatcher(tenant: Tenant) -> Actor:
    return Actor("employee", tenant.dispatcher.id, tenant.dispatcher.name)


async def dispatcher_ticket(db: Database, tenant: Tenant, site: Site, **fields: Any) -> int:
    """A ticket a dispatcher typed in (source: incoming call)."""
    data = TicketCreate(
        title=fields.pop("title", "Siren does not work"),
        description=fields.pop("description", "Caller says the siren is silent; code 4411 on the panel"),
        source=fields.pop("source", "incoming_call"),
        object_id=site.object_id,
        **fields,
    )
    async with db.sessionmaker() as session, session.begin():
        ticket = await desk.create_ticket(session, tenant.id, _dispatcher(tenant), data)
        return ticket.id


async def monitoring_ticket(client: httpx.AsyncClient, site: Site) -> int:
    """A ticket the monitoring centre opens for the site's object (its description is private)."""
    made = await client.post(
        "/api/monitoring/tickets",
        json={
            "object_number": site.number,
            "operator_name": "Op",
            "description": "Sensor 5 offline, secret code 9",
        },
        headers=site.monitoring,
    )
    assert made.status_code == 201, made.text
    return int(made.json()["ticket_id"])


async def update(db: Database, tenant: Tenant, ticket_id: int, changes: dict[str, Any]) -> None:
    async with db.sessionmaker() as session, session.begin():
        await desk.update_ticket(session, tenant.id, ticket_id, _dispatcher(tenant), changes)


async def set_status(db: Database, tenant: Tenant, ticket_id: int, status: str, **kwargs: Any) -> None:
    async with db.sessionmaker() as session, session.begin():
        await desk.change_status(session, tenant.id, ticket_id, _dispatcher(tenant), status, **kwargs)


async def resolve(db: Database, tenant: Tenant, ticket_id: int) -> None:
    """The engineer is assigned with a repair date and finishes the job."""
    async with db.sessionmaker() as session:
        ticket = await session.get(Ticket, ticket_id)
        assert ticket is not None
        assigned = ticket.responsible_id
    if assigned is None:
        await update(
            db, tenant, ticket_id, {"responsible_id": tenant.engineer.id, "repair_date": date(2026, 12, 1)}
        )
    await set_status(db, tenant, ticket_id, "in_progress")
    await set_status(db, tenant, ticket_id, "resolved")


async def app_ticket(client: httpx.AsyncClient, site: Site, who: AppUser, text: str = "Panel beeps") -> int:
    """A service request the user sends from the app (MON-3)."""
    made = await client.post(
        f"/api/app/objects/{site.object_id}/tickets", json={"description": text}, headers=who.headers
    )
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


async def staff_comment(
    client: httpx.AsyncClient, tenant: Tenant, ticket_id: int, body: str, **kw: Any
) -> int:
    """A dispatcher's comment through the desk API (``public=True`` for the client to see)."""
    made = await client.post(
        f"/api/tickets/{ticket_id}/comments", json={"body": body, **kw}, headers=tenant.dispatcher.headers
    )
    assert made.status_code == 201, made.text
    return int(made.json()["id"])
