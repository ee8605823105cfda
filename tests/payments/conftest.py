"""Payments test world: a tenant with a client (contact + app login), tickets, providers faked."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import respx
from litestar import Litestar

from hub.db import Database
from hub.outbox.worker import drain_outbox
from hub.payments import desk as pay_desk
from tests.conftest import PASSWORD, Tenant
from tests.payments.providers import Signed

HAVE_DESK = importlib.util.find_spec("hub.desk.service") is not None


@dataclass
class FakeDesk:
    """Stands in for hub.desk.service until the desk lands (same calls, in memory)."""

    tickets: dict[int, Any] = field(default_factory=dict)
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    feed: list[tuple[int, str]] = field(default_factory=list)
    notified: list[tuple[str, list[tuple[str, int]]]] = field(default_factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        async def load_ticket(session: Any, account_id: int, ticket_id: int) -> Any:
            ticket = self.tickets.get(ticket_id)
            if ticket is None or ticket.account_id != account_id:
                from hub.errors import NotFound

                raise NotFound("No such ticket", code="ticket_not_found")
            return ticket

        async def history(session: Any, ticket: Any, actor: Any, kind: str, data: dict[str, Any]) -> None:
            self.events.append((ticket.id, kind, data))

        async def activity(
            session: Any,
            account_id: int,
            contact_id: Any,
            kind: str,
            ref_id: int,
            summary: str,
            data: Any = None,
        ) -> None:
            self.feed.append((contact_id, kind))

        async def notify(
            session: Any, account_id: int, event: str, ticket: Any, recipients: Any, data: Any
        ) -> None:
            self.notified.append((event, list(recipients)))

        async def refresh_flags(session: Any, ticket: Any) -> None:
            from sqlalchemy import select

            from hub.payments.models import Invoice, Refund

            invoices = list(await session.scalars(select(Invoice).where(Invoice.ticket_id == ticket.id)))
            refunds = list(await session.scalars(select(Refund).where(Refund.ticket_id == ticket.id)))
            ticket.ext_flags["payment"] = pay_desk._summary(invoices, refunds)

        monkeypatch.setattr(pay_desk, "load_ticket", load_ticket)
        monkeypatch.setattr(pay_desk, "history", history)
        monkeypatch.setattr(pay_desk, "activity", activity)
        monkeypatch.setattr(pay_desk, "notify", notify)
        monkeypatch.setattr(pay_desk, "refresh_flags", refresh_flags)

    def new_ticket(self, account_id: int, contact_id: int | None) -> int:
        ticket_id = len(self.tickets) + 1
        self.tickets[ticket_id] = SimpleNamespace(
            id=ticket_id, account_id=account_id, status="open", contact_id=contact_id, ext_flags={}
        )
        return ticket_id


@dataclass
class World:
    app: Litestar
    client: httpx.AsyncClient
    db: Database
    tenant: Tenant
    contact_id: int
    app_headers: dict[str, str]
    fake: FakeDesk | None

    @property
    def staff(self) -> dict[str, str]:
        return self.tenant.dispatcher.headers

    async def ticket(self) -> int:
        if self.fake is not None:
            return self.fake.new_ticket(self.tenant.id, self.contact_id)
        body = {
            "title": "Extra key cut",
            "description": "Resident asks for a spare key",
            "contact_id": self.contact_id,
        }
        response = await self.client.post("/api/tickets", json=body, headers=self.staff)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    async def flags(self, ticket_id: int) -> dict[str, Any] | None:
        if self.fake is not None:
            return self.fake.tickets[ticket_id].ext_flags.get("payment")  # type: ignore[no-any-return]
        response = await self.client.get(f"/api/tickets/{ticket_id}", headers=self.staff)
        assert response.status_code == 200, response.text
        body = response.json()
        return (body.get("ext_flags") or body.get("flags", {}).get("ext") or {}).get("payment")  # type: ignore[no-any-return]

    async def history_kinds(self, ticket_id: int) -> list[str]:
        if self.fake is not None:
            return [kind for tid, kind, _ in self.fake.events if tid == ticket_id]
        events = await self.get(f"/api/tickets/{ticket_id}/history")
        items = events["items"] if isinstance(events, dict) else events
        return [event["kind"] for event in items]

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
        return await (client or self.client).post(path, content=signed.body, headers=signed.headers)


@pytest.fixture
async def world(
    app: Litestar, client: httpx.AsyncClient, db: Database, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> AsyncGenerator[World, None]:
    fake = None if HAVE_DESK else FakeDesk()
    if fake is not None:
        fake.install(monkeypatch)
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
    yield World(app, client, db, tenant, contact_id, app_headers, fake)


@pytest.fixture
def far() -> Any:
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router
