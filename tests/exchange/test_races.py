"""The exchange under concurrency (issue 10): what SQLite's single writer hides and PostgreSQL shows.

Numbers of one shared ticket drawn by comments and by the file-mirroring job at once, two messages
of one ticket arriving at once in either order, a second message under a used number, and the
rule-8 refusal of a comment on a closed ticket, seen from the sender's side.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import httpx
from sqlalchemy import select

from hub.exchange.delivery import sign_envelope
from hub.exchange.models import Connection, InboundMessage
from hub.exchange.service import mirror_public_files
from hub.outbox import enqueue
from hub.outbox.models import OutboxMessage
from tests.exchange import desk
from tests.exchange.conftest import Hub, Router, drain, shared_ticket


async def _queued_envelopes(hub: Hub, account_id: int) -> list[dict[str, Any]]:
    async with hub.db.sessionmaker() as session:
        rows = await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.topic == "exchange.message", OutboxMessage.account_id == account_id)
            .order_by(OutboxMessage.id)
        )
        return [row.payload["envelope"] for row in rows]


async def _connection(hub: Hub, account_id: int) -> Connection:
    async with hub.db.sessionmaker() as session:
        return (await session.scalars(select(Connection).where(Connection.account_id == account_id))).one()


async def _post(hub: Hub, token: str) -> httpx.Response:
    return await hub.client.post("/api/exchange/inbox", json={"jws": token})


async def _later(delay: float, hub: Hub, token: str) -> httpx.Response:
    await asyncio.sleep(delay)
    return await _post(hub, token)


async def test_comments_while_files_mirror_get_distinct_numbers_and_all_arrive(
    two_hubs: tuple[Hub, Hub], router: Router
) -> None:
    """EX-6/EX-10: public comments on a partner ticket while its public files are being mirrored:
    every message of the ticket gets its own number, in the outbox's order, and every comment
    arrives at the original exactly once (a number drawn twice lost a comment on PostgreSQL)."""
    a, b = two_hubs
    alpha, beta, original, copy, _, _ = await shared_ticket(a, b)
    router.down.add("hub-a.test")  # keep everything queued at B, to read the numbers as sent

    async def comment(n: int) -> None:
        await desk.comment(b.client, beta, copy["id"], f"race {n}")

    async def upload_and_mirror(n: int) -> None:
        await desk.upload(b.client, beta, copy["id"], f"photo-{n}.bin", bytes([n]) * 50_000)
        await mirror_public_files(b.db, b.settings)

    await asyncio.gather(*(comment(n) for n in range(30)), *(upload_and_mirror(n) for n in range(8)))
    await mirror_public_files(b.db, b.settings)
    numbers = [e["seq"] for e in await _queued_envelopes(b, beta.id) if e.get("ticket")]
    assert numbers == list(range(1, len(numbers) + 1)), "numbers must be distinct and in outbox order"
    router.down.clear()
    await drain(a, b)
    bodies = Counter(c["body"] for c in await desk.comments(a.client, alpha, original["id"]))
    assert all(bodies[f"race {n}"] == 1 for n in range(30)), bodies
    assert len(await desk.files(a.client, alpha, original["id"])) == 8
    async with a.db.sessionmaker() as session:
        mine = InboundMessage.account_id == alpha.id
        assert set(await session.scalars(select(InboundMessage.status).where(mine))) == {"applied"}
        refused = select(InboundMessage.id).where(mine, InboundMessage.error.is_not(None))
        assert await session.scalar(refused) is None


async def test_two_messages_of_a_ticket_arriving_at_once_are_both_applied_in_order(
    two_hubs: tuple[Hub, Hub], router: Router
) -> None:
    """EX-10: message n+1 arriving while n is still being applied is never stranded as held: each
    pair is posted at once, the later one first, and every message ends applied, in order."""
    a, b = two_hubs
    alpha, beta, original, copy, _, _ = await shared_ticket(a, b)
    router.down.add("hub-b.test")
    for n in range(24):
        await desk.comment(a.client, alpha, original["id"], f"pair {n}", public=False, pass_to_partner=True)
    envelopes = [e for e in await _queued_envelopes(a, alpha.id) if e["body"]["kind"] == "comment.posted"]
    connection = await _connection(a, alpha.id)
    for n, (first, second) in enumerate(zip(envelopes[::2], envelopes[1::2], strict=True)):
        # The later message lands at a different moment of its predecessor's work each time.
        answers = await asyncio.gather(
            _post(b, sign_envelope(connection, first)),
            _later(n * 0.004, b, sign_envelope(connection, second)),
        )
        assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
    async with b.db.sessionmaker() as session:  # on PostgreSQL both hubs share one database
        statuses = Counter(
            await session.scalars(select(InboundMessage.status).where(InboundMessage.account_id == beta.id))
        )
    assert statuses == {"applied": 25}, statuses  # the transfer and 24 comments
    in_b = [
        c["body"] for c in await desk.comments(b.client, beta, copy["id"]) if c["body"].startswith("pair")
    ]
    assert in_b == [f"pair {n}" for n in range(24)]


async def test_a_second_message_under_a_used_number_is_a_dead_letter_with_its_reason(
    two_hubs: tuple[Hub, Hub], router: Router
) -> None:
    """EX-10: the receiver refuses another message with a number it already has as
    ``seq_already_used``; the sender does not count that as delivered: the message is
    dead-lettered with the reason, on the connection and on the ticket's history."""
    a, b = two_hubs
    alpha, beta, original, copy, a_conn, _ = await shared_ticket(a, b)
    await desk.comment(a.client, alpha, original["id"], "first words", public=False, pass_to_partner=True)
    await drain(a, b)
    sent = next(e for e in await _queued_envelopes(a, alpha.id) if e["body"]["kind"] == "comment.posted")
    impostor = {**sent, "id": str(uuid.uuid4()), "body": {**sent["body"], "body": "other words"}}
    connection = await _connection(a, alpha.id)
    async with a.db.sessionmaker() as session, session.begin():  # a numbering bug, as the old code had
        await enqueue(
            session,
            account_id=alpha.id,
            topic="exchange.message",
            payload={"connection_id": connection.id, "envelope": impostor},
            idempotency_key=f"exchange:{impostor['id']}",
            ordering_key=connection.ordering_key(sent["ticket"]),
        )
    await drain(a, b)
    async with a.db.sessionmaker() as session:
        dead = (await session.scalars(select(OutboxMessage).where(OutboxMessage.status == "dead"))).one()
    assert dead.payload["envelope"]["id"] == impostor["id"]
    assert dead.last_error is not None and "seq_already_used" in dead.last_error
    status = await a.client.get(f"/api/exchange/connections/{a_conn}", headers=alpha.admin.headers)
    assert status.json()["delivery"]["dead"] == 1
    history = await a.client.get(f"/api/tickets/{original['id']}/history", headers=alpha.dispatcher.headers)
    errors = [h for h in history.json()["items"] if h["kind"] == "partner_protocol_error"]
    assert len(errors) == 1 and errors[0]["data"]["code"] == "seq_already_used"
    in_b = [c["body"] for c in await desk.comments(b.client, beta, copy["id"])]
    assert "other words" not in in_b and in_b.count("first words") == 1


async def test_a_comment_on_a_ticket_the_partner_cancelled_is_refused_and_shown_to_the_sender(
    two_hubs: tuple[Hub, Hub],
) -> None:
    """EX-10 rule 8: the partner's ticket is final (cancelled), so a comment passed to it is received but
    rejected (``ticket_final``); the original's people see the refusal on their ticket."""
    a, b = two_hubs
    alpha, beta, original, copy, _, _ = await shared_ticket(a, b)
    await desk.set_status(b.client, beta, copy["id"], "cancelled", comment="The client withdrew")
    await drain(a, b)
    await desk.comment(a.client, alpha, original["id"], "one more thing", public=False, pass_to_partner=True)
    await drain(a, b)
    assert "one more thing" not in [c["body"] for c in await desk.comments(b.client, beta, copy["id"])]
    on_a = [c["body"] for c in await desk.comments(a.client, alpha, original["id"])]
    assert any("did not accept a comment" in body and "ticket_final" in body for body in on_a), on_a
    history = await a.client.get(f"/api/tickets/{original['id']}/history", headers=alpha.dispatcher.headers)
    refused = [h for h in history.json()["items"] if h["kind"] == "partner_refused"]
    assert [h["data"]["code"] for h in refused] == ["ticket_final"]
