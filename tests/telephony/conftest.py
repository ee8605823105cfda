"""Telephony fixtures: a tenant with a PBX token, clients with phone numbers, event posters.

A PBX event is acknowledged when stored and applied by the intake worker moments later; the
poster here runs what that worker does right after each post (background jobs do not run in
tests), so a test reads the call as a console would a moment after the PBX sent the event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import select

from hub.db import Database
from hub.intake.worker import drain_intake
from hub.live import LiveEvent, until_logged
from hub.telephony.service import employee_channel
from tests.conftest import Tenant


@dataclass
class Pbx:
    """A simulated PBX of one tenant: posts events the way a real one would."""

    app: Litestar
    client: httpx.AsyncClient
    token: str

    async def post(self, path: str, **request: Any) -> httpx.Response:
        answer = await self.client.post(path, **request)
        await self.apply_received()
        return answer

    async def apply_received(self) -> None:
        """What the intake worker does moments after an event is acknowledged."""
        await drain_intake(self.app.state.jobs)

    async def hub(self, **event: Any) -> httpx.Response:
        return await self.post(f"/api/telephony/pbx/events/{self.token}", json=event)

    async def cti_form(self, pairs: list[tuple[str, str]]) -> httpx.Response:
        return await self.post(
            f"/api/telephony/cti/{self.token}",
            content=urlencode(pairs),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    async def cti_json(self, body: dict[str, Any]) -> httpx.Response:
        return await self.post(f"/api/telephony/cti/{self.token}", json=body)


async def connect_pbx(app: Litestar, client: httpx.AsyncClient, tenant: Tenant, **settings: Any) -> Pbx:
    response = await client.post("/api/telephony/settings/token", headers=tenant.admin.headers)
    assert response.status_code == 201, response.text
    if settings:
        r = await client.put("/api/telephony/settings", json=settings, headers=tenant.admin.headers)
        assert r.status_code == 200, r.text
    return Pbx(app, client, response.json()["token"])


@pytest.fixture
async def pbx(app: Litestar, client: httpx.AsyncClient, tenant: Tenant) -> Pbx:
    return await connect_pbx(app, client, tenant)


@dataclass
class Clients:
    company_id: int
    contact_id: int  # Ivan, of the company, mobile +7 912 345-67-89
    other_contact_id: int  # Olga, private person, shares Ivan's number written differently


@pytest.fixture
async def clients(client: httpx.AsyncClient, tenant: Tenant) -> Clients:
    h = tenant.dispatcher.headers
    company = await client.post(
        "/api/companies", json={"name": "Romashka LLC", "phones": ["+7 (495) 123-45-67"]}, headers=h
    )
    assert company.status_code == 201, company.text
    contact = await client.post(
        "/api/contacts",
        json={"name": "Ivan Petrov", "company_id": company.json()["id"], "mobile": "8 912 345-67-89"},
        headers=h,
    )
    assert contact.status_code == 201, contact.text
    other = await client.post(
        "/api/contacts", json={"name": "Olga Sidorova", "phone": "+7(912)3456789"}, headers=h
    )
    assert other.status_code == 201, other.text
    return Clients(company.json()["id"], contact.json()["id"], other.json()["id"])


async def calls(client: httpx.AsyncClient, tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    return list((await call_page(client, tenant, **params))["items"])


async def call_page(client: httpx.AsyncClient, tenant: Tenant, **params: Any) -> dict[str, Any]:
    r = await client.get("/api/telephony/calls", params=params, headers=tenant.dispatcher.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def call_of(client: httpx.AsyncClient, tenant: Tenant, external_id: str) -> dict[str, Any]:
    """The tenant's call record for the PBX's call id."""
    [call] = [c for c in await calls(client, tenant) if c["external_id"] == external_id]
    return call


async def inbound(client: httpx.AsyncClient, tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    """The tenant's inbound PBX events as its administrators see them, oldest first."""
    r = await client.get(
        "/api/intake/events", params={"source": "telephony", **params}, headers=tenant.admin.headers
    )
    assert r.status_code == 200, r.text
    return list(reversed(r.json()["items"]))


async def popups(db: Database, tenant: Tenant, employee_id: int) -> list[str]:
    """The frame types logged for one employee's console, oldest first."""
    await until_logged(db)  # on PostgreSQL an event gets its log id just after its commit
    async with db.sessionmaker() as session, session.begin():
        rows = await session.scalars(
            select(LiveEvent.event_type)
            .where(LiveEvent.channel == employee_channel(tenant.id, employee_id))
            .order_by(LiveEvent.id)
        )
        return list(rows)
