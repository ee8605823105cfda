"""Rating and sending back a partner ticket when the two sides disagree about its status (EX-8,
EX-10): the partner's rules refuse the decision, the refusal is shown on the original ticket, and
nothing stays blocked: later messages of the ticket still flow both ways."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from contracts.exchange import TicketRated
from hub.db import utcnow
from hub.exchange.models import Connection, InboundMessage, SharedTicket
from hub.exchange.service import send
from hub.outbox.models import OutboxMessage
from hub.outbox.worker import drain_outbox
from tests.conftest import Tenant
from tests.exchange import desk
from tests.exchange.conftest import Hub, Router, drain, pair


async def _resolved_at_both(a: Hub, b: Hub) -> tuple[Tenant, Tenant, dict[str, Any], dict[str, Any]]:
    alpha, beta = a.tenants[0], b.tenants[0]
    a_conn, _ = await pair(a, alpha, b, beta)
    original = await desk.new_ticket(a.client, alpha)
    await desk.transfer(a.client, alpha, original["id"], a_conn)
    await drain(a, b)
    copy = next(t for t in await desk.tickets(b.client, beta) if t["source"] == "partner")
    await desk.assign(b.client, beta, copy["id"], beta.engineer.id)
    await desk.set_status(b.client, beta, copy["id"], "resolved")
    await drain(a, b)
    assert (await desk.partner_link(a.client, alpha, original["id"]))[0]["can_rate"] is True
    return alpha, beta, original, copy


async def _decide(a: Hub, alpha: Tenant, ticket_id: int, what: str, **body: Any) -> Any:
    return await a.client.post(
        f"/api/exchange/tickets/{ticket_id}/partner/{what}", json=body, headers=alpha.dispatcher.headers
    )


async def _try_once(hub: Hub) -> None:
    """One round of the hub's outbox (its partner is down: the message waits for a retry)."""
    await drain_outbox(hub.app.state.jobs)


async def _back_up(router: Router, *hubs: Hub) -> None:
    """The partner is reachable again: deliver now what waits for its retry, then everything."""
    router.down.clear()
    for hub in hubs:
        await drain_outbox(hub.app.state.jobs, now=utcnow() + timedelta(hours=1))
    await drain(*hubs)


async def _dead_letters(hub: Hub) -> list[OutboxMessage]:
    async with hub.db.sessionmaker() as session:
        return list(await session.scalars(select(OutboxMessage).where(OutboxMessage.status == "dead")))


async def _later_comments_flow(
    a: Hub, b: Hub, alpha: Tenant, beta: Tenant, original: dict[str, Any], copy: dict[str, Any]
) -> None:
    await desk.comment(
        a.client, alpha, original["id"], "after the refusal", public=False, pass_to_partner=True
    )
    await desk.comment(b.client, beta, copy["id"], "reply after the refusal", public=True)
    await drain(a, b)
    assert "after the refusal" in [c["body"] for c in await desk.comments(b.client, beta, copy["id"])]
    assert "reply after the refusal" in [
        c["body"] for c in await desk.comments(a.client, alpha, original["id"])
    ]


async def test_decision_on_a_stale_status_is_rejected_and_shown(
    two_hubs: tuple[Hub, Hub], router: Router
) -> None:
    """EX-8, EX-10: B reopens its resolved ticket while its status cannot reach A; A, still seeing
    *resolved*, sends back and then (after B's status arrives and B resolves and reopens again)
    rates. B's rules refuse both: B answers 200 "rejected", records the message with its error and
    moves the ticket's sequence on; A shows each refusal on its ticket (private comment, history)
    instead of a dead letter, and later comments still flow both ways. While a decision is on its
    way, A refuses a second one (409 partner_decision_pending)."""
    a, b = two_hubs
    alpha, beta, original, copy = await _resolved_at_both(a, b)

    router.down.add("hub-a.test")  # B's status updates wait in B's outbox
    await desk.set_status(b.client, beta, copy["id"], "reopened", comment="found another fault")
    await _try_once(b)
    sent_back = await _decide(a, alpha, original["id"], "send-back", comment="not fixed")
    assert sent_back.status_code == 200, sent_back.text
    assert sent_back.json()[0]["can_rate"] is False
    second = await _decide(a, alpha, original["id"], "rate", score=5)
    assert second.status_code == 409 and second.json()["code"] == "partner_decision_pending"
    assert second.headers["content-type"].startswith("application/problem+json")
    await drain(a)
    notes = [c for c in await desk.comments(a.client, alpha, original["id"]) if "did not accept" in c["body"]]
    assert len(notes) == 1 and notes[0]["public"] is False and "the send-back" in notes[0]["body"]
    assert "transition_not_allowed" in notes[0]["body"]
    history = await a.client.get(f"/api/tickets/{original['id']}/history", headers=alpha.dispatcher.headers)
    assert "partner_refused" in history.text

    await _back_up(router, a, b)
    assert (await desk.partner_link(a.client, alpha, original["id"]))[0]["partner_status"] == "reopened"
    await desk.set_status(b.client, beta, copy["id"], "resolved")
    await drain(a, b)
    router.down.add("hub-a.test")
    await desk.set_status(b.client, beta, copy["id"], "reopened", comment="and another one")
    await _try_once(b)
    rated = await _decide(a, alpha, original["id"], "rate", score=4)
    assert rated.status_code == 200, rated.text
    await drain(a)
    await _back_up(router, a, b)

    notes = [
        c["body"]
        for c in await desk.comments(a.client, alpha, original["id"])
        if "did not accept" in c["body"]
    ]
    assert len(notes) == 2 and "the rating" in notes[1] and "ticket_not_resolved" in notes[1]
    copy_now = await desk.ticket(b.client, beta, copy["id"])
    assert copy_now["status"] == "reopened" and copy_now["rating_score"] is None
    async with b.db.sessionmaker() as session:
        errors = list(
            await session.scalars(select(InboundMessage.error).where(InboundMessage.error.is_not(None)))
        )
    assert len(errors) == 2
    assert await _dead_letters(a) == [] and await _dead_letters(b) == []
    await _later_comments_flow(a, b, alpha, beta, original, copy)


async def test_double_rating_is_rejected_and_nothing_blocks(two_hubs: tuple[Hub, Hub]) -> None:
    """EX-8, EX-10: a second rating reaching the partner (queued by A's own sender while A still
    saw *resolved*) is answered "rejected" (already_rated at B); the ticket stays closed and rated
    once, A shows the refusal, and A's later messages are taken up, not held behind it."""
    a, b = two_hubs
    alpha, beta, original, copy = await _resolved_at_both(a, b)
    rated = await _decide(a, alpha, original["id"], "rate", score=5)
    assert rated.status_code == 200, rated.text
    again = await _decide(a, alpha, original["id"], "rate", score=1)
    assert again.status_code == 409 and again.json()["code"] == "partner_decision_pending"
    # The same sender queues the duplicate, as a hub with a stale copy of the status would.
    async with a.db.sessionmaker() as session, session.begin():
        link = await session.scalar(select(SharedTicket).where(SharedTicket.ticket_id == original["id"]))
        assert link is not None
        connection = await session.get(Connection, link.connection_id)
        assert connection is not None
        await send(session, connection, link, TicketRated(score=1))
    await drain(a, b)

    closed = await desk.ticket(b.client, beta, copy["id"])
    assert closed["status"] == "closed" and closed["rating_score"] == 5
    notes = [
        c["body"]
        for c in await desk.comments(a.client, alpha, original["id"])
        if "did not accept" in c["body"]
    ]
    assert len(notes) == 1 and "already_rated" in notes[0]
    assert await _dead_letters(a) == []
    # A later message of the ticket is taken up at once (the sequence moved on), not held.
    await desk.comment(a.client, alpha, original["id"], "thanks again", public=False, pass_to_partner=True)
    await drain(a, b)
    async with a.db.sessionmaker() as session:
        sent = await session.scalar(
            select(SharedTicket.out_seq).where(SharedTicket.ticket_id == original["id"])
        )
    async with b.db.sessionmaker() as session:
        applied = await session.scalar(
            select(SharedTicket.in_seq).where(SharedTicket.ticket_id == copy["id"])
        )
        held = list(await session.scalars(select(InboundMessage).where(InboundMessage.status == "held")))
    assert applied == sent and held == []
    assert await _dead_letters(a) == []
