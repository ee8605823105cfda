"""Payments test world: a tenant with a client (contact + app login), tickets, providers faked."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import respx
from litestar import Litestar
from sqlalchemy import select

from hub.db import Database
from hub.intake.worker import drain_intake
from hub.outbox.models import OutboxMessage
from hub.outbox.worker import drain_outbox
from tests.conftest import PASSWORD, Tenant
from tests.payments.providers import Signed

NOTIFY_HOOK = "https://hooks.tenant.example/notify"


@dataclass
class World:
    app: Litestar
    client: httpx.AsyncClient
    db: Database
    tenant: Tenant
    contact_id: int
    app_headers: dict[str, str]

    @property
    def staff(self) -> dict[str, str]:
        return self.tenant.dispatcher.headers

    async def ticket(self) -> int:
        body = {
            "title": "Extra key cut",
            "description": "Resident asks for a spare key",
            "contact_id": self.contact_id,
        }
        response = await self.client.post("/api/tickets", json=body, headers=self.staff)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    async def flags(self, ticket_id: int) -> dict[str, Any] | None:
        response = await self.client.get(f"/api/tickets/{ticket_id}", headers=self.staff)
        assert response.status_code == 200, response.text
        body = response.json()
        return (body.get("ext_flags") or body.get("flags", {}).get("ext") or {}).get("payment")  # type: ignore[no-any-return]

    async def history_kinds(self, ticket_id: int) -> list[str]:
        events = (await self.get(f"/api/tickets/{ticket_id}/history"))["items"]
        items = events["items"] if isinstance(events, dict) else events
        return [event["kind"] for event in items]

    async def watch_notifications(self) -> None:
        """A webhook notification channel: each notification becomes one real ``notify.webhook``
        outbox row naming its recipients (delivery is to the far side, faked where drained)."""
        body = {"channel": "webhook", "config": {"url": NOTIFY_HOOK, "secret": "whsec_" + "A" * 32}}
        response = await self.client.put(
            "/api/notifications/channels", json=body, headers=self.tenant.admin.headers
        )
        assert response.status_code == 200, response.text

    async def notified(self) -> list[tuple[str, list[tuple[str, int]], str | None]]:
        """(event, recipients, refund status) of every notification queued in the outbox, oldest
        first."""
        async with self.db.sessionmaker() as session:
            rows = await session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.account_id == self.tenant.id, OutboxMessage.topic == "notify.webhook")
                .order_by(OutboxMessage.id)
            )
            return [
                (
                    r.payload["event"],
                    [(k, int(i)) for k, i in r.payload["recipients"]],
                    (r.payload.get("data") or {}).get("status"),
                )
                for r in rows
            ]

    async def price(self, code: str, price: str, *, refundable: bool = True, **extra: Any) -> dict[str, Any]:
        body = {
            "section": "service",
            "code": code,
            "name": f"Service {code}",
            "unit": "pcs",
            "price": price,
            "vat_rate": "20",
            "refundable": refundable,
            **extra,
        }
        response = await self.client.post("/api/price-list", json=body, headers=self.tenant.admin.headers)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def connect(self, provider: str, credentials: dict[str, str], **extra: Any) -> dict[str, Any]:
        body = {"provider": provider, "name": provider, "credentials": credentials, **extra}
        if provider == "yookassa":
            body.setdefault("allowed_networks", ["127.0.0.0/8", "185.71.76.0/27"])
        response = await self.client.post(
            "/api/payment-accounts", json=body, headers=self.tenant.admin.headers
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def invoice(self, ticket_id: int, lines: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/api/invoices", json={"ticket_id": ticket_id, "lines": lines, **extra}, headers=self.staff
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def act(
        self,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        expect: int = 200,
    ) -> dict[str, Any]:
        response = await self.client.post(path, json=body or {}, headers=headers or self.staff)
        assert response.status_code == expect, response.text
        return dict(response.json()) if response.content else {}

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Any:
        response = await self.client.get(path, headers=headers or self.staff)
        assert response.status_code == 200, response.text
        return response.json()

    async def drain(self) -> None:
        await drain_outbox(self.app.state.jobs)

    async def issued(self, ticket_id: int, lines: list[dict[str, Any]]) -> dict[str, Any]:
        """An invoice issued and its payment created at the (faked) provider."""
        invoice = await self.invoice(ticket_id, lines)
        await self.act(f"/api/invoices/{invoice['id']}/issue")
        await self.drain()
        return dict(await self.get(f"/api/invoices/{invoice['id']}"))

    async def callback(
        self,
        account: dict[str, Any],
        signed: Signed,
        *,
        kind: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> httpx.Response:
        path = urlsplit(account["webhook_url"]).path
        if kind:
            path += f"/{kind}"
        answer = await (client or self.client).post(path, content=signed.body, headers=signed.headers)
        await self.apply_received()
        return answer

    async def apply_received(self) -> None:
        """What the intake worker does moments after a callback is acknowledged."""
        await drain_intake(self.app.state.jobs)


@pytest.fixture
async def world(
    app: Litestar, client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> AsyncGenerator[World, None]:
    created = await client.post(
        "/api/contacts",
        json={"name": "Resident Ivanova", "mobile": "+7 916 555 00 11"},
        headers=tenant.admin.headers,
    )
    assert created.status_code == 201, created.text
    contact_id = int(created.json()["id"])
    login = f"resident-{uuid.uuid4().hex[:6]}"
    made = await client.post(
        f"/api/contacts/{contact_id}/app-user",
        json={"login": login, "password": PASSWORD},
        headers=tenant.admin.headers,
    )
    assert made.status_code in (200, 201), made.text
    tokens = await client.post(
        "/api/auth/login",
        json={"account": tenant.slug, "login": login, "password": PASSWORD, "kind": "app_user"},
    )
    assert tokens.status_code == 200, tokens.text
    app_headers = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    yield World(app, client, db, tenant, contact_id, app_headers)


@pytest.fixture
def far() -> Any:
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router
