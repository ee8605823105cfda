"""Telephony fixtures: a tenant with a PBX token, clients with phone numbers, event posters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.conftest import Tenant


@dataclass
class Pbx:
    """A simulated PBX of one tenant: posts events the way a real one would."""

    client: httpx.AsyncClient
    token: str

    async def hub(self, **event: Any) -> httpx.Response:
        return await self.client.post(f"/api/telephony/pbx/events/{self.token}", json=event)

    async def cti_form(self, pairs: list[tuple[str, str]]) -> httpx.Response:
        return await self.client.post(
            f"/api/telephony/cti/{self.token}",
            content=urlencode(pairs),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    async def cti_json(self, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(f"/api/telephony/cti/{self.token}", json=body)


async def connect_pbx(client: httpx.AsyncClient, tenant: Tenant, **settings: Any) -> Pbx:
    response = await client.post("/api/telephony/settings/token", headers=tenant.admin.headers)
    assert response.status_code == 201, response.text
    if settings:
        r = await client.put("/api/telephony/settings", json=settings, headers=tenant.admin.headers)
        assert r.status_code == 200, r.text
    return Pbx(client, response.json()["token"])


@pytest.fixture
async def pbx(client: httpx.AsyncClient, tenant: Tenant) -> Pbx:
    return await connect_pbx(client, tenant)


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
    r = await client.get("/api/telephony/calls", params=params, headers=tenant.dispatcher.headers)
    assert r.status_code == 200, r.text
    return list(r.json())
