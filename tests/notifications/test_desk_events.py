"""DESK-10: the desk's events (new ticket, status change, public comment) and the exchange and
payments hooks become notifications; a failing channel never blocks or undoes the ticket action."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
from litestar import Litestar
from sqlalchemy import select

from hub.db import Database
from hub.desk import service as desk
from hub.desk.actors import Actor
from hub.desk.models import Ticket
from hub.desk.schemas import TicketCreate
from hub.notifications import notify
from hub.outbox.worker import drain_outbox
from tests.conftest import Tenant
from tests.notifications.helpers import SmtpSink, configure, make_app_user, messages


async def _email(client: httpx.AsyncClient, tenant: Tenant, port: int) -> None:
    await configure(
        client,
        tenant,
        "email",
        {"host": "127.0.0.1", "port": port, "sender": "desk@alpha.test", "security": "none"},
    )


def _to(db_messages: list, event: str) -> set[str]:
    return {m.payload["to"] for m in db_messages if m.payload["event"] == event}


async def test_new_ticket_status_change_and_public_comment_notify_the_right_people(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: a new unassigned ticket tells the dispatchers and administrators (not its creator);
    a status change and an employee's public reply tell the client; a private comment tells nobody;
    the client's public reply tells the responsible."""
    db: Database = app.state.db
    sink = SmtpSink()
    controller = sink.start()
    try:
        await _email(client, tenant, sink.port)
        client_user = await make_app_user(client, tenant, "Client", email="client@example.com")
        dispatcher = Actor("employee", tenant.dispatcher.id, tenant.dispatcher.name)
        async with db.sessionmaker() as session, session.begin():
            ticket = await desk.create_ticket(
                session,
                tenant.id,
                dispatcher,
                TicketCreate(title="Gate broken", contact_id=client_user.contact_id),
            )
            ticket_id = ticket.id
        assert _to(await messages(db), "new_ticket") == {tenant.admin.email}
        async with db.sessionmaker() as session, session.begin():
            await desk.update_ticket(
                session, tenant.id, ticket_id, dispatcher, {"responsible_id": tenant.engineer.id}
            )
            await desk.change_status(session, tenant.id, ticket_id, dispatcher, "in_progress")
        assert _to(await messages(db), "status_changed") == {"client@example.com", tenant.engineer.email}
        async with db.sessionmaker() as session, session.begin():
            await desk.add_comment(session, tenant.id, ticket_id, dispatcher, "Internal note", public=False)
        assert _to(await messages(db), "public_comment") == set()
        async with db.sessionmaker() as session, session.begin():
            await desk.add_comment(
                session, tenant.id, ticket_id, dispatcher, "We are on our way", public=True
            )
        assert _to(await messages(db), "public_comment") == {"client@example.com"}
        client_actor = Actor("contact", client_user.contact_id, "Client")
        async with db.sessionmaker() as session, session.begin():
            await desk.add_comment(session, tenant.id, ticket_id, client_actor, "Thanks!", public=True)
        assert _to(await messages(db), "public_comment") == {"client@example.com", tenant.engineer.email}
        await drain_outbox(app.state.jobs)
    finally:
        controller.stop()
    assert {m["To"] for m in sink.received} == {
        tenant.admin.email,
        tenant.engineer.email,
        "client@example.com",
    }
    assert all(m.status == "delivered" for m in await messages(db))


async def test_failing_channel_never_blocks_or_undoes_the_ticket_action(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: with the SMTP server down, the ticket is created and changed all the same; the
    notifications wait in the outbox and are retried, then dead-lettered visibly."""
    db: Database = app.state.db
    sink = SmtpSink()
    controller = sink.start()
    controller.stop()  # nothing listens on that port any more
    await _email(client, tenant, sink.port)
    made = await client.post(
        "/api/contacts", json={"name": "C", "email": "c@example.com"}, headers=tenant.admin.headers
    )
    dispatcher = Actor("employee", tenant.dispatcher.id, tenant.dispatcher.name)
    async with db.sessionmaker() as session, session.begin():
        ticket = await desk.create_ticket(
            session, tenant.id, dispatcher, TicketCreate(title="Lift stuck", contact_id=made.json()["id"])
        )
        await desk.change_status(session, tenant.id, ticket.id, dispatcher, "cancelled", comment="Duplicate")
    await drain_outbox(app.state.jobs)
    async with db.sessionmaker() as session:
        stored = await session.scalar(select(Ticket).where(Ticket.id == ticket.id))
    assert stored is not None and stored.status == "cancelled"
    queued = await messages(db)
    assert queued and all(m.status == "pending" and m.attempts == 1 for m in queued)
    assert all("SMTP unreachable" in (m.last_error or "") for m in queued)
    dead = await client.get("/api/outbox", params={"status": "pending"}, headers=tenant.admin.headers)
    assert dead.status_code == 200


async def test_exchange_and_payments_hooks_queue_their_events(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10 / EX-9 / PAY-7: partner_decision, refund_requested and refund_changed go out on the
    configured channels with their own words; an unknown event is a programming error."""
    db: Database = app.state.db
    await _email(client, tenant, 2525)
    ticket = SimpleNamespace(id=1, number=5, status="resolved", object_id=None)
    async with db.sessionmaker() as session, session.begin():
        for event, data in (
            ("partner_decision", {"partner": "Beta Lifts", "status": "resolved"}),
            ("refund_requested", {"amount": "150.00"}),
            ("refund_changed", {"status": "approved"}),
        ):
            await notify(
                session,
                account_id=tenant.id,
                event=event,
                ticket=ticket,
                recipients=[("employee", tenant.admin.id)],
                data=data,
            )
        try:
            await notify(session, account_id=tenant.id, event="nonsense", recipients=[])
            raise AssertionError("unknown event accepted")
        except ValueError:
            pass
    texts = {m.payload["event"]: m.payload["text"] for m in await messages(db)}
    assert texts == {
        "partner_decision": "Beta Lifts set its ticket to resolved.",
        "refund_requested": "A refund of 150.00 was requested.",
        "refund_changed": "Your refund is approved.",
    }
