"""``hub serve --workers N``: N processes on one port, on PostgreSQL with live events crossing
processes; each effect still happens once, whichever process takes the request or runs the job."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from sqlalchemy import func, select

from hub.connectors.payments import stripe
from hub.db import Database
from hub.desk.actors import Actor
from hub.desk.schemas import TicketCreate
from hub.desk.service import create_ticket
from hub.outbox.models import OutboxMessage
from hub.payments.models import CallbackAttempt, Invoice, PaymentAccount
from hub.telephony.service import issue_token
from tests.conftest import Tenant, make_settings, make_tenant
from tests.telephony.hubproc import HubProcess, fresh_database, private_pg_url
from tests.telephony.server import SseReader

STRIPE_SECRET = "whsec_workers_endpoint_secret"
# Connection: close makes every request a new connection, which either process may accept.
NEW_CONNECTION = {"Connection": "close"}


class _FarSide(BaseHTTPRequestHandler):
    """The notification webhook's receiver: records each delivery's webhook-id. The first one is
    answered slowly, so the other process polls the outbox many times while it is in flight."""

    ids: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).ids.append(self.headers["webhook-id"])
        if len(type(self).ids) == 1:
            time.sleep(1.0)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _worker_processes(pid: int) -> list[int]:
    """The server processes uvicorn started under ``pid`` (Linux /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in cmdline:
            children.append(int(stat.parent.name))
    return children


async def _seed(url: str, workdir: Path) -> tuple[Tenant, str, str]:
    """A tenant, its PBX token and an issued Stripe invoice (the payment created at Stripe)."""
    db = Database(url)
    try:
        tenant = await make_tenant(db, make_settings(url, workdir / "seed"), "Many Workers")
        async with db.sessionmaker() as session, session.begin():
            token = await issue_token(session, tenant.id)
            account = PaymentAccount(
                account_id=tenant.id,
                provider="stripe",
                name="stripe",
                active=True,
                is_default=True,
                credentials={"secret_key": "sk_test_workers", "webhook_secret": STRIPE_SECRET},
                webhook_key="workers-stripe",
                allowed_networks=[],
                reconcile_after_seconds=86400,
            )
            session.add(account)
            await session.flush()
            actor = Actor("employee", tenant.dispatcher.id, tenant.dispatcher.name)
            ticket = await create_ticket(session, tenant.id, actor, TicketCreate(title="Door fob"))
            session.add(
                Invoice(
                    account_id=tenant.id,
                    ticket_id=ticket.id,
                    status="issued",
                    currency="RUB",
                    total=Decimal("1500"),
                    paid_amount=Decimal(0),
                    refunded_amount=Decimal(0),
                    reserved_amount=Decimal(0),
                    payment_account_id=account.id,
                    provider="stripe",
                    payment_ref="inv-w1",
                    provider_payment_id="cs_w1",
                    issue_count=1,
                )
            )
    finally:
        await db.dispose()
    return tenant, token, "/api/webhooks/payments/stripe/workers-stripe"


def _stripe_paid(timestamp: int) -> tuple[bytes, dict[str, str]]:
    """Stripe's checkout.session.completed for inv-w1, signed at ``timestamp`` (Stripe signs each
    retry afresh)."""
    session = {
        "id": "cs_w1",
        "object": "checkout.session",
        "amount_total": 150000,
        "currency": "rub",
        "client_reference_id": "inv-w1",
        "payment_intent": "pi_w1",
        "payment_status": "paid",
        "status": "complete",
        "metadata": {"invoice_ref": "inv-w1"},
    }
    body = json.dumps(
        {
            "id": "evt_w1",
            "object": "event",
            "type": "checkout.session.completed",
            "created": timestamp,
            "livemode": False,
            "data": {"object": session},
        }
    ).encode()
    headers = {
        "content-type": "application/json",
        "Stripe-Signature": stripe.sign(body, STRIPE_SECRET, timestamp),
    }
    return body, {**headers, **NEW_CONNECTION}


async def _popups_until(reader: SseReader, calls: set[str], seen: Counter[str] | None = None) -> Counter[str]:
    """call.ringing frames by call, until every one of ``calls`` has had one (events are applied
    by whichever process's intake worker takes them, so their frames come in any order)."""
    seen = seen if seen is not None else Counter()
    while not calls <= set(seen):
        frame = await reader.next_of("call.ringing")
        seen[frame.data["call"]["external_id"]] += 1
    return seen


async def _ring(http: httpx.AsyncClient, token: str, call: str) -> httpx.Response:
    return await http.post(
        f"/api/telephony/pbx/events/{token}",
        json={
            "event": "ringing",
            "call_id": call,
            "from_number": "+79031112233",
            "extensions": ["101", "102"],
        },
        headers=NEW_CONNECTION,
    )


async def _webhooks_settled(db: Database, account_id: int) -> list[tuple[str, int]]:
    """(status, attempts) of the account's notify.webhook messages, once none is pending."""
    for _ in range(300):
        async with db.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(OutboxMessage.status, OutboxMessage.attempts).where(
                        OutboxMessage.account_id == account_id, OutboxMessage.topic == "notify.webhook"
                    )
                )
            ).all()
        if rows and all(status == "delivered" for status, _ in rows):
            return [(status, attempts) for status, attempts in rows]
        await asyncio.sleep(0.1)
    raise AssertionError(f"webhooks not delivered: {rows}")


async def test_two_worker_processes_pop_up_apply_and_deliver_once(tmp_path: Path) -> None:
    """``hub serve --workers 2`` on PostgreSQL (LISTEN/NOTIFY channels, jobs in both processes):
    rings posted on fresh connections each pop up once on a stream held by one process; a Stripe
    callback delivered three times at once is applied once; each notification webhook reaches the
    far side once with one claim, although both processes run the outbox worker."""
    url = private_pg_url("hub_serve_workers")
    await fresh_database(url)
    tenant, token, callback_path = await _seed(url, tmp_path)
    _FarSide.ids = []
    far_side = ThreadingHTTPServer(("127.0.0.1", 0), _FarSide)
    threading.Thread(target=far_side.serve_forever, daemon=True).start()
    hub = HubProcess(
        url,
        tmp_path / "hub",
        "--workers",
        "2",
        HUB_WORKER_IN_PROCESS="true",
        HUB_OUTBOX_POLL_SECONDS="0.1",
    )
    db = Database(url)
    try:
        await hub.wait_ready()
        assert len(_worker_processes(hub.process.pid)) == 2
        async with httpx.AsyncClient(base_url=hub.base_url, timeout=30) as http:
            webhook = {
                "url": f"http://127.0.0.1:{far_side.server_address[1]}/hook",
                "secret": "whsec_" + "A" * 32,
            }
            configured = await http.put(
                "/api/notifications/channels",
                json={"channel": "webhook", "config": webhook},
                headers={**tenant.admin.headers, **NEW_CONNECTION},
            )
            assert configured.status_code == 200, configured.text
            async with http.stream(
                "GET", "/api/telephony/stream", headers=tenant.dispatcher.headers
            ) as stream:
                reader = SseReader(stream)
                await reader.connected()
                calls = [f"w-{n}" for n in range(8)]
                rings = await asyncio.gather(*(_ring(http, token, call) for call in calls))
                assert [r.status_code for r in rings] == [200] * len(calls)
                seen = await _popups_until(reader, set(calls))
                # A last ring once those are in: a late double of theirs would have shown by its frame.
                assert (await _ring(http, token, "w-last")).status_code == 200
                seen = await _popups_until(reader, {"w-last"}, seen)
                assert seen == Counter({call: 1 for call in [*calls, "w-last"]})

            now = int(time.time())
            answers = await asyncio.gather(
                *(
                    http.post(callback_path, content=body, headers=headers)
                    for body, headers in map(_stripe_paid, (now, now - 1, now - 2))
                )
            )
            assert [a.status_code for a in answers] == [200] * 3, [a.text for a in answers]

            ticket = await http.post(
                "/api/tickets",
                json={"title": "Gate does not open"},
                headers={**tenant.dispatcher.headers, **NEW_CONNECTION},
            )
            assert ticket.status_code == 201, ticket.text

        # Acknowledged at once; the intake worker of one of the processes applies it moments later.
        deadline = time.monotonic() + 60
        while True:
            async with db.sessionmaker() as session:
                invoice = await session.scalar(select(Invoice).where(Invoice.payment_ref == "inv-w1"))
            if (invoice is not None and invoice.status == "paid") or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert invoice is not None and (invoice.status, invoice.paid_amount) == ("paid", Decimal("1500"))
        async with db.sessionmaker() as session:
            applied = await session.scalar(
                select(func.count()).select_from(CallbackAttempt).where(CallbackAttempt.outcome == "applied")
            )
            assert applied == 1
        settled = await _webhooks_settled(db, tenant.id)
        # One claim each (a second worker taking a message in flight would make it 2) and one
        # request each at the far side.
        assert settled == [("delivered", 1)] * len(settled)
        assert sorted(Counter(_FarSide.ids).values()) == [1] * len(settled)
    finally:
        hub.stop()
        far_side.shutdown()
        await db.dispose()


def test_workers_refused_on_sqlite_with_one_line(tmp_path: Path) -> None:
    """SQLite has one writer and the memory live channel stays in one process: ``--workers 2``
    there is refused before anything starts, with one line saying what it needs."""
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "serve", "--workers", "2"],
        env={"HUB_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "--workers 2 needs PostgreSQL" in result.stderr
    assert not (tmp_path / "hub.db").exists()
