"""Transport faults between hubs (EX-10): duplicates, tampering, wrong keys, replays, stale and
out-of-order messages, foreign tickets, a partner that is down, and dead letters."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import msgspec
from sqlalchemy import select, text

from contracts.exchange import TicketRated
from hub.db import utcnow
from hub.exchange import crypto
from hub.exchange.delivery import sign_envelope
from hub.exchange.models import Connection, InboundMessage, SharedTicket
from hub.exchange.service import send
from hub.outbox.models import OutboxMessage
from hub.outbox.worker import drain_outbox
from tests.exchange import desk
from tests.exchange.conftest import Hub, Router, drain, pair, shared_ticket


class Capture:
    """Records every signed message posted to an inbox, optionally keeping it from arriving."""

    def __init__(self, router: Router, *, block: bool = False) -> None:
        self.tokens: list[str] = []
        self.block = block
        router.tap = self

    async def __call__(self, request: httpx.Request) -> httpx.Response | None:
        if request.url.path != "/api/exchange/inbox":
            return None
        self.tokens.append(json.loads(request.content)["jws"])
        if self.block:
            return httpx.Response(503, json={"code": "unavailable"})
        return None


def _payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


async def _snapshot(hub: Hub) -> list[Any]:
    async with hub.db.sessionmaker() as session:
        rows: list[Any] = []
        for table in ("exchange_connections", "exchange_shared_tickets", "exchange_inbound_messages"):
            rows += [
                tuple(r) for r in (await session.execute(text(f"SELECT * FROM {table} ORDER BY id"))).all()
            ]
        return rows


async def _post(hub: Hub, token: str) -> httpx.Response:
    return await hub.client.post("/api/exchange/inbox", json={"jws": token})


async def test_each_message_delivered_three_times_is_applied_once(
    two_hubs: tuple[Hub, Hub], router: Router
) -> None:
    """EX-10: every delivery arrives three times; each comment exists once, the repeats are
    answered 409 message_already_received and the sender counts them as delivered."""
    a, b = two_hubs
    alpha, beta, original, copy, _, b_conn = await shared_ticket(a, b)
    answers: list[int] = []

    async def triple(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != "/api/exchange/inbox":
            return None
        transport = httpx.ASGITransport(app=router.apps[request.url.host])
        first = None
        for _ in range(3):
            replay = httpx.Request(
                request.method, request.url, headers=request.headers, content=request.content
            )
            response = await transport.handle_async_request(replay)
            await response.aread()
            answers.append(response.status_code)
            first = first or response
        return first

    router.tap = triple
    for n in range(3):
        await desk.comment(a.client, alpha, original["id"], f"note {n}", public=False, pass_to_partner=True)
    await desk.comment(b.client, beta, copy["id"], "reply", public=True)
    await drain(a, b)
    in_b = [c["body"] for c in await desk.comments(b.client, beta, copy["id"])]
    assert [in_b.count(f"note {n}") for n in range(3)] == [1, 1, 1]
    in_a = [c["body"] for c in await desk.comments(a.client, alpha, original["id"])]
    assert in_a.count("reply") == 1
    assert answers.count(200) * 2 == answers.count(409)
    status = (await b.client.get(f"/api/exchange/connections/{b_conn}", headers=beta.admin.headers)).json()
    assert status["delivery"]["backlog"] == 0 and status["delivery"]["dead"] == 0


async def test_tampered_wrong_key_replayed_and_stale_messages_are_refused(
    two_hubs: tuple[Hub, Hub], router: Router
) -> None:
    """EX-10: a tampered body, a message signed with another key, a replay of a delivered message
    and a stale one are refused with problem JSON, and nothing changes at the receiver."""
    a, b = two_hubs
    alpha, beta, original, copy, a_conn, _ = await shared_ticket(a, b)
    capture = Capture(router)
    await desk.comment(a.client, alpha, original["id"], "genuine", public=False, pass_to_partner=True)
    await drain(a, b)
    genuine = capture.tokens[-1]
    before = await _snapshot(b)
    comments_before = await desk.comments(b.client, beta, copy["id"])

    header, _, signature = genuine.split(".")
    claims = _payload(genuine)
    claims["body"]["body"] = "forged"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    tampered = await _post(b, f"{header}.{forged_payload}.{signature}")
    assert tampered.status_code == 401 and tampered.json()["code"] == "bad_signature"
    assert tampered.headers["content-type"].startswith("application/problem+json")

    async with a.db.sessionmaker() as session:
        connection = await session.get(Connection, a_conn)
    assert connection is not None
    wrong_private, wrong_public = crypto.new_keypair()
    impostor = Connection(
        uuid=connection.uuid, side=connection.side, private_key=wrong_private, public_key=wrong_public
    )
    claims["id"] = str(uuid.uuid4())
    claims["seq"] = claims["seq"] + 1
    claims.pop("sent_at")
    wrong = await _post(b, sign_envelope(impostor, claims))
    assert wrong.status_code == 401 and wrong.json()["code"] == "bad_signature"

    replay = await _post(b, genuine)
    assert replay.status_code == 409 and replay.json()["code"] == "message_already_received"

    stale_claims = {**claims, "sent_at": (utcnow() - timedelta(minutes=10)).isoformat()}
    stale_token = crypto.sign(
        connection.private_key,
        f"{connection.uuid}/{connection.side}",
        msgspec.json.encode(stale_claims),
    )
    stale = await _post(b, stale_token)
    assert stale.status_code == 401 and stale.json()["code"] == "message_stale"

    garbage = await _post(b, "not.a.jws")
    assert garbage.status_code == 401 and garbage.json()["code"] == "bad_signature"
    assert await _snapshot(b) == before
    assert await desk.comments(b.client, beta, copy["id"]) == comments_before


async def test_message_for_a_foreign_ticket_never_reaches_it(one_hub: Hub) -> None:
    """EX-10: C, paired with B, names a ticket B shares with A. A status update is refused 404
    ticket_not_shared; a comment is held as one for a ticket C has not transferred yet (its transfer
    may be on its way), counted on C's connection, and never lands on the ticket B shares with A."""
    hub = one_hub
    alpha, beta, gamma = hub.tenants
    ab, _ = await pair(hub, alpha, hub, beta)
    gb, bg = await pair(hub, gamma, hub, beta)
    original = await desk.new_ticket(hub.client, alpha)
    await desk.transfer(hub.client, alpha, original["id"], ab)
    await drain(hub)
    shared = (await desk.partner_link(hub.client, alpha, original["id"]))[0]
    copy = (await desk.tickets(hub.client, beta))[0]
    comments_before = await desk.comments(hub.client, beta, copy["id"])
    async with hub.db.sessionmaker() as session:
        c_side = await session.get(Connection, gb)
    assert c_side is not None
    before = await _snapshot(hub)

    def envelope(body: dict[str, Any]) -> dict[str, Any]:
        return {
            "v": 1,
            "id": str(uuid.uuid4()),
            "conn": c_side.uuid,
            "sender": c_side.side,
            "ticket": shared["shared_uuid"],
            "seq": 2,
            "body": body,
        }

    status = {
        "kind": "ticket.status",
        "number": 7,
        "status": "resolved",
        "changed_at": "2026-01-01T00:00:00Z",
    }
    refused = await _post(hub, sign_envelope(c_side, envelope(status)))
    assert refused.status_code == 404 and refused.json()["code"] == "ticket_not_shared"
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert await _snapshot(hub) == before
    hijack = {"kind": "comment.posted", "ref": "1", "author_name": "Mallory", "body": "hijack"}
    held = await _post(hub, sign_envelope(c_side, envelope(hijack)))
    assert held.status_code == 200 and held.json()["outcome"] == "held"
    await drain(hub)
    assert await desk.comments(hub.client, beta, copy["id"]) == comments_before
    on_c = await hub.client.get(f"/api/exchange/connections/{bg}", headers=beta.admin.headers)
    assert on_c.json()["delivery"]["held"] == 1


async def test_out_of_order_messages_wait_for_their_predecessor(
    two_hubs: tuple[Hub, Hub], router: Router
) -> None:
    """EX-10: messages 2 and 3 of a ticket arriving as 3 then 2 are applied as 2 then 3; the outbox's
    own later deliveries of both change nothing."""
    a, b = two_hubs
    alpha, beta, original, copy, _, _ = await shared_ticket(a, b)
    router.down.add("hub-b.test")
    await desk.comment(a.client, alpha, original["id"], "second", public=False, pass_to_partner=True)
    await desk.comment(a.client, alpha, original["id"], "third", public=False, pass_to_partner=True)
    async with a.db.sessionmaker() as session:
        connection = (
            await session.scalars(select(Connection).where(Connection.account_id == alpha.id))
        ).one()
        queued = (
            await session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.status == "pending", OutboxMessage.account_id == alpha.id)
                .order_by(OutboxMessage.id)
            )
        ).all()
    second, third = (m.payload["envelope"] for m in queued if m.topic == "exchange.message")
    assert (second["seq"], third["seq"]) == (2, 3)
    held = await _post(b, sign_envelope(connection, third))
    assert held.status_code == 200 and held.json()["outcome"] == "held"
    assert "third" not in str(await desk.comments(b.client, beta, copy["id"]))
    applied = await _post(b, sign_envelope(connection, second))
    assert applied.status_code == 200 and applied.json()["outcome"] == "applied"
    in_b = [c["body"] for c in await desk.comments(b.client, beta, copy["id"])]
    assert in_b.index("second") < in_b.index("third")
    router.down.clear()
    await drain(a, b)
    in_b = [c["body"] for c in await desk.comments(b.client, beta, copy["id"])]
    assert in_b.count("second") == 1 and in_b.count("third") == 1
    async with b.db.sessionmaker() as session:
        statuses = set(await session.scalars(select(InboundMessage.status)))
    assert statuses == {"applied"}


async def test_partner_down_then_back_everything_arrives_once_in_order(
    two_hubs: tuple[Hub, Hub], router: Router
) -> None:
    """EX-10: while B's hub is down, A's messages wait (backlog and last error visible on the
    connection); when it is back they all arrive once, in order."""
    a, b = two_hubs
    alpha, beta, original, copy, a_conn, _ = await shared_ticket(a, b)
    router.down.add("hub-b.test")
    for n in range(5):
        await desk.comment(a.client, alpha, original["id"], f"m{n}", public=False, pass_to_partner=True)
    for minutes in (0, 1, 2):
        await drain_outbox(a.app.state.jobs, now=utcnow() + timedelta(minutes=minutes))
    status = (await a.client.get(f"/api/exchange/connections/{a_conn}", headers=alpha.admin.headers)).json()
    assert status["delivery"]["backlog"] == 5 and "unreachable" in status["delivery"]["last_error"]
    router.down.clear()
    for _ in range(10):
        await drain_outbox(a.app.state.jobs, now=utcnow() + timedelta(hours=1))
    await drain(a, b)
    in_b = [c["body"] for c in await desk.comments(b.client, beta, copy["id"]) if c["body"].startswith("m")]
    assert in_b == [f"m{n}" for n in range(5)]
    status = (await a.client.get(f"/api/exchange/connections/{a_conn}", headers=alpha.admin.headers)).json()
    assert status["delivery"]["backlog"] == 0 and status["delivery"]["last_success_at"]


async def test_dead_letter_after_the_bound_is_visible_on_the_connection(
    two_hubs: tuple[Hub, Hub], router: Router
) -> None:
    """EX-10: a partner that never comes back: after the bound the message is dead-lettered and the
    connection shows it; an administrator's retry delivers it once the partner is back."""
    a, b = two_hubs
    alpha, beta, original, copy, a_conn, _ = await shared_ticket(a, b)
    router.down.add("hub-b.test")
    await desk.comment(a.client, alpha, original["id"], "lost?", public=False, pass_to_partner=True)
    later = utcnow()
    for _ in range(a.settings.outbox.max_attempts + 2):
        later += timedelta(hours=1)
        await drain_outbox(a.app.state.jobs, now=later)
    status = (await a.client.get(f"/api/exchange/connections/{a_conn}", headers=alpha.admin.headers)).json()
    assert status["delivery"]["dead"] == 1 and status["delivery"]["backlog"] == 0
    dead = (await a.client.get("/api/outbox", params={"status": "dead"}, headers=alpha.admin.headers)).json()[
        "items"
    ]
    dead_items = dead["items"] if isinstance(dead, dict) else dead
    router.down.clear()
    retried = await a.client.post(f"/api/outbox/{dead_items[0]['id']}/retry", headers=alpha.admin.headers)
    assert retried.status_code in (200, 201), retried.text
    await drain(a, b)
    assert [c["body"] for c in await desk.comments(b.client, beta, copy["id"])].count("lost?") == 1


async def test_a_refused_message_does_not_hold_back_its_successors(
    two_hubs: tuple[Hub, Hub], router: Router
) -> None:
    """EX-10 (rule 8): message 3 arrives first and is held; message 2, a rating B's rules refuse
    (B's ticket is not resolved), is answered 200 "rejected" with B's code, recorded with its
    error, and message 3 is applied right after it."""
    a, b = two_hubs
    alpha, beta, original, copy, _, _ = await shared_ticket(a, b)
    router.down.add("hub-b.test")
    async with a.db.sessionmaker() as session, session.begin():
        link = await session.scalar(select(SharedTicket).where(SharedTicket.ticket_id == original["id"]))
        assert link is not None
        connection = await session.get(Connection, link.connection_id)
        assert connection is not None
        await send(session, connection, link, TicketRated(score=5))
    await desk.comment(
        a.client, alpha, original["id"], "after the rating", public=False, pass_to_partner=True
    )
    async with a.db.sessionmaker() as session:
        queued = (
            await session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.status == "pending", OutboxMessage.topic == "exchange.message")
                .order_by(OutboxMessage.id)
            )
        ).all()
    rating, comment = (m.payload["envelope"] for m in queued)
    held = await _post(b, sign_envelope(connection, comment))
    assert held.status_code == 200 and held.json()["outcome"] == "held"
    rejected = await _post(b, sign_envelope(connection, rating))
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["outcome"] == "rejected" and rejected.json()["code"] == "ticket_not_resolved"
    assert "after the rating" in [c["body"] for c in await desk.comments(b.client, beta, copy["id"])]
    assert (await desk.ticket(b.client, beta, copy["id"]))["rating_score"] is None
    async with b.db.sessionmaker() as session:
        received = {m.kind: m for m in await session.scalars(select(InboundMessage))}
    assert received["ticket.rated"].error and received["ticket.rated"].status == "applied"
    assert received["comment.posted"].status == "applied" and received["comment.posted"].error is None
