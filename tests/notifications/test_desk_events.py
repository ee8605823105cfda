"""DESK-10: the desk's events (new ticket, status change, public comment, rating request), driven
through the desk's API, become notifications; the exchange and payments events render their own
words; a failing channel never blocks or undoes the ticket action."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from litestar import Litestar

from hub.db import Database, utcnow
from hub.desk import service as desk
from hub.desk.actors import Actor
from hub.desk.models import Ticket
from hub.jobs import JobContext
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


async def _call(
    client: httpx.AsyncClient, tenant: Tenant, method: str, path: str, body: Any, expected: int = 200
) -> Any:
    response = await client.request(method, path, json=body, headers=tenant.dispatcher.headers)
    assert response.status_code == expected, response.text
    return response.json()


async def test_desk_api_actions_notify_the_right_people(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10: through the desk's API, a new unassigned ticket tells the dispatchers and
    administrators (not its creator); a status change and an employee's public reply tell the
    client; a private comment tells nobody; the client's public reply tells the responsible; on
    resolve the client gets the rating request (MON-6) instead of a second "resolved" message."""
    db: Database = app.state.db
    sink = SmtpSink()
    controller = sink.start()
    try:
        await _email(client, tenant, sink.port)
        client_user = await make_app_user(client, tenant, "Client", email="client@example.com")
        made = await _call(
            client,
            tenant,
            "POST",
            "/api/tickets",
            {"title": "Gate broken", "contact_id": client_user.contact_id},
            expected=201,
        )
        ticket_id = made["id"]
        assert _to(await messages(db), "new_ticket") == {tenant.admin.email}
        await _call(
            client, tenant, "PATCH", f"/api/tickets/{ticket_id}", {"responsible_id": tenant.engineer.id}
        )
        await _call(client, tenant, "POST", f"/api/tickets/{ticket_id}/status", {"status": "in_progress"})
        assert _to(await messages(db), "status_changed") == {"client@example.com", tenant.engineer.email}
        comments = f"/api/tickets/{ticket_id}/comments"
        await _call(
            client, tenant, "POST", comments, {"body": "Internal note", "public": False}, expected=201
        )
        assert _to(await messages(db), "public_comment") == set()
        await _call(
            client, tenant, "POST", comments, {"body": "We are on our way", "public": True}, expected=201
        )
        assert _to(await messages(db), "public_comment") == {"client@example.com"}
        # The client answers (the app has no comment endpoint: the desk service, as a contact).
        async with db.sessionmaker() as session, session.begin():
            client_actor = Actor("contact", client_user.contact_id, "Client")
            await desk.add_comment(session, tenant.id, ticket_id, client_actor, "Thanks!", public=True)
        assert _to(await messages(db), "public_comment") == {"client@example.com", tenant.engineer.email}
        await _call(client, tenant, "POST", f"/api/tickets/{ticket_id}/status", {"status": "resolved"})
        resolved = [m for m in await messages(db) if m.payload["data"].get("status") == "resolved"]
        assert {m.payload["to"] for m in resolved} == {tenant.engineer.email}
        assert _to(await messages(db), "rating_request") == {"client@example.com"}
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
    notifications wait in the outbox, are retried up to the bound, then show as dead letters."""
    jobs: JobContext = app.state.jobs
    sink = SmtpSink()
    controller = sink.start()
    controller.stop()  # nothing listens on that port any more
    await _email(client, tenant, sink.port)
    made = await client.post(
        "/api/contacts", json={"name": "C", "email": "c@example.com"}, headers=tenant.admin.headers
    )
    ticket = await _call(
        client,
        tenant,
        "POST",
        "/api/tickets",
        {"title": "Lift stuck", "contact_id": made.json()["id"]},
        expected=201,
    )
    changed = await _call(
        client,
        tenant,
        "POST",
        f"/api/tickets/{ticket['id']}/status",
        {"status": "cancelled", "comment": "Duplicate"},
    )
    assert changed["status"] == "cancelled"
    await drain_outbox(jobs)
    queued = await messages(jobs.db)
    assert queued and all(m.status == "pending" and m.attempts == 1 for m in queued)
    assert all("SMTP unreachable" in (m.last_error or "") for m in queued)
    # Time passes: every retry fails until the bound, then the messages are dead letters.
    await drain_outbox(jobs, now=utcnow() + timedelta(days=1))
    bound = jobs.settings.outbox.max_attempts
    assert all((m.status, m.attempts) == ("dead", bound) for m in await messages(jobs.db))
    dead = await client.get("/api/outbox", params={"status": "dead"}, headers=tenant.admin.headers)
    assert dead.status_code == 200
    assert {m["id"] for m in dead.json()["items"]} == {m.id for m in queued}
    assert all("gave up after" in m["last_error"] for m in dead.json()["items"])
    # The ticket stays as the dispatcher left it.
    again = await client.get(f"/api/tickets/{ticket['id']}", headers=tenant.dispatcher.headers)
    assert again.json()["status"] == "cancelled"


async def test_exchange_and_payments_events_render_their_own_words(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10 / EX-9 / PAY-7: partner_decision, refund_requested and refund_changed on a real
    ticket go out on the configured channels with their own words; an unknown event is a
    programming error. (The exchange and payments tests drive these events end to end.)"""
    db: Database = app.state.db
    await _email(client, tenant, 2525)
    made = await _call(client, tenant, "POST", "/api/tickets", {"title": "Boiler"}, expected=201)
    async with db.sessionmaker() as session, session.begin():
        ticket = await session.get(Ticket, made["id"])
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
    texts = {
        m.payload["event"]: (m.payload["ticket_id"], m.payload["text"])
        for m in await messages(db)
        if m.payload["event"] != "new_ticket"
    }
    assert texts == {
        "partner_decision": (made["id"], "Beta Lifts set its ticket to resolved."),
        "refund_requested": (made["id"], "A refund of 150.00 was requested."),
        "refund_changed": (made["id"], "Your refund is approved."),
    }


async def test_resolved_still_told_where_the_rating_request_is_switched_off(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10 / MON-6: the "resolved" message gives way to the rating request only where that
    request goes out; with rating requests switched off for e-mail the client still hears of it."""
    db: Database = app.state.db
    await _email(client, tenant, 2525)
    switched = await client.put(
        "/api/notifications/rules",
        json={"rules": {"rating_request": {"email": False}}},
        headers=tenant.admin.headers,
    )
    assert switched.status_code == 200, switched.text
    user = await make_app_user(client, tenant, "Client", email="client@example.com")
    made = await _call(
        client,
        tenant,
        "POST",
        "/api/tickets",
        {"title": "Door", "contact_id": user.contact_id, "responsible_id": tenant.engineer.id},
        expected=201,
    )
    await _call(client, tenant, "POST", f"/api/tickets/{made['id']}/status", {"status": "resolved"})
    resolved = [m for m in await messages(db) if m.payload["data"].get("status") == "resolved"]
    assert {m.payload["to"] for m in resolved} == {"client@example.com", tenant.engineer.email}
    assert _to(await messages(db), "rating_request") == set()
