"""Helpers for the desk tests: people through the real API, tickets through the API or the service."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Tenant


class Desk:
    def __init__(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        self.client = client
        self.tenant = tenant
        self.headers = tenant.dispatcher.headers

    async def post(self, path: str, body: dict[str, Any], status: int = 201, **kw: Any) -> Any:
        response = await self.client.post(path, json=body, headers=kw.get("headers", self.headers))
        assert response.status_code == status, response.text
        return response.json()

    async def get(self, path: str, expect: int = 200, **params: Any) -> Any:
        response = await self.client.get(path, params=params, headers=self.headers)
        assert response.status_code == expect, response.text
        return response.json()

    async def company(self, name: str = "Acme Towers", phones: list[str] | None = None) -> dict[str, Any]:
        return dict(await self.post("/api/companies", {"name": name, "phones": phones or []}))

    async def contact(
        self, name: str = "Ivan Petrov", phone: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, **extra}
        if phone:
            body["phone"] = phone
        return dict(await self.post("/api/contacts", body))

    async def object(
        self, number: str = "OB-1", address: str = "5 Lenina St", **extra: Any
    ) -> dict[str, Any]:
        body = {"number": number, "name": f"Object {number}", "address": address, **extra}
        return dict(await self.post("/api/objects", body))

    async def ticket(self, **fields: Any) -> dict[str, Any]:
        body = {"title": "Alarm panel beeps", **fields}
        return dict(await self.post("/api/tickets", body))

    async def status(self, ticket_id: int, to: str, code: int = 200, **extra: Any) -> dict[str, Any]:
        response = await self.client.post(
            f"/api/tickets/{ticket_id}/status", json={"status": to, **extra}, headers=self.headers
        )
        assert response.status_code == code, response.text
        return dict(response.json())


@pytest.fixture
async def desk(client: httpx.AsyncClient, tenant: Tenant) -> Desk:
    return Desk(client, tenant)
