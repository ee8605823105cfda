"""What the tenancy walker (tests/test_isolation.py, DESK-1) needs to know about every route.

When you add a route:

- with a path parameter (``{invoice_id:int}``): register a factory for that parameter's NAME with
  ``@factory("invoice_id")``. It creates the object in the given tenant through the real API or the
  services and returns the value to put in the URL. Put ``world.secret(tenant)`` into a visible text
  field (name, title, description, ...) so list checks can see a leak. Factories may ask for other
  parameters with ``await world.id_of(tenant, "ticket_id")`` (cached per tenant, so a nested route
  gets consistent ids);
- that takes a JSON body the walker cannot guess (the walker fills the required fields from the
  OpenAPI schema and puts the caller's own ids into fields named like a factory): add a sample to
  ``BODIES[("POST", "/api/path/{param}")]``;
- excluded from auth (webhooks, PBX URL token, hub-to-hub): register a check with
  ``@excluded_check("/path/{token}")`` proving that account A's token/key/signature cannot reach
  account B's data;
- that streams forever (SSE): add its path to ``STREAMING``.

The walker fails, naming the route, when any of these is missing.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from litestar import Litestar
from sqlalchemy import select, update

from hub.accounts.models import Account
from hub.db import Database
from hub.intake.worker import drain_intake
from hub.settings import Settings
from tests.conftest import PASSWORD, Tenant

__all__ = [
    "BODIES",
    "EXCLUDED_CHECKS",
    "FACTORIES",
    "PUBLIC_PATHS",
    "QUERIES",
    "STREAMING",
    "World",
    "excluded_check",
    "factory",
]


@dataclass
class World:
    """Two tenants, the app, and the objects made so far (per tenant and parameter name)."""

    app: Litestar
    client: httpx.AsyncClient
    db: Database
    settings: Settings
    a: Tenant
    b: Tenant
    made: dict[tuple[int, str], Any] = field(default_factory=dict)
    # Extra principals per tenant: "app_user", "pbx", "monitoring", "script" -> headers.
    principals: dict[tuple[int, str], dict[str, str]] = field(default_factory=dict)

    @staticmethod
    def secret(tenant: Tenant) -> str:
        """A marker that only this tenant's rows carry; it must never show up in another's responses."""
        return f"isolation-secret-{tenant.slug}-x"

    async def id_of(self, tenant: Tenant, name: str) -> Any:
        key = (tenant.id, name)
        if key not in self.made:
            make = FACTORIES.get(name)
            if make is None:
                raise LookupError(f"no isolation factory for path parameter {name!r}")
            self.made[key] = await make(self, tenant)
        return self.made[key]

    async def post(
        self, tenant: Tenant, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Any:
        response = await self.client.post(path, json=body, headers=headers or tenant.admin.headers)
        assert response.status_code in (200, 201), f"{path}: {response.status_code} {response.text}"
        return response.json()


Factory = Callable[[World, Tenant], Awaitable[Any]]
ExcludedCheck = Callable[[World], Awaitable[None]]

FACTORIES: dict[str, Factory] = {}
EXCLUDED_CHECKS: dict[str, ExcludedCheck] = {}
BODIES: dict[tuple[str, str], Callable[[World, Tenant], Awaitable[dict[str, Any]]]] = {}
# Routes outside the auth middleware by path (system endpoints, docs, metrics).
PUBLIC_PATHS = ("/health", "/ready", "/metrics", "/docs", "/console", "/static")
STREAMING: set[str] = set()
# Query strings for list routes whose required parameters the walker cannot guess usefully.
QUERIES: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/api/phones/match"): {"number": "8 (495) 100-00-01"},
}


def factory(name: str) -> Callable[[Factory], Factory]:
    def register(fn: Factory) -> Factory:
        FACTORIES[name] = fn
        return fn

    return register


def excluded_check(path: str) -> Callable[[ExcludedCheck], ExcludedCheck]:
    def register(fn: ExcludedCheck) -> ExcludedCheck:
        EXCLUDED_CHECKS[path] = fn
        return fn

    return register


# --- accounts ----------------------------------------------------------------------------------


@factory("employee_id")
async def _employee(w: World, t: Tenant) -> int:
    body = {
        "name": f"Employee {w.secret(t)}",
        "email": f"iso-{uuid.uuid4().hex[:8]}@{t.slug}.test",
        "role": "engineer",
        "password": PASSWORD,
        "extension": "555",
    }
    return int((await w.post(t, "/api/employees", body))["id"])


@factory("grant_id")
async def _permission_grant(w: World, t: Tenant) -> int:
    """A grant of the refund permission to one employee (DESK-12, PAY-7)."""
    employee_id = await w.id_of(t, "employee_id")
    body = {"permission": "refunds", "employee_id": employee_id}
    return int((await w.post(t, "/api/permissions/grants", body))["id"])


@factory("key_id")
async def _api_key(w: World, t: Tenant) -> int:
    created = await w.post(t, "/api/api-keys", {"name": f"Key {w.secret(t)}", "kind": "script"})
    return int(created["api_key"]["id"])


# --- outbox ------------------------------------------------------------------------------------


@factory("message_id")
async def _outbox_message(w: World, t: Tenant) -> int:
    from hub.outbox import enqueue
    from hub.outbox.models import OutboxMessage

    key = f"isolation-{uuid.uuid4().hex}"
    async with w.db.sessionmaker() as session, session.begin():
        await enqueue(
            session,
            account_id=t.id,
            topic="isolation.test",
            payload={"note": w.secret(t)},
            idempotency_key=key,
        )
    async with w.db.sessionmaker() as session:
        message_id = await session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key)
        )
    assert message_id is not None
    return int(message_id)


@factory("event_id")
async def _intake_event(w: World, t: Tenant) -> int:
    """An inbound event of the tenant's, with its marker in the body."""
    from hub.intake import Received, store

    async with w.db.sessionmaker() as session, session.begin():
        event_id = await store(
            session,
            Received(source="isolation.test", body=w.secret(t), account_id=t.id, dedupe_key=uuid.uuid4().hex),
            state="failed",
        )
    assert event_id is not None
    return int(event_id)


# --- people (DESK-2) ---------------------------------------------------------------------------


@factory("company_id")
async def _company(w: World, t: Tenant) -> int:
    body = {"name": f"Company {w.secret(t)}", "phones": ["+7 495 100 00 01"], "email_domain": "iso.example"}
    return int((await w.post(t, "/api/companies", body))["id"])


@factory("contact_id")
async def _contact(w: World, t: Tenant) -> int:
    company_id = await w.id_of(t, "company_id")
    body = {"name": f"Contact {w.secret(t)}", "company_id": company_id, "mobile": "+7 916 100 00 02"}
    contact_id = int((await w.post(t, "/api/contacts", body))["id"])
    login = f"iso-{uuid.uuid4().hex[:8]}"
    await w.post(t, f"/api/contacts/{contact_id}/app-user", {"login": login, "password": PASSWORD})
    return contact_id


@factory("object_id")
async def _object(w: World, t: Tenant) -> int:
    company_id = await w.id_of(t, "company_id")
    body = {
        "number": f"ISO-{uuid.uuid4().hex[:6]}",
        "name": f"Object {w.secret(t)}",
        "address": f"Street {w.secret(t)}",
        "company_id": company_id,
    }
    return int((await w.post(t, "/api/objects", body))["id"])


@factory("alarm_account_id")
async def _alarm_account(w: World, t: Tenant) -> int:
    """A panel account number on the tenant's object (MON-8)."""
    object_id = await w.id_of(t, "object_id")
    number = uuid.uuid4().hex[:12].upper()
    return int((await w.post(t, f"/api/objects/{object_id}/alarm-accounts", {"number": number}))["id"])


@factory("object_user_id")
async def _object_user(w: World, t: Tenant) -> int:
    object_id = await w.id_of(t, "object_id")
    contact_id = await w.id_of(t, "contact_id")
    created = await w.post(t, f"/api/objects/{object_id}/users", {"contact_id": contact_id, "role": "admin"})
    return int(created["id"])


# --- routes outside the auth middleware --------------------------------------------------------


# --- desk --------------------------------------------------------------------------------------


@factory("ticket_id")
async def _ticket(w: World, t: Tenant) -> int:
    """A ticket with a contact, an object, a comment, history and an activity entry."""
    body = {
        "title": f"Ticket {w.secret(t)}",
        "description": f"Description {w.secret(t)}",
        "contact_id": await w.id_of(t, "contact_id"),
        "object_id": await w.id_of(t, "object_id"),
        "responsible_id": t.engineer.id,
    }
    ticket_id = int((await w.post(t, "/api/tickets", body))["id"])
    await w.post(t, f"/api/tickets/{ticket_id}/comments", {"body": f"Comment {w.secret(t)}", "public": True})
    return ticket_id


@factory("ticket_number")
async def _ticket_number(w: World, t: Tenant) -> int:
    """The number of a ticket of ``t`` that the other account's numbering has not reached (numbers
    count per account, so the same small number is the other account's own ticket)."""
    async with w.db.sessionmaker() as session, session.begin():
        await session.execute(
            update(Account).where(Account.id == t.id).values(next_ticket_number=100_000 + t.id)
        )
    return int((await w.post(t, "/api/tickets", {"title": f"Numbered {w.secret(t)}"}))["number"])


@factory("file_id")
async def _ticket_file(w: World, t: Tenant) -> int:
    ticket_id = await w.id_of(t, "ticket_id")
    response = await w.client.post(
        f"/api/tickets/{ticket_id}/files",
        files={"file": (f"{w.secret(t)}.txt", w.secret(t).encode(), "text/plain")},
        headers=t.admin.headers,
    )
    assert response.status_code == 201, response.text
    return int(response.json()[0]["id"])


@factory("sla_rule_id")
async def _sla_rule(w: World, t: Tenant) -> int:
    """DESK-5: an SLA rule about the tenant's own object."""
    body = {"name": f"Rule {w.secret(t)}", "object_id": await w.id_of(t, "object_id"), "reaction_minutes": 30}
    return int((await w.post(t, "/api/sla/rules", body))["id"])


@factory("sla_holiday_id")
async def _sla_holiday(w: World, t: Tenant) -> int:
    body = {"day": "2030-01-07", "name": f"Holiday {w.secret(t)}"}
    return int((await w.post(t, "/api/sla/holidays", body))["id"])


@excluded_check("/api/auth/login")
async def _login_is_per_account(w: World) -> None:
    """A's employee credentials do not open B's account, and say nothing about B's users."""
    own = await w.client.post(
        "/api/auth/login", json={"account": w.a.slug, "login": w.a.admin.email, "password": PASSWORD}
    )
    assert own.status_code == 200
    for login in (w.a.admin.email, w.b.admin.email):
        cross = await w.client.post(
            "/api/auth/login", json={"account": w.b.slug, "login": login, "password": PASSWORD + "?"}
        )
        assert cross.status_code == 401, cross.text
    cross = await w.client.post(
        "/api/auth/login", json={"account": w.b.slug, "login": w.a.admin.email, "password": PASSWORD}
    )
    assert cross.status_code == 401, cross.text


@excluded_check("/api/auth/refresh")
async def _refresh_stays_in_account(w: World) -> None:
    """A refresh token of account A only ever yields tokens for A's own principal."""
    tokens = await w.client.post(
        "/api/auth/login", json={"account": w.a.slug, "login": w.a.dispatcher.email, "password": PASSWORD}
    )
    refreshed = await w.client.post(
        "/api/auth/refresh", json={"refresh_token": tokens.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200
    me = await w.client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    )
    assert me.json()["account_id"] == w.a.id and me.json()["id"] == w.a.dispatcher.id


# --- telephony (TEL) ---------------------------------------------------------------------------


async def _pbx_token(w: World, t: Tenant) -> str:
    """The tenant's PBX token (issued once per world)."""
    key = (t.id, "_pbx_token")
    if key not in w.made:
        issued = await w.client.post("/api/telephony/settings/token", headers=t.admin.headers)
        assert issued.status_code == 201, issued.text
        w.made[key] = issued.json()["token"]
    return str(w.made[key])


@factory("call_id")
async def _call(w: World, t: Tenant) -> int:
    token = await _pbx_token(w, t)
    event = {
        "event": "ringing",
        "call_id": f"iso-{uuid.uuid4().hex[:12]}",
        "from_number": w.secret(t),
        "extensions": ["101"],
        "queue": w.secret(t),
    }
    response = await w.client.post(f"/api/telephony/pbx/events/{token}", json=event)
    assert response.status_code == 200, response.text
    await drain_intake(w.app.state.jobs)  # what the intake worker does moments later
    from hub.telephony.models import Call

    async with w.db.sessionmaker() as session:
        call_id = await session.scalar(
            select(Call.id).where(Call.account_id == t.id, Call.external_id == event["call_id"])
        )
    assert call_id is not None, "the ringing was not applied"
    return int(call_id)


async def _own_ticket_body(w: World, t: Tenant) -> dict[str, Any]:
    ticket_id = await w.id_of(t, "ticket_id") if "ticket_id" in FACTORIES else 1
    return {"ticket_id": ticket_id}


async def _originate_body(w: World, t: Tenant) -> dict[str, Any]:
    return {"number": "+7 916 100 00 02", "contact_id": await w.id_of(t, "contact_id")}


BODIES[("POST", "/api/telephony/calls/{call_id}/tickets")] = _own_ticket_body
BODIES[("POST", "/api/telephony/originate")] = _originate_body
QUERIES[("GET", "/api/telephony/match")] = {"number": "+7 916 100 00 02"}
STREAMING.add("/api/telephony/stream")


async def _pbx_token_stays_in_account(
    w: World, post: Callable[[str, dict[str, Any]], Awaitable[httpx.Response]]
) -> None:
    """A's PBX token, even naming B's call id, only ever touches A's calls; B's call is unchanged."""
    from hub.telephony.models import Call

    b_call = await w.id_of(w.b, "call_id")
    async with w.db.sessionmaker() as session:
        external_id = await session.scalar(select(Call.external_id).where(Call.id == b_call))
    before = await w.client.get(f"/api/telephony/calls/{b_call}", headers=w.b.admin.headers)
    response = await post(external_id or "", {"answered_by": "101"})
    assert response.status_code == 200, response.text
    assert w.secret(w.b) not in response.text
    await drain_intake(w.app.state.jobs)
    after = await w.client.get(f"/api/telephony/calls/{b_call}", headers=w.b.admin.headers)
    assert after.json() == before.json()
    async with w.db.sessionmaker() as session:
        owners = set(await session.scalars(select(Call.account_id).where(Call.external_id == external_id)))
    assert owners == {w.a.id, w.b.id}  # A got its own record; B's was not touched
    for bad in ("pbx_" + "x" * 43, ""):
        refused = await w.client.post(
            f"/api/telephony/pbx/events/{bad}x", json={"event": "hangup", "call_id": external_id}
        )
        assert refused.status_code == 401


@excluded_check("/api/telephony/pbx/events/{token}")
async def _pbx_url_token(w: World) -> None:
    token = await _pbx_token(w, w.a)

    async def post(call_id: str, _: dict[str, Any]) -> httpx.Response:
        return await w.client.post(
            f"/api/telephony/pbx/events/{token}",
            json={"event": "answered", "call_id": call_id, "extension": "101"},
        )

    await _pbx_token_stays_in_account(w, post)


@excluded_check("/api/telephony/pbx/events")
async def _pbx_header_token(w: World) -> None:
    token = await _pbx_token(w, w.a)

    async def post(call_id: str, _: dict[str, Any]) -> httpx.Response:
        return await w.client.post(
            "/api/telephony/pbx/events",
            json={"event": "hangup", "call_id": call_id, "cause": "normalClearing"},
            headers={"X-PBX-Token": token},
        )

    await _pbx_token_stays_in_account(w, post)


@excluded_check("/api/telephony/cti/{token}")
async def _cti_url_token(w: World) -> None:
    token = await _pbx_token(w, w.a)

    async def post(call_id: str, _: dict[str, Any]) -> httpx.Response:
        return await w.client.post(
            f"/api/telephony/cti/{token}", data={"event": "answer", "callId": call_id, "direction": "in"}
        )

    await _pbx_token_stays_in_account(w, post)


@excluded_check("/api/telephony/cti")
async def _cti_header_token(w: World) -> None:
    token = await _pbx_token(w, w.a)

    async def post(call_id: str, _: dict[str, Any]) -> httpx.Response:
        return await w.client.post(
            "/api/telephony/cti",
            data={"event": "hangup", "callId": call_id, "direction": "in", "cause": "cancel"},
            headers={"X-PBX-Token": token},
        )

    await _pbx_token_stays_in_account(w, post)


# --- partner exchange (EX) ---------------------------------------------------------------------


@factory("pairing_key_id")
async def _pairing_key(w: World, t: Tenant) -> int:
    issued = await w.post(t, "/api/exchange/pairing-keys", {"label": f"Key {w.secret(t)}"})
    return int(issued["pairing_key"]["id"])


@factory("connection_id")
async def _exchange_connection(w: World, t: Tenant) -> int:
    """A connection of ``t`` with a partner on another hub (the partner hub itself is not needed)."""
    from hub.exchange.crypto import new_keypair
    from hub.exchange.models import Connection

    private, public = new_keypair()
    _, partner_public = new_keypair()
    async with w.db.sessionmaker() as session, session.begin():
        connection = Connection(
            account_id=t.id,
            uuid=str(uuid.uuid4()),
            side="issuer",
            partner_name=f"Partner {w.secret(t)}",
            partner_hub_url="https://partner.example",
            partner_public_key=partner_public,
            private_key=private,
            public_key=public,
        )
        session.add(connection)
        await session.flush()
        return int(connection.id)


async def _exchange_db_snapshot(w: World) -> list[Any]:
    from sqlalchemy import text

    async with w.db.sessionmaker() as session:
        rows: list[Any] = []
        for table in ("exchange_connections", "exchange_pairing_keys", "exchange_inbound_messages"):
            rows += [
                tuple(r) for r in (await session.execute(text(f"SELECT * FROM {table} ORDER BY id"))).all()
            ]
        return rows


@excluded_check("/api/exchange/handshake")
async def _pairing_handshake_needs_the_secret(w: World) -> None:
    """Knowing B's pairing key id (kid) but signing with another secret (e.g. A's) connects nothing."""
    import msgspec

    from contracts.exchange import ConnectRequest
    from hub.db import utcnow
    from hub.exchange import crypto
    from hub.exchange.models import PairingKeyRecord

    await w.id_of(w.b, "pairing_key_id")
    async with w.db.sessionmaker() as session:
        kid = await session.scalar(select(PairingKeyRecord.kid).where(PairingKeyRecord.account_id == w.b.id))
    assert kid is not None
    before = await _exchange_db_snapshot(w)
    _, public = crypto.new_keypair()
    request = ConnectRequest(
        kid=kid,
        conn=str(uuid.uuid4()),
        hub="https://attacker.example",
        name="A",
        public_key=public,
        nonce="n" * 20,
        iat=utcnow(),
    )
    private_a, _ = crypto.pairing_keypair("a-secret-of-account-a")
    token = crypto.sign(private_a, kid, msgspec.json.encode(request))
    response = await w.client.post("/api/exchange/handshake", json={"jws": token})
    assert response.status_code == 401 and response.json()["code"] == "bad_signature"
    assert await _exchange_db_snapshot(w) == before


@excluded_check("/api/exchange/inbox")
async def _inbox_needs_the_partner_key(w: World) -> None:
    """A message naming B's connection but signed with A's connection key is refused, changing nothing."""
    from hub.exchange.delivery import sign_envelope
    from hub.exchange.models import Connection

    a_conn_id = await w.id_of(w.a, "connection_id")
    b_conn_id = await w.id_of(w.b, "connection_id")
    async with w.db.sessionmaker() as session:
        a_conn = await session.get(Connection, a_conn_id)
        b_conn = await session.get(Connection, b_conn_id)
    assert a_conn is not None and b_conn is not None
    before = await _exchange_db_snapshot(w)
    envelope = {
        "v": 1,
        "id": str(uuid.uuid4()),
        "conn": b_conn.uuid,
        "sender": "acceptor",
        "body": {"kind": "connection.ended", "by_name": "A"},
    }
    # A's key, but B's connection named in the envelope and in the kid.
    a_conn.uuid, a_conn.side = b_conn.uuid, "acceptor"
    response = await w.client.post("/api/exchange/inbox", json={"jws": sign_envelope(a_conn, envelope)})
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "bad_signature"
    assert await _exchange_db_snapshot(w) == before


# --- payments (PAY) ----------------------------------------------------------------------------


@factory("price_item_id")
async def _price_item(w: World, t: Tenant) -> int:
    body = {
        "section": "service",
        "code": f"ISO-{uuid.uuid4().hex[:6]}",
        "name": f"Service {w.secret(t)}",
        "unit": "pcs",
        "price": "100.00",
        "refundable": True,
    }
    return int((await w.post(t, "/api/price-list", body))["id"])


async def _standard_account(w: World, t: Tenant) -> dict[str, Any]:
    key = (t.id, "_standard_account")
    if key not in w.made:
        body = {
            "provider": "standard",
            "name": f"Gateway {w.secret(t)}",
            "credentials": {
                "webhook_secret": f"whsec_{uuid.uuid4().hex}",
                "checkout_url": "https://pay.example.test/{ref}",
            },
        }
        w.made[key] = await w.post(t, "/api/payment-accounts", body)
    return dict(w.made[key])


@factory("payment_account_id")
async def _payment_account(w: World, t: Tenant) -> int:
    return int((await _standard_account(w, t))["id"])


@factory("invoice_id")
async def _invoice(w: World, t: Tenant) -> int:
    """An issued invoice (made in the database: the walker needs no desk ticket for it)."""
    from decimal import Decimal

    from hub.payments.models import Invoice, InvoiceLine

    account = await _standard_account(w, t)
    ticket_id = await w.id_of(t, "ticket_id") if "ticket_id" in FACTORIES else 1
    async with w.db.sessionmaker() as session, session.begin():
        invoice = Invoice(
            account_id=t.id,
            ticket_id=ticket_id,
            status="paid",
            currency="RUB",
            total=Decimal("100"),
            paid_amount=Decimal("100"),
            refunded_amount=Decimal(0),
            reserved_amount=Decimal(0),
            payment_account_id=account["id"],
            provider="standard",
            payment_ref=f"iso-{uuid.uuid4().hex[:8]}",
            issue_count=1,
        )
        session.add(invoice)
        await session.flush()
        session.add(
            InvoiceLine(
                invoice_id=invoice.id,
                account_id=t.id,
                code="ISO",
                name=f"Line {w.secret(t)}",
                unit="pcs",
                unit_price=Decimal("100"),
                quantity=Decimal(1),
                discount_percent=Decimal(0),
                refundable=True,
                amount=Decimal("100"),
                refunded_amount=Decimal(0),
                position=0,
            )
        )
        return int(invoice.id)


@factory("line_id")
async def _invoice_line(w: World, t: Tenant) -> int:
    from hub.payments.models import InvoiceLine

    invoice_id = await w.id_of(t, "invoice_id")
    async with w.db.sessionmaker() as session:
        line_id = await session.scalar(select(InvoiceLine.id).where(InvoiceLine.invoice_id == invoice_id))
    return int(line_id or 0)


@factory("refund_id")
async def _refund(w: World, t: Tenant) -> int:
    from decimal import Decimal

    from hub.payments.models import Refund

    invoice_id = await w.id_of(t, "invoice_id")
    async with w.db.sessionmaker() as session, session.begin():
        refund = Refund(
            account_id=t.id,
            invoice_id=invoice_id,
            ticket_id=await w.id_of(t, "ticket_id"),
            status="requested",
            full=True,
            amount=Decimal("10"),
            currency="RUB",
            lines=[],
            reason=f"Refund {w.secret(t)}",
            requested_by_kind="employee",
        )
        session.add(refund)
        await session.flush()
        return int(refund.id)


async def _refund_body(w: World, t: Tenant) -> dict[str, Any]:
    return {"reason": "isolation", "full": True}


BODIES[("POST", "/api/invoices/{invoice_id}/refunds")] = _refund_body
BODIES[("POST", "/api/refunds/{refund_id}/reject")] = lambda w, t: _reason_body()


async def _reason_body() -> dict[str, Any]:
    return {"reason": "isolation"}


async def _payments_webhook_check(w: World, kind: str | None) -> None:
    """A's callback endpoint and secret, even naming B's invoice, never touch B's invoice; A's
    signature does not open B's endpoint."""
    import json
    import time
    from urllib.parse import urlsplit

    from hub.connectors.payments import standard
    from hub.payments.models import Invoice

    b_invoice = await w.id_of(w.b, "invoice_id")
    a_account = await _standard_account(w, w.a)
    b_account = await _standard_account(w, w.b)
    async with w.db.sessionmaker() as session:
        invoice = await session.get(Invoice, b_invoice)
        assert invoice is not None
        b_ref, before = invoice.payment_ref, (invoice.status, invoice.refunded_amount)
    async with w.db.sessionmaker() as session:
        from hub.payments.models import PaymentAccount

        a_secret = (await session.get(PaymentAccount, a_account["id"])).credentials["webhook_secret"]  # type: ignore[union-attr]
    body = json.dumps(
        {
            "type": "refund.succeeded",
            "timestamp": "2026-11-23T00:00:00Z",
            "data": {"invoice_ref": b_ref, "amount": "10.00", "currency": "RUB", "refund_id": "x"},
        }
    ).encode()
    suffix = f"/{kind}" if kind else ""
    # A's endpoint acknowledges what A's secret signed (204) and its worker then finds no such
    # invoice of A's; B's endpoint refuses A's signature at the door (400).
    for target, expected in ((a_account, 204), (b_account, 400)):
        msg_id, ts = f"msg_{uuid.uuid4().hex}", int(time.time())
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": standard.sign(a_secret, msg_id, ts, body),
            "content-type": "application/json",
        }
        path = urlsplit(target["webhook_url"]).path + suffix
        response = await w.client.post(path, content=body, headers=headers)
        if kind:  # the kind suffix exists for CloudPayments only
            assert response.status_code == 404, response.text
            continue
        assert response.status_code == expected, response.text
        assert w.secret(w.b) not in response.text
    await drain_intake(w.app.state.jobs)
    async with w.db.sessionmaker() as session:
        invoice = await session.get(Invoice, b_invoice)
        assert invoice is not None and (invoice.status, invoice.refunded_amount) == before


@excluded_check("/api/webhooks/payments/{provider}/{key}")
async def _payments_webhook(w: World) -> None:
    await _payments_webhook_check(w, None)


@excluded_check("/api/webhooks/payments/{provider}/{key}/{kind}")
async def _payments_webhook_kind(w: World) -> None:
    await _payments_webhook_check(w, "refund")


# --- notifications (DESK-10) -------------------------------------------------------------------


@factory("point_id")
async def _contact_point(w: World, t: Tenant) -> int:
    contact_id = await w.id_of(t, "contact_id")
    body = {"owner_kind": "contact", "owner_id": contact_id, "channel": "telegram", "address": w.secret(t)}
    return int((await w.post(t, "/api/notifications/contact-points", body))["id"])


async def _app_user_headers(w: World, t: Tenant) -> dict[str, str]:
    """A signed-in client-app user of the tenant (one per world), attached to its object as admin."""
    key = (t.id, "_app_user_headers")
    if key not in w.made:
        contact = await w.post(t, "/api/contacts", {"name": f"App client {w.secret(t)}"})
        login = f"iso-app-{uuid.uuid4().hex[:8]}"
        await w.post(t, f"/api/contacts/{contact['id']}/app-user", {"login": login, "password": PASSWORD})
        tokens = await w.client.post(
            "/api/auth/login",
            json={"account": t.slug, "login": login, "password": PASSWORD, "kind": "app_user"},
        )
        assert tokens.status_code == 200, tokens.text
        object_id = await w.id_of(t, "object_id")
        await w.post(t, f"/api/objects/{object_id}/users", {"contact_id": contact["id"], "role": "admin"})
        w.made[(t.id, "_app_contact_id")] = contact["id"]
        w.made[key] = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    return dict(w.made[key])


@factory("device_id")
async def _device(w: World, t: Tenant) -> int:
    headers = await _app_user_headers(w, t)
    token = f"iso-{t.slug}-{uuid.uuid4().hex}"
    return int((await w.post(t, "/api/app/devices", {"token": token}, headers=headers))["id"])


async def _channel_body(w: World, t: Tenant) -> dict[str, Any]:
    return {"channel": "telegram", "config": {"bot_token": "123456:" + "A" * 30}}


BODIES[("PUT", "/api/notifications/channels")] = _channel_body


# --- monitoring centre and client app (MON) ----------------------------------------------------


async def _app_ticket_body(w: World, t: Tenant) -> dict[str, Any]:
    return {"description": f"App request {w.secret(t)}"}


async def _rating_body(w: World, t: Tenant) -> dict[str, Any]:
    return {"score": 5, "comment": "fine"}


BODIES[("POST", "/api/app/objects/{object_id}/tickets")] = _app_ticket_body
BODIES[("POST", "/api/app/tickets/{ticket_id}/rating")] = _rating_body
STREAMING.add("/api/app/stream")


# --- the web app's pages (ISSUE 13) ---------------------------------------------------------------
# Pages sign in with the session cookie, not the API's credentials, so they sit outside the token
# middleware; one walk covers them all: every page with ids, read or posted by each of A's
# employees through a real session, answers for B's objects exactly as for objects that exist
# nowhere (404, nothing of B shown, nothing changed); lists filtered by B's ids show nothing of B.
WEB_PAGES = (
    "/",
    "/signin",
    "/signout",
    "/language",
    "/session/api-token",
    "/tickets",
    "/tickets/live",
    "/tickets/new",
    "/tickets/{ticket_id}",
    "/tickets/{ticket_id}/status",
    "/tickets/{ticket_id}/assign",
    "/tickets/{ticket_id}/comments",
    "/tickets/{ticket_id}/files/{file_id}",
    "/companies/{company_id}",
    "/contacts/{contact_id}",
    "/objects/{object_id}",
)
_WEB_FORMS = {"status": "cancelled", "comment": "x", "responsible_id": "1", "body": "x", "public": "1"}


async def _web_client(w: World, who: str) -> tuple[httpx.AsyncClient, str]:
    from tests.web.helpers import web_sign_in

    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=w.app), base_url="http://testserver")
    return client, await web_sign_in(client, w.a, getattr(w.a, who))


async def _web_pages_apart(w: World) -> None:
    from tests.test_isolation import endpoints, snapshot

    if w.made.setdefault((0, "web pages walked"), False):
        return  # one walk covers every page; it is registered once per page path
    w.made[(0, "web pages walked")] = True
    pages = [ep for ep in endpoints(w.app) if ep.path in WEB_PAGES and ep.method in ("GET", "POST")]
    theirs = {name: await w.id_of(w.b, name) for ep in pages for name in ep.params}
    sessions = {who: await _web_client(w, who) for who in ("admin", "dispatcher", "engineer")}
    before = await snapshot(w.db)  # after the sign-ins, which store A's refresh tokens
    for who, (client, token) in sessions.items():
        try:
            for ep in pages:
                if not ep.params:
                    if ep.method == "GET" and ep.path == "/tickets":
                        query = {"object_id": theirs.get("object_id") or await w.id_of(w.b, "object_id")}
                        listed = await client.get(ep.path, params=query)
                        assert w.secret(w.b) not in listed.text, f"{ep} as A's {who} shows B's rows"
                    continue
                answers = []
                for values in (theirs, {name: 2**61 for name in ep.params}):
                    url = ep.path.format(**{name: values[name] for name in ep.params})
                    if ep.method == "GET":
                        answer = await client.get(url)
                    else:
                        answer = await client.post(url, data={"_csrf": token, **_WEB_FORMS})
                    assert w.secret(w.b) not in answer.text, f"{ep} as A's {who} shows B's data"
                    answers.append(answer.status_code)
                assert answers == [404, 404], f"{ep} as A's {who}: {answers}"
        finally:
            await client.aclose()
    assert await snapshot(w.db) == before, "A's page requests changed the database"


for _page in WEB_PAGES:
    EXCLUDED_CHECKS[_page] = _web_pages_apart
