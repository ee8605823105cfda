"""``hub serve --demo``: two demo accounts with people, places, app users, an API key and tickets.

Seeding is idempotent: when the demo accounts exist it changes nothing (the API keys, shown only
when they are created, are then not shown again; the passwords are fixed and always printed).
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.exchange import SUPPORTED_VERSIONS
from hub.accounts.models import Account
from hub.accounts.schemas import ApiKeyCreate, EmployeeCreate
from hub.accounts.service import create_account, create_api_key, create_employee
from hub.db import Database, utcnow
from hub.desk import service as desk
from hub.desk.actors import Actor
from hub.desk.schemas import TicketCreate
from hub.exchange.crypto import new_keypair
from hub.exchange.models import Connection, ConnectionState
from hub.live import build_live
from hub.payments import service as payments
from hub.payments.models import PaymentAccount
from hub.payments.schemas import InvoiceLineCreate, PaymentAccountCreate, PriceItemCreate
from hub.people import service as people
from hub.people.schemas import AppUserCreate, CompanyCreate, ContactCreate, ObjectCreate, ObjectUserCreate
from hub.settings import Settings
from hub.telephony import service as telephony
from hub.telephony.adapters import CanonicalEvent

__all__ = ["DemoAccount", "DemoInfo", "DemoLogin", "print_demo", "seed_demo"]

EMPLOYEE_PASSWORD = "demo-password"
PBX_TOKEN_PREFIX = "pbx_demo-"
APP_PASSWORD = "demo-app-password"
TICKET_STATUSES = ("open", "in_progress", "pending", "resolved", "closed", "cancelled", "reopened")


@dataclass(frozen=True)
class DemoLogin:
    kind: str  # employee | app_user
    role: str  # administrator | dispatcher | engineer | object admin | object user
    name: str
    login: str
    password: str
    extension: str | None = None


@dataclass
class DemoAccount:
    name: str
    slug: str
    logins: list[DemoLogin] = field(default_factory=list)
    api_key: str | None = None  # only right after creation
    tickets: int = 0
    pbx_token: str = ""  # fixed, like the demo passwords: printed on every run
    payment_webhook_key: str | None = None
    calls: int = 0
    invoices: int = 0


@dataclass
class DemoInfo:
    created: bool
    accounts: list[DemoAccount]
    partner_connection: bool = False


@dataclass(frozen=True)
class _Plan:
    name: str
    slug: str
    domain: str
    phone: str
    companies: tuple[tuple[str, tuple[str, ...], str], ...]  # name, phones, category
    contacts: tuple[tuple[str, str | None, str | None, int | None], ...]  # name, phone, mobile, company index
    objects: tuple[tuple[str, str, str, int | None], ...]  # number, name, address, company index


PLANS = (
    _Plan(
        name="Alpha Security",
        slug="alpha-security",
        domain="alpha.demo",
        phone="+7 495 100 20 30",
        companies=(
            ("Romashka LLC", ("+7 (495) 123-45-67", "8 495 123 45 68"), "VIP"),
            ("Vector Bank", ("+7 812 555 10 20",), "Bank"),
        ),
        contacts=(
            ("Ivan Petrov", "+7 495 123 45 67", "+7 916 111 22 33", 0),
            ("Maria Ivanova", None, "8 (916) 222-33-44", 0),
            ("Oleg Smirnov", "8 812 555 10 21", "+7 921 333 44 55", 1),
            ("Anna Private", None, "+7 903 444 55 66", None),
        ),
        objects=(
            ("1001", "Romashka office", "Moscow, Tverskaya 1", 0),
            ("1002", "Vector Bank branch", "St Petersburg, Nevsky 20", 1),
        ),
    ),
    _Plan(
        name="Beta Lifts",
        slug="beta-lifts",
        domain="beta.demo",
        phone="+7 495 200 30 40",
        companies=(
            ("Housing Co-op 7", ("+7 (495) 765-43-21",), "Residential"),
            ("Mall Galaxy", ("+7 495 700 80 90", "+7 495 700 80 91"), "Retail"),
        ),
        contacts=(
            ("Sergey Volkov", "+7 495 765 43 21", "+7 916 555 66 77", 0),
            ("Elena Orlova", None, "+7 926 666 77 88", 1),
            ("Pavel Private", "+7 499 123 00 00", None, None),
            ("Irina Kozlova", None, "+7 915 777 88 99", 1),
        ),
        objects=(
            ("L-01", "Building 7, lift 1", "Moscow, Lenina 7", 0),
            ("L-02", "Mall Galaxy, escalators", "Moscow, Mira 100", 1),
        ),
    ),
)

_STAFF = (
    ("administrator", "Administrator", "admin", "100"),
    ("dispatcher", "Dispatcher", "dispatcher", "101"),
    ("engineer", "Engineer One", "engineer", "102"),
    ("engineer", "Engineer Two", "engineer2", "103"),
)


async def seed_demo(settings: Settings) -> DemoInfo:
    """Create the demo accounts unless they exist; describe what can be signed in with."""
    db = Database(settings.database.url)
    # The seeded calls publish live events (call list, pop-ups) like the PBX's would.
    live = build_live(settings, db)
    try:
        async with db.sessionmaker() as session, session.begin():
            existing = set(
                await session.scalars(select(Account.slug).where(Account.slug.in_([p.slug for p in PLANS])))
            )
            if existing:
                accounts = [_describe(plan) for plan in PLANS]
                for account in accounts:
                    account.payment_webhook_key = await _webhook_key(session, account.slug)
                return DemoInfo(created=False, accounts=accounts, partner_connection=True)
            accounts = [await _seed_account(session, plan, settings) for plan in PLANS]
            await _connect_partners(session, settings)
        await live.settle()
        return DemoInfo(created=True, accounts=accounts, partner_connection=True)
    finally:
        await live.stop()
        await db.dispose()


def _describe(plan: _Plan) -> DemoAccount:
    account = DemoAccount(plan.name, plan.slug, pbx_token=f"{PBX_TOKEN_PREFIX}{plan.slug}")
    for role, name, local, extension in _STAFF:
        account.logins.append(
            DemoLogin(
                "employee",
                role,
                f"{name} ({plan.name})",
                f"{local}@{plan.domain}",
                EMPLOYEE_PASSWORD,
                extension,
            )
        )
    for number, _, _, _ in plan.objects:
        for role in ("admin", "user"):
            login = f"{role}-{number.lower()}@{plan.domain}"
            account.logins.append(
                DemoLogin("app_user", f"object {role} of {number}", login, login, APP_PASSWORD)
            )
    return account


async def _seed_account(session: AsyncSession, plan: _Plan, settings: Settings) -> DemoAccount:
    log2_n = settings.security.password_log2_n
    info = _describe(plan)
    account = await create_account(session, name=plan.name, slug=plan.slug, phone=plan.phone)
    staff: dict[str, int] = {}
    for role, name, local, extension in _STAFF:
        employee = await create_employee(
            session,
            account.id,
            EmployeeCreate(
                name=f"{name} ({plan.name})",
                email=f"{local}@{plan.domain}",
                role=role,  # type: ignore[arg-type]
                password=EMPLOYEE_PASSWORD,
                phone=None,
                extension=extension,
            ),
            log2_n=log2_n,
        )
        staff[local] = employee.id
    companies = [
        await people.create_company(
            session,
            account.id,
            CompanyCreate(
                name=name,
                phones=list(phones),
                email=f"office@{name.split()[0].lower()}.example",
                email_domain=f"{name.split()[0].lower()}.example",
                category=category,
                manager_id=staff["dispatcher"],
            ),
        )
        for name, phones, category in plan.companies
    ]
    contacts = [
        await people.create_contact(
            session,
            account.id,
            ContactCreate(
                name=name,
                phone=phone,
                mobile=mobile,
                company_id=companies[index].id if index is not None else None,
                email=f"{name.split()[0].lower()}@example.com",
            ),
        )
        for name, phone, mobile, index in plan.contacts
    ]
    objects = []
    # Every object gets two contacts of its own as users (plans list enough contacts).
    for i, (number, name, address, index) in enumerate(plan.objects):
        row = await people.create_object(
            session,
            account.id,
            ObjectCreate(
                number=number,
                name=name,
                address=address,
                company_id=companies[index].id if index is not None else None,
            ),
        )
        objects.append(row)
        # One object admin and one plain user per object (distinct contacts), each with an app login.
        pairs: tuple[tuple[Literal["admin", "user"], Any], ...] = (
            ("admin", contacts[2 * i]),
            ("user", contacts[2 * i + 1]),
        )
        for role, contact in pairs:
            await people.add_object_user(
                session, account.id, row.id, ObjectUserCreate(contact_id=contact.id, role=role)
            )
            await people.create_app_user(
                session,
                account.id,
                contact.id,
                AppUserCreate(login=f"{role}-{number.lower()}@{plan.domain}", password=APP_PASSWORD),
                log2_n=log2_n,
            )
    key, _ = await create_api_key(
        session, account.id, ApiKeyCreate(name="Monitoring centre", kind="monitoring")
    )
    info.api_key = key
    tickets = await _seed_tickets(session, account.id, staff, companies, contacts, objects)
    info.tickets = len(tickets)
    info.calls = await _seed_calls(session, account.id, plan, info.pbx_token)
    info.payment_webhook_key, info.invoices = await _seed_invoices(session, account.id, staff, tickets)
    return info


async def _seed_calls(session: AsyncSession, account_id: int, plan: _Plan, token: str) -> int:
    """TEL-2, TEL-6: the PBX connected (a fixed demo token) and a few calls in the call log, applied
    as the PBX's events would be: an answered call from a known client, a missed one, an outgoing one."""
    await telephony.issue_token(session, account_id, token)
    pbx = await telephony.get_or_create_settings(session, account_id)
    start = utcnow() - timedelta(hours=3)
    client_mobile, private_mobile = plan.contacts[0][2], plan.contacts[3][2] or plan.contacts[3][1]
    answered, missed, outgoing = f"{plan.slug}-1", f"{plan.slug}-2", f"{plan.slug}-3"
    events: list[tuple[str, str, str, dict[str, Any], int]] = [
        ("ringing", answered, "in", {"from_number": client_mobile, "parties": ["101"]}, 0),
        ("answered", answered, "in", {"answered_by": "101"}, 8),
        ("hangup", answered, "in", {"cause": "normalClearing", "duration": 125}, 133),
        ("ringing", missed, "in", {"from_number": private_mobile, "parties": ["101", "102"]}, 600),
        ("hangup", missed, "in", {"cause": "noAnswer"}, 630),
        ("outgoing", outgoing, "out", {"to_number": client_mobile, "parties": ["102"]}, 1200),
        ("answered", outgoing, "out", {"answered_by": "102"}, 1210),
        ("hangup", outgoing, "out", {"cause": "normalClearing", "duration": 60}, 1270),
    ]
    for kind, call_id, direction, fields, seconds in events:
        event = CanonicalEvent(
            kind,
            call_id,
            direction,
            "hub",
            {"demo": True},
            occurred_at=start + timedelta(seconds=seconds),
            **fields,
        )
        await telephony.apply_event(session, pbx, event)
    return 3


async def _seed_invoices(
    session: AsyncSession, account_id: int, staff: dict[str, int], tickets: list[int]
) -> tuple[str, int]:
    """PAY-1..5: a price list, a payment gateway speaking Standard Webhooks (no outside API: the
    payment link is its checkout template), and invoices: issued, marked paid, a draft."""
    prices = [
        PriceItemCreate(
            section="service", code="VISIT", name="Engineer visit", unit="visit", price=Decimal("2500")
        ),
        PriceItemCreate(section="work", code="DIAG", name="Diagnostics", unit="hour", price=Decimal("1800")),
        PriceItemCreate(
            section="product",
            code="SENSOR",
            name="Smoke sensor",
            unit="pcs",
            price=Decimal("950"),
            refundable=True,
        ),
    ]
    items = [await payments.create_price_item(session, account_id, item) for item in prices]
    gateway = await payments.create_payment_account(
        session,
        account_id,
        PaymentAccountCreate(
            provider="standard",
            name="Demo gateway",
            credentials={
                "webhook_secret": "whsec_" + base64.b64encode(b"demo-gateway-secret-0123456789ab").decode(),
                "checkout_url": "https://pay.example.test/checkout/{ref}?amount={amount}",
            },
        ),
    )
    dispatcher = Actor("employee", staff["dispatcher"], "Dispatcher")
    lines = [InvoiceLineCreate(price_item_id=items[0].id), InvoiceLineCreate(price_item_id=items[2].id)]
    issued, marked, _draft = [
        await payments.create_invoice(session, account_id, dispatcher, ticket_id, lines)
        for ticket_id in tickets[1:4]
    ]
    await payments.issue_invoice(session, account_id, dispatcher, issued.id)
    await payments.issue_invoice(session, account_id, dispatcher, marked.id)
    await payments.mark_paid(session, account_id, dispatcher, marked.id, "Paid in cash on site")
    return gateway.webhook_key, 3


async def _webhook_key(session: AsyncSession, slug: str) -> str | None:
    return await session.scalar(
        select(PaymentAccount.webhook_key)
        .join(Account, Account.id == PaymentAccount.account_id)
        .where(Account.slug == slug)
        .limit(1)
    )


async def _connect_partners(session: AsyncSession, settings: Settings) -> None:
    """EX-1: the two demo accounts are partners. Both live on this hub, which is not listening yet
    during the seed, so the connection is stored as a completed pairing handshake stores it (one
    row per side, each with its own key pair and the other's public key)."""
    alpha, beta = [await session.scalar(select(Account).where(Account.slug == plan.slug)) for plan in PLANS]
    assert alpha is not None and beta is not None
    conn, now = str(uuid.uuid4()), utcnow()
    (issuer_private, issuer_public), (acceptor_private, acceptor_public) = new_keypair(), new_keypair()
    for account, side, partner, private, public, partner_public in (
        (alpha, "issuer", beta, issuer_private, issuer_public, acceptor_public),
        (beta, "acceptor", alpha, acceptor_private, acceptor_public, issuer_public),
    ):
        session.add(
            Connection(
                account_id=account.id,
                uuid=conn,
                side=side,
                partner_name=partner.name,
                partner_hub_url=settings.server.public_url,
                partner_public_key=partner_public,
                private_key=private,
                public_key=public,
                state=ConnectionState.ACTIVE,
                created_at=now,
                protocol_version=max(SUPPORTED_VERSIONS),
            )
        )


async def _seed_tickets(
    session: AsyncSession,
    account_id: int,
    staff: dict[str, int],
    companies: list[Any],
    contacts: list[Any],
    objects: list[Any],
) -> list[int]:
    """One ticket in every status of DESK-4, made through the desk's own service functions."""
    dispatcher = Actor("employee", staff["dispatcher"], "Dispatcher")
    made: list[int] = []
    for i, status in enumerate(TICKET_STATUSES):
        obj = objects[i % len(objects)]
        contact = contacts[i % len(contacts)]
        data = TicketCreate(
            title=f"Demo ticket: {status.replace('_', ' ')}",
            description=f"A ticket left in status {status!r} by the demo seed.",
            priority=("low", "normal", "high", "critical")[i % 4],
            source=("incoming_call", "client_app", "monitoring", "email", "visit", "web", "outgoing_call")[i],
            company_id=obj.company_id,
            contact_id=contact.id,
            object_id=obj.id,
            responsible_id=staff["engineer"],
        )
        ticket = await desk.create_ticket(session, account_id, dispatcher, data)
        client = Actor("contact", contact.id, contact.name)
        for step, kwargs in _path_to(status):
            # Closing a resolved ticket is the client's confirmation (DESK-4).
            actor = client if step == "closed" else dispatcher
            ticket = await desk.change_status(session, account_id, ticket.id, actor, step, **kwargs)
        made.append(ticket.id)
    return made


def _path_to(status: str) -> list[tuple[str, dict[str, Any]]]:
    until = utcnow() + timedelta(days=2)
    paths: dict[str, list[tuple[str, dict[str, Any]]]] = {
        "open": [],
        "in_progress": [("in_progress", {})],
        "pending": [("pending", {"until": until, "comment": "Waiting for spare parts"})],
        "resolved": [("in_progress", {}), ("resolved", {"comment": "Replaced the faulty sensor"})],
        "closed": [
            ("in_progress", {}),
            ("resolved", {"comment": "Done"}),
            ("closed", {"comment": "Confirmed"}),
        ],
        "cancelled": [("cancelled", {"comment": "Duplicate of another ticket"})],
        "reopened": [("resolved", {"comment": "Fixed"}), ("reopened", {"comment": "It happened again"})],
    }
    return paths[status]


def print_demo(info: DemoInfo, settings: Settings) -> None:
    """The credentials and where to start, on stdout."""
    base = settings.server.public_url
    lines = [
        "",
        "=== hub demo " + ("(created now)" if info.created else "(already seeded; unchanged)") + " ===",
    ]
    for account in info.accounts:
        lines.append(f"\nAccount {account.name!r}  (sign-in account: {account.slug})")
        for entry in account.logins:
            extension = f"  ext {entry.extension}" if entry.extension else ""
            who = f"  {entry.kind:8} {entry.role:22}"
            lines.append(f"{who} login: {entry.login:32} password: {entry.password}{extension}")
        if account.api_key:
            lines.append(f"  integration API key (monitoring; shown once): {account.api_key}")
        if info.created and account.tickets:
            lines.append(
                f"  seeded: {account.tickets} tickets (one in every status), {account.calls} calls in the "
                f"call log, a price list, {account.invoices} invoices (issued, marked paid, draft)"
            )
        lines.append(f"  PBX events (hub JSON): POST {base}/api/telephony/pbx/events/{account.pbx_token}")
        lines.append(f"  PBX events (generic CTI): POST {base}/api/telephony/cti/{account.pbx_token}")
        if account.payment_webhook_key:
            lines.append(
                f"  payment callbacks (Standard Webhooks gateway): "
                f"POST {base}/api/webhooks/payments/standard/{account.payment_webhook_key}"
            )
    if info.partner_connection:
        names = " and ".join(a.name for a in info.accounts)
        lines.append(f"\nPartners: {names} are connected (GET {base}/api/exchange/connections)")
    lines += [
        "",
        f"Open the web app and sign in as an employee above: {base}/signin",
        f"API sign-in: POST {base}/api/auth/login  "
        '{"account": "<slug>", "login": "<login>", "password": "<password>", "kind": "employee"|"app_user"}',
        f"API docs: {base}/docs   (OpenAPI: {base}/docs/openapi.json)",
        f"Agent console (live caller pop-ups, call list): {base}/console",
        f"Monitoring centre tickets: POST {base}/api/monitoring/tickets with X-Api-Key: <integration key>",
        f"Operations: {base}/health  {base}/ready  {base}/metrics",
        "",
    ]
    print("\n".join(lines), flush=True)
