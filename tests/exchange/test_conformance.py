"""Conformance: a second, independent implementation of the protocol's SENDING side, written from
contracts/EXCHANGE.md alone, drives a real hub through the spec's own examples.

Nothing here comes from ``hub.exchange`` or ``contracts.exchange``: the pairing seed, the JWS and
every document are built by hand with ``cryptography``, ``base64`` and ``json``. The partner is
"Partner Works" at ``http://partner.test``; the hub under test is the issuer of the pairing key,
and the partner's inbox is a tiny ASGI app that records what the hub posts.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hub.outbox.worker import drain_outbox
from tests.conftest import Tenant
from tests.exchange import desk
from tests.exchange.conftest import Hub, Router, drain

PARTNER_URL = "http://partner.test"
PARTNER_NAME = "Partner Works"
SPEC_SECRET = "A" * 43
SPEC_VERIFIER = "Aq1EjoR_YOa3cG7evxFDC_z5KhL5DK1mJKVounMkLck"
SPEC_KID = "q3MjN2tW0bYc7pR1xH8sLm4D"
SPEC_JWS = (
    "eyJhbGciOiJFZERTQSIsImtpZCI6InEzTWpOMnRXMGJZYzdwUjF4SDhzTG00RCJ9.eyJ2IjoxfQ."
    "gwKomAYUvR42DRTtlc2zkKui6lgUIKx8ovFNKybQRqcV0iv2EaTwuAPRJOb2Plz0gmNX-NoqklEGd2N1ZiynCA"
)


# --- the spec's primitives, written out --------------------------------------------------------


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_of(key: Ed25519PrivateKey) -> str:
    return b64url(key.public_key().public_bytes_raw())


def pairing_private_key(secret: str) -> Ed25519PrivateKey:
    """Section 1: seed = SHA-256(ASCII("hub-exchange-pairing-v1") || ASCII(secret text))."""
    seed = hashlib.sha256(b"hub-exchange-pairing-v1" + secret.encode("ascii")).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def sign_bytes(key: Ed25519PrivateKey, kid: str, payload: bytes) -> str:
    """Compact JWS: header {"alg":"EdDSA","kid":...}, Ed25519 over "header.payload" (ASCII)."""
    header = b64url(json.dumps({"alg": "EdDSA", "kid": kid}, separators=(",", ":")).encode())
    signing_input = f"{header}.{b64url(payload)}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"


def sign(key: Ed25519PrivateKey, kid: str, payload: dict[str, Any]) -> str:
    return sign_bytes(key, kid, json.dumps(payload).encode())


def open_jws(token: str, public_key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload of a compact JWS, after verifying it with ``public_key`` (raises if not)."""
    header, payload, signature = token.split(".")
    Ed25519PublicKey.from_public_bytes(unb64url(public_key)).verify(
        unb64url(signature), f"{header}.{payload}".encode()
    )
    return json.loads(unb64url(header)), json.loads(unb64url(payload))


def unverified_payload(token: str) -> dict[str, Any]:
    return dict(json.loads(unb64url(token.split(".")[1])))


def rfc3339(delta: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + delta).isoformat().replace("+00:00", "Z")


def has_offset(text: str) -> bool:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).tzinfo is not None


def decode_pairing_key(key: str) -> dict[str, Any]:
    assert key.startswith("hubpair1.")
    return dict(json.loads(unb64url(key.removeprefix("hubpair1."))))


def blob(name: str, content: bytes, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "content_type": "text/plain",
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "data": base64.b64encode(content).decode(),
        **extra,
    }


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """A refusal per the spec: the status, problem JSON, the stable code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    problem = dict(response.json())
    assert problem["code"] == code and problem["status"] == status, problem
    return problem


def outcome(response: httpx.Response, expected: str, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    result = dict(response.json())
    assert result["outcome"] == expected, result
    if code is not None:
        assert result["code"] == code, result
    return result


# --- the partner's hub --------------------------------------------------------------------------


class PartnerInbox:
    """The partner's ``/api/exchange/inbox`` as the hub under test reaches it: records every JWS
    and answers ``applied`` (or what ``answer`` returns)."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.answer: Any = None  # optional: envelope -> (status, JSON body)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        assert scope["path"] == "/api/exchange/inbox" and scope["method"] == "POST", scope
        token = json.loads(raw)["jws"]
        self.tokens.append(token)
        envelope = unverified_payload(token)
        status, body = (
            self.answer(envelope)
            if self.answer
            else (200, {"id": envelope["id"], "outcome": "applied", "code": None, "detail": None})
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})


@dataclass
class Partner:
    """The acceptor side, built from the spec: its connection key, handshake, signed envelopes."""

    hub: Hub
    tenant: Tenant  # the hub's account that issues the pairing key
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    conn: str = field(default_factory=lambda: str(uuid.uuid4()))
    hub_key: str = ""  # the hub's connection public key, from ConnectAccepted
    connection_id: int = 0  # the hub's own id of the connection (its API)
    next_seq: dict[str, int] = field(default_factory=dict)

    @property
    def kid(self) -> str:
        return f"{self.conn}/acceptor"

    async def issue_key(self, **options: Any) -> str:
        issued = await self.hub.client.post(
            "/api/exchange/pairing-keys", json=options, headers=self.tenant.admin.headers
        )
        assert issued.status_code == 201, issued.text
        return str(issued.json()["key"])

    def connect_request(self, kid: str, **overrides: Any) -> dict[str, Any]:
        return {
            "v": 1,
            "kid": kid,
            "conn": self.conn,
            "hub": PARTNER_URL,
            "name": PARTNER_NAME,
            "public_key": public_of(self.key),
            "nonce": uuid.uuid4().hex,
            "iat": rfc3339(),
            **overrides,
        }

    async def handshake(
        self, pairing_key: str, secret: str | None = None, kid: str | None = None, **overrides: Any
    ) -> tuple[httpx.Response, dict[str, Any]]:
        decoded = decode_pairing_key(pairing_key)
        request = self.connect_request(kid or decoded["kid"], **overrides)
        token = sign(pairing_private_key(secret or decoded["secret"]), kid or decoded["kid"], request)
        response = await self.hub.client.post("/api/exchange/handshake", json={"jws": token})
        return response, request

    async def connect(self, **overrides: Any) -> dict[str, Any]:
        """Pair with the hub's account and verify ConnectAccepted as section 2 says."""
        response, request = await self.handshake(await self.issue_key(), **overrides)
        assert response.status_code == 200, response.text
        token = response.json()["jws"]
        claimed = unverified_payload(token)
        header, accepted = open_jws(token, claimed["public_key"])  # signed by the key it announces
        assert header == {"alg": "EdDSA", "kid": f"{self.conn}/issuer"}
        assert accepted["conn"] == self.conn and accepted["nonce"] == request["nonce"]
        assert accepted["v"] in request.get("versions", [1])
        assert accepted["hub"] == self.hub.url and accepted["name"] == self.tenant.name
        assert has_offset(accepted["iat"])
        self.hub_key = accepted["public_key"]
        listed = await self.hub.client.get("/api/exchange/connections", headers=self.tenant.admin.headers)
        self.connection_id = next(c["id"] for c in listed.json()["items"] if c["uuid"] == self.conn)
        return accepted

    def envelope(
        self, body: dict[str, Any], ticket: str | None = None, seq: int | None = None
    ) -> dict[str, Any]:
        """A new message; ``seq`` defaults to the ticket's next one in this direction."""
        envelope = {"v": 1, "id": str(uuid.uuid4()), "conn": self.conn, "sender": "acceptor", "body": body}
        if ticket is not None:
            envelope |= {"ticket": ticket, "seq": self.next_seq.get(ticket, 1) if seq is None else seq}
        return envelope

    async def post(
        self,
        envelope: dict[str, Any],
        *,
        key: Ed25519PrivateKey | None = None,
        kid: str | None = None,
        sent_at: str | None = None,
    ) -> httpx.Response:
        """(Re-)sign with a fresh ``sent_at`` and deliver to the hub's inbox."""
        stamped = {**envelope, "sent_at": sent_at or rfc3339()}
        token = sign(key or self.key, kid or self.kid, stamped)
        response = await self.hub.client.post("/api/exchange/inbox", json={"jws": token})
        if response.status_code == 200 and envelope.get("ticket"):  # a refusal takes no number
            ticket, seq = envelope["ticket"], envelope["seq"]
            self.next_seq[ticket] = max(self.next_seq.get(ticket, 1), seq + 1)
        return response

    async def send(
        self, body: dict[str, Any], ticket: str | None = None, seq: int | None = None
    ) -> httpx.Response:
        return await self.post(self.envelope(body, ticket, seq))

    async def transfer(self, ticket: str | None = None, **fields: Any) -> tuple[str, httpx.Response]:
        ticket = ticket or str(uuid.uuid4())
        body = {"kind": "ticket.transfer", "number": 1042, "title": "Lift stuck between floors", **fields}
        return ticket, await self.send(body, ticket, 1)


def comment_body(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "comment.posted",
        "ref": uuid.uuid4().hex[:12],
        "author_name": "Olga",
        "body": text,
        **extra,
    }


def status_body(number: int, status: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "ticket.status", "number": number, "status": status, "changed_at": rfc3339(), **extra}


@pytest.fixture
def inbox(router: Router) -> PartnerInbox:
    app = PartnerInbox()
    router.apps["partner.test"] = app  # type: ignore[assignment]  # any ASGI app will do
    return app


@pytest.fixture
async def partner(one_hub: Hub, inbox: PartnerInbox) -> Partner:
    partner = Partner(one_hub, one_hub.tenants[0])
    await partner.connect()
    return partner


async def hub_ticket(partner: Partner, shared: str) -> dict[str, Any]:
    """The hub's ticket linked to the shared UUID (found through the partner-link API)."""
    hub, tenant = partner.hub, partner.tenant
    for item in await desk.tickets(hub.client, tenant):
        links = await desk.partner_link(hub.client, tenant, item["id"])
        if any(link["shared_uuid"] == shared for link in links):
            return await desk.ticket(hub.client, tenant, item["id"])
    raise AssertionError(f"no ticket shares {shared}")


async def comment_bodies(partner: Partner, ticket_id: int) -> list[str]:
    return [c["body"] for c in await desk.comments(partner.hub.client, partner.tenant, ticket_id)]


async def hub_messages(partner: Partner, inbox: PartnerInbox) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Deliver the hub's outbox and return the new messages it posted, each verified."""
    seen = len(inbox.tokens)
    await drain(partner.hub)
    return [open_jws(token, partner.hub_key) for token in inbox.tokens[seen:]]


def check_hub_envelope(header: dict[str, Any], envelope: dict[str, Any], partner: Partner) -> None:
    """Section 3: kid, version, conn, sender, id and time as the spec says."""
    assert header == {"alg": "EdDSA", "kid": f"{partner.conn}/issuer"}
    assert envelope["v"] == 1 and envelope["conn"] == partner.conn and envelope["sender"] == "issuer"
    assert str(uuid.UUID(envelope["id"])) == envelope["id"]
    assert has_offset(envelope["sent_at"])


# --- section 1: the pairing key -----------------------------------------------------------------


def test_the_spec_test_vector() -> None:
    """Section 1's test vector: the seed comes from the secret's text; Ed25519 JWS is deterministic."""
    key = pairing_private_key(SPEC_SECRET)
    assert public_of(key) == SPEC_VERIFIER
    assert sign_bytes(key, SPEC_KID, b'{"v":1}') == SPEC_JWS


async def test_pairing_key_format(one_hub: Hub) -> None:
    """Section 1: ``hubpair1.`` + base64url JSON with v, hub, kid and a 43-character secret."""
    key = await Partner(one_hub, one_hub.tenants[0]).issue_key()
    decoded = decode_pairing_key(key)
    assert decoded["v"] == 1 and decoded["hub"] == one_hub.url
    assert 16 <= len(decoded["kid"]) <= 64 and len(decoded["secret"]) == 43
    assert len(unb64url(decoded["secret"])) == 32


# --- section 2: the handshake -------------------------------------------------------------------


async def test_handshake_connects_and_the_answer_verifies(one_hub: Hub, inbox: PartnerInbox) -> None:
    """Section 2: the partner's own handshake (unknown members, a list of versions) is accepted; the
    answer verifies and picks version 1; the hub lists the connection; the key is used up."""
    partner = Partner(one_hub, one_hub.tenants[0])
    accepted = await partner.connect(versions=[1, 2, 5], x_future={"anything": True})
    assert accepted["v"] == 1
    alpha = one_hub.tenants[0]
    mine = (
        await one_hub.client.get(
            f"/api/exchange/connections/{partner.connection_id}", headers=alpha.admin.headers
        )
    ).json()
    assert mine["partner_name"] == PARTNER_NAME and mine["partner_hub_url"] == PARTNER_URL
    assert mine["state"] == "active" and mine["side"] == "issuer"
    keys = (await one_hub.client.get("/api/exchange/pairing-keys", headers=alpha.admin.headers)).json()[
        "items"
    ]
    assert keys[0]["state"] == "used"


async def test_handshake_refusals_leave_the_key_usable(one_hub: Hub, inbox: PartnerInbox) -> None:
    """Section 2 steps 1-5: unknown kid, wrong secret, stale iat, a time without offset, no common
    version: each refused with its code, and none of them uses the key up."""
    partner = Partner(one_hub, one_hub.tenants[0])
    key = await partner.issue_key()
    response, _ = await partner.handshake(key, kid="Z" * 24)
    refused(response, 401, "pairing_key_invalid")
    response, _ = await partner.handshake(key, secret="B" * 43)
    refused(response, 401, "bad_signature")
    response, _ = await partner.handshake(key, iat=rfc3339(timedelta(minutes=-10)))
    refused(response, 401, "handshake_stale")
    response, _ = await partner.handshake(key, iat=datetime.now(UTC).replace(tzinfo=None).isoformat())
    refused(response, 400, "handshake_malformed")
    response, _ = await partner.handshake(key, versions=[2, 3])
    assert refused(response, 400, "version_unsupported")["versions"] == [1]
    response, _ = await partner.handshake(key)
    assert response.status_code == 200, response.text


async def test_handshake_refuses_used_revoked_and_expired_keys(one_hub: Hub, inbox: PartnerInbox) -> None:
    """Section 2 step 6: 409 pairing_key_used, 410 pairing_key_revoked, 410 pairing_key_expired."""
    partner = Partner(one_hub, one_hub.tenants[0])
    alpha = one_hub.tenants[0]
    used = await partner.issue_key()
    assert (await partner.handshake(used))[0].status_code == 200
    partner.conn = str(uuid.uuid4())
    refused((await partner.handshake(used))[0], 409, "pairing_key_used")

    revoked = await partner.issue_key()
    keys = (await one_hub.client.get("/api/exchange/pairing-keys", headers=alpha.admin.headers)).json()[
        "items"
    ]
    key_id = next(k["id"] for k in keys if k["kid"] == decode_pairing_key(revoked)["kid"])
    revoke = await one_hub.client.delete(f"/api/exchange/pairing-keys/{key_id}", headers=alpha.admin.headers)
    assert revoke.status_code == 200, revoke.text
    refused((await partner.handshake(revoked))[0], 410, "pairing_key_revoked")

    expired = await partner.issue_key(expires_in_hours=0.5 / 3600)
    await asyncio.sleep(0.7)
    refused((await partner.handshake(expired))[0], 410, "pairing_key_expired")


async def test_handshake_with_a_taken_conn_is_connection_exists(one_hub: Hub, inbox: PartnerInbox) -> None:
    """Section 2 step 8: a ``conn`` UUID already taken is 409 connection_exists; the key is not used
    up, so the acceptor draws a new UUID and tries again."""
    first = Partner(one_hub, one_hub.tenants[0])
    await first.connect()
    second = Partner(one_hub, one_hub.tenants[0], conn=first.conn)
    key = await second.issue_key()
    refused((await second.handshake(key))[0], 409, "connection_exists")
    second.conn = str(uuid.uuid4())
    assert (await second.handshake(key))[0].status_code == 200


# --- sections 3 and 4: messages towards the partner ticket --------------------------------------


async def test_transfer_creates_the_partner_ticket_and_the_hub_answers_with_its_status(
    partner: Partner, inbox: PartnerInbox
) -> None:
    """ticket.transfer (the spec's example): a ticket with source partner, title, description,
    priority, the client and a public file; the hub answers with a signed ticket.status, its seq 1."""
    client = {"company": "Client Co", "contact": "Ivan Petrov", "phones": ["+7 916 000 11 22"], "email": None}
    shared, response = await partner.transfer(
        description="Building 5, lift 2", priority="high", client=client, files=[blob("photo.txt", b"hello")]
    )
    result = outcome(response, "applied")
    assert result["code"] is None and result["detail"] is None and result["id"]
    ticket = await hub_ticket(partner, shared)
    assert ticket["source"] == "partner" and ticket["title"] == "Lift stuck between floors"
    assert ticket["description"] == "Building 5, lift 2" and ticket["priority"] == "high"
    link = (await desk.partner_link(partner.hub.client, partner.tenant, ticket["id"]))[0]
    assert link["direction"] == "incoming" and link["partner_number"] == 1042
    assert link["client"]["company"] == "Client Co" and link["partner_name"] == PARTNER_NAME
    files = await desk.files(partner.hub.client, partner.tenant, ticket["id"])
    assert [(f["filename"], f["public"]) for f in files] == [("photo.txt", True)]
    assert await desk.download(partner.hub.client, partner.tenant, ticket["id"], files[0]["id"]) == b"hello"

    [(header, envelope)] = await hub_messages(partner, inbox)
    check_hub_envelope(header, envelope, partner)
    assert envelope["ticket"] == shared and envelope["seq"] == 1
    body = envelope["body"]
    assert body["kind"] == "ticket.status" and body["number"] == ticket["number"] and body["status"] == "open"
    assert has_offset(body["changed_at"])


async def test_comment_and_files_towards_the_partner_are_public(partner: Partner) -> None:
    """comment.posted (with a file) and files.posted from the original: public on the hub's ticket."""
    shared, _ = await partner.transfer()
    outcome(
        await partner.send(comment_body("Please bring a ladder", files=[blob("a.txt", b"ladder")]), shared),
        "applied",
    )
    files_posted = {"kind": "files.posted", "author_name": "Olga", "files": [blob("plan.txt", b"plan")]}
    outcome(await partner.send(files_posted, shared), "applied")
    ticket = await hub_ticket(partner, shared)
    comments = await desk.comments(partner.hub.client, partner.tenant, ticket["id"])
    ladder = next(c for c in comments if c["body"] == "Please bring a ladder")
    assert ladder["public"] is True and "Olga" in (ladder["author_name"] or "")
    files = {f["filename"]: f for f in await desk.files(partner.hub.client, partner.tenant, ticket["id"])}
    assert files["a.txt"]["public"] and files["a.txt"]["comment_id"] == ladder["id"]
    assert files["plan.txt"]["public"] and files["plan.txt"]["sha256"] == hashlib.sha256(b"plan").hexdigest()


async def _resolved(partner: Partner) -> tuple[str, dict[str, Any]]:
    shared, _ = await partner.transfer()
    ticket = await hub_ticket(partner, shared)
    hub, tenant = partner.hub, partner.tenant
    await desk.assign(hub.client, tenant, ticket["id"], tenant.engineer.id)
    await desk.set_status(hub.client, tenant, ticket["id"], "resolved")
    return shared, ticket


async def test_rating_closes_and_later_messages_are_rejected_not_refused(
    partner: Partner, inbox: PartnerInbox
) -> None:
    """ticket.rated closes the resolved ticket (the hub tells the original: resolved, then closed).
    Then a second rating, a comment and files on the closed ticket are *rejected*: 200, received,
    the seq moves on (the next message is not held), nothing changes."""
    shared, ticket = await _resolved(partner)
    outcome(
        await partner.send({"kind": "ticket.rated", "score": 5, "comment": "Quick and clean"}, shared),
        "applied",
    )
    closed = await desk.ticket(partner.hub.client, partner.tenant, ticket["id"])
    assert closed["status"] == "closed" and closed["rating_score"] == 5
    statuses = [e["body"]["status"] for _, e in await hub_messages(partner, inbox)]
    assert statuses[-2:] == ["resolved", "closed"]

    second = outcome(await partner.send({"kind": "ticket.rated", "score": 1}, shared), "rejected")
    assert second["code"] in ("already_rated", "ticket_not_resolved") and second["detail"]
    outcome(await partner.send(comment_body("Too late"), shared), "rejected", "ticket_final")
    files_posted = {"kind": "files.posted", "author_name": "Olga", "files": [blob("late.txt", b"late")]}
    outcome(await partner.send(files_posted, shared), "rejected", "ticket_final")
    outcome(await partner.send({"kind": "ticket.sent_back", "comment": "No"}, shared), "rejected")
    after = await desk.ticket(partner.hub.client, partner.tenant, ticket["id"])
    assert after["status"] == "closed" and after["rating_score"] == 5
    assert "Too late" not in await comment_bodies(partner, ticket["id"])
    assert "late.txt" not in str(await desk.files(partner.hub.client, partner.tenant, ticket["id"]))


async def test_send_back_reopens_with_the_comment(partner: Partner) -> None:
    """ticket.sent_back: the resolved partner ticket becomes reopened."""
    shared, ticket = await _resolved(partner)
    comment = "The lift stops again on floor 3"
    outcome(await partner.send({"kind": "ticket.sent_back", "comment": comment}, shared), "applied")
    assert (await desk.ticket(partner.hub.client, partner.tenant, ticket["id"]))["status"] == "reopened"


async def test_connection_ended_then_everything_is_410(partner: Partner) -> None:
    """connection.ended (no ticket, no seq): the hub shows the connection ended by the partner and
    refuses every later message with 410 connection_ended."""
    shared, _ = await partner.transfer()
    outcome(await partner.send({"kind": "connection.ended", "by_name": PARTNER_NAME}), "applied")
    alpha = partner.tenant
    mine = (
        await partner.hub.client.get(
            f"/api/exchange/connections/{partner.connection_id}", headers=alpha.admin.headers
        )
    ).json()
    assert mine["state"] == "ended" and mine["ended_by"] == "partner"
    refused(await partner.send(comment_body("anyone?"), shared), 410, "connection_ended")
    refused(
        await partner.send({"kind": "connection.ended", "by_name": PARTNER_NAME}), 410, "connection_ended"
    )


# --- ticket.status: the hub's own ticket transferred to the partner -----------------------------


async def test_hub_transfer_is_signed_per_spec_and_status_updates_track_it(
    partner: Partner, inbox: PartnerInbox
) -> None:
    """The hub transfers its ticket: a signed ticket.transfer, seq 1. The partner answers with
    ticket.status (its own seq 1, 2, ...), public comments and files (private on the original);
    the hub's rating goes out as ticket.rated seq 2; wrong-way kinds are 422 wrong_direction."""
    hub, alpha = partner.hub, partner.tenant
    original = await desk.new_ticket(hub.client, alpha)
    await desk.transfer(hub.client, alpha, original["id"], partner.connection_id)
    [(header, envelope)] = await hub_messages(partner, inbox)
    check_hub_envelope(header, envelope, partner)
    shared, body = envelope["ticket"], envelope["body"]
    assert envelope["seq"] == 1 and body["kind"] == "ticket.transfer"
    assert body["number"] == original["number"] and body["title"] == original["title"]

    outcome(await partner.send(status_body(77, "open"), shared), "applied")
    outcome(await partner.send(status_body(77, "in_progress", responsible_name="Pavel"), shared), "applied")
    outcome(await partner.send(comment_body("Engineer on the way"), shared), "applied")
    files_posted = {"kind": "files.posted", "author_name": "Pavel", "files": [blob("report.txt", b"done")]}
    outcome(await partner.send(files_posted, shared), "applied")
    resolution = status_body(77, "resolved", responsible_name="Pavel", comment="Replaced the door sensor")
    outcome(await partner.send(resolution, shared), "applied")
    link = (await desk.partner_link(hub.client, alpha, original["id"]))[0]
    assert link["partner_number"] == 77 and link["partner_status"] == "resolved"
    assert link["partner_responsible"] == "Pavel" and link["can_rate"] is True
    mirrored = [
        c
        for c in await desk.comments(hub.client, alpha, original["id"])
        if c["body"] == "Engineer on the way"
    ]
    assert len(mirrored) == 1 and mirrored[0]["public"] is False
    assert PARTNER_NAME in (mirrored[0]["author_name"] or "")
    report = [f for f in await desk.files(hub.client, alpha, original["id"]) if f["filename"] == "report.txt"]
    assert len(report) == 1 and report[0]["public"] is False

    refused(await partner.send({"kind": "ticket.rated", "score": 5}, shared), 422, "wrong_direction")
    refused(await partner.send({"kind": "ticket.sent_back", "comment": "x"}, shared), 422, "wrong_direction")
    refused((await partner.transfer(shared))[1], 409, "ticket_already_shared")

    rated = await hub.client.post(
        f"/api/exchange/tickets/{original['id']}/partner/rate",
        json={"score": 4},
        headers=alpha.dispatcher.headers,
    )
    assert rated.status_code == 200, rated.text
    [(header, envelope)] = await hub_messages(partner, inbox)
    check_hub_envelope(header, envelope, partner)
    assert envelope["ticket"] == shared and envelope["seq"] == 2
    assert envelope["body"]["kind"] == "ticket.rated" and envelope["body"]["score"] == 4
    outcome(await partner.send(status_body(77, "closed"), shared), "applied")
    link = (await desk.partner_link(hub.client, alpha, original["id"]))[0]
    assert link["partner_status"] == "closed" and link["can_rate"] is False


async def test_a_rejected_answer_is_shown_on_the_hubs_ticket(partner: Partner, inbox: PartnerInbox) -> None:
    """Section 4: when the partner answers 200 ``rejected``, the hub records the refusal on its
    ticket (a private comment) and does not retry."""
    hub, alpha = partner.hub, partner.tenant
    original = await desk.new_ticket(hub.client, alpha)
    await desk.transfer(hub.client, alpha, original["id"], partner.connection_id)
    [(_, transfer)] = await hub_messages(partner, inbox)
    shared = transfer["ticket"]
    outcome(await partner.send(status_body(77, "resolved", responsible_name="Pavel"), shared), "applied")
    inbox.answer = lambda e: (
        200,
        {"id": e["id"], "outcome": "rejected", "code": "already_rated", "detail": "Rated"},
    )
    rated = await hub.client.post(
        f"/api/exchange/tickets/{original['id']}/partner/rate",
        json={"score": 4},
        headers=alpha.dispatcher.headers,
    )
    assert rated.status_code == 200, rated.text
    assert len(await hub_messages(partner, inbox)) == 1
    private = [
        c for c in await desk.comments(hub.client, alpha, original["id"]) if "already_rated" in c["body"]
    ]
    assert len(private) == 1 and private[0]["public"] is False
    assert await hub_messages(partner, inbox) == []  # not retried


# --- section 4: refusals at the inbox -----------------------------------------------------------


async def test_inbox_refuses_unknown_keys_bad_signatures_and_stale_messages(partner: Partner) -> None:
    """Rules 2, 3, 6: 401 unknown_key, bad_signature (another key, a tampered payload),
    message_stale (either way); a refusal changes nothing."""
    shared, _ = await partner.transfer()
    envelope = partner.envelope(comment_body("refused"), shared)
    inbox_url = "/api/exchange/inbox"
    refused(await partner.hub.client.post(inbox_url, json={"token": "x"}), 400, "validation_error")
    refused(await partner.hub.client.post(inbox_url, json={"jws": "not.a-jws"}), 401, "bad_signature")
    stranger = str(uuid.uuid4())
    refused(
        await partner.post({**envelope, "conn": stranger}, kid=f"{stranger}/acceptor"), 401, "unknown_key"
    )
    refused(await partner.post(envelope, kid=f"{partner.conn}/issuer"), 401, "unknown_key")
    refused(await partner.post(envelope, key=Ed25519PrivateKey.generate()), 401, "bad_signature")
    token = sign(partner.key, partner.kid, {**envelope, "sent_at": rfc3339()})
    header, _, signature = token.split(".")
    tampered_payload = b64url(json.dumps({**envelope, "sent_at": rfc3339(), "seq": 3}).encode())
    tampered = await partner.hub.client.post(
        "/api/exchange/inbox", json={"jws": f"{header}.{tampered_payload}.{signature}"}
    )
    refused(tampered, 401, "bad_signature")
    refused(await partner.post(envelope, sent_at=rfc3339(timedelta(minutes=-6))), 401, "message_stale")
    refused(await partner.post(envelope, sent_at=rfc3339(timedelta(minutes=6))), 401, "message_stale")
    outcome(await partner.post(envelope), "applied")  # nothing above took its id or seq
    ticket = await hub_ticket(partner, shared)
    assert (await comment_bodies(partner, ticket["id"])).count("refused") == 1


async def test_inbox_refuses_malformed_messages(partner: Partner) -> None:
    """Rule 4, 7-10: 400 message_malformed for a time without offset, a file whose hash does not
    match, an unknown kind, another version, a ticket message without seq, a transfer with seq 2."""
    shared, _ = await partner.transfer()
    envelope = partner.envelope(comment_body("malformed"), shared)
    naive = datetime.now(UTC).replace(tzinfo=None).isoformat()
    refused(await partner.post(envelope, sent_at=naive), 400, "message_malformed")
    bad_file = {**blob("a.txt", b"hello"), "sha256": hashlib.sha256(b"other").hexdigest()}
    refused(
        await partner.post({**envelope, "body": comment_body("x", files=[bad_file])}),
        400,
        "message_malformed",
    )
    short_file = {**blob("a.txt", b"hello"), "size": 4}
    refused(
        await partner.post({**envelope, "body": comment_body("x", files=[short_file])}),
        400,
        "message_malformed",
    )
    refused(
        await partner.post({**envelope, "body": {"kind": "ticket.merged", "into": 5}}),
        400,
        "message_malformed",
    )
    refused(await partner.post({**envelope, "v": 2}), 400, "message_malformed")
    status_without_offset = status_body(1, "open", changed_at=naive)
    refused(await partner.post({**envelope, "body": status_without_offset}), 400, "message_malformed")
    no_seq = {k: v for k, v in envelope.items() if k != "seq"}
    refused(await partner.post(no_seq), 400, "message_malformed")
    refused(
        (await partner.send({"kind": "ticket.transfer", "number": 1, "title": "t"}, str(uuid.uuid4()), 2)),
        400,
        "message_malformed",
    )
    outcome(await partner.post(envelope), "applied")


async def test_deduplication_codes(partner: Partner) -> None:
    """Rule 9 and 13: the very message again (re-signed) is 409 message_already_received and applies
    once; its id with other content is 409 message_id_reused; another id on a used seq (applied or
    held) is 409 seq_already_used."""
    shared, _ = await partner.transfer()
    envelope = partner.envelope(comment_body("once"), shared)
    outcome(await partner.post(envelope), "applied")
    refused(await partner.post(envelope), 409, "message_already_received")
    refused(await partner.post({**envelope, "body": comment_body("twice")}), 409, "message_id_reused")
    refused(await partner.send(comment_body("same seq"), shared, envelope["seq"]), 409, "seq_already_used")
    held = partner.envelope(comment_body("later"), shared, envelope["seq"] + 2)
    outcome(await partner.post(held), "held")
    refused(await partner.post(held), 409, "message_already_received")
    refused(await partner.send(comment_body("also later"), shared, held["seq"]), 409, "seq_already_used")
    ticket = await hub_ticket(partner, shared)
    bodies = await comment_bodies(partner, ticket["id"])
    assert bodies.count("once") == 1 and not {"twice", "same seq", "later", "also later"} & set(bodies)


async def test_messages_about_unknown_tickets(partner: Partner) -> None:
    """Rule 11: a status or a seq-1 comment for a ticket the hub does not know is 404
    ticket_not_shared; the status of a ticket the partner transferred itself is 422 wrong_direction."""
    unknown = str(uuid.uuid4())
    refused(await partner.send(status_body(5, "open"), unknown, 1), 404, "ticket_not_shared")
    refused(await partner.send(comment_body("first?"), unknown, 1), 404, "ticket_not_shared")
    shared, _ = await partner.transfer()
    refused(await partner.send(status_body(5, "open"), shared), 422, "wrong_direction")
    refused((await partner.transfer(shared))[1], 409, "ticket_already_shared")


async def test_unknown_members_are_ignored(partner: Partner) -> None:
    """Must-ignore: unknown members in the envelope, the body, a file and the client are ignored."""
    shared = str(uuid.uuid4())
    transfer = partner.envelope(
        {
            "kind": "ticket.transfer",
            "number": 9,
            "title": "With extras",
            "x_sla": {"hours": 4},
            "client": {"company": "C", "x_vip": True},
            "files": [blob("x.txt", b"x", x_scan="clean")],
        },
        shared,
        1,
    )
    outcome(await partner.post({**transfer, "x_trace": "abc", "priority_hint": 3}), "applied")
    outcome(await partner.send(comment_body("extras", x_lang="en"), shared), "applied")
    ticket = await hub_ticket(partner, shared)
    assert ticket["title"] == "With extras" and "extras" in await comment_bodies(partner, ticket["id"])


# --- section 5: order, holding, limits ----------------------------------------------------------


async def test_held_messages_apply_in_order(partner: Partner) -> None:
    """A later seq is held (200 held) and applied, in seq order, once its predecessor arrives."""
    shared, _ = await partner.transfer()
    outcome(await partner.send(comment_body("third"), shared, 3), "held")
    outcome(await partner.send(comment_body("fourth"), shared, 4), "held")
    ticket = await hub_ticket(partner, shared)
    assert "third" not in await comment_bodies(partner, ticket["id"])
    outcome(await partner.send(comment_body("second"), shared, 2), "applied")
    bodies = await comment_bodies(partner, ticket["id"])
    assert [b for b in bodies if b in ("second", "third", "fourth")] == ["second", "third", "fourth"]


async def test_pipelined_messages_before_the_transfers_answer(partner: Partner) -> None:
    """Pipelining: messages of a ticket sent before (and overtaking) its transfer are held, then
    applied in order with the transfer; so is a rating that overtook them."""
    shared = str(uuid.uuid4())
    outcome(await partner.send(comment_body("second"), shared, 2), "held")
    outcome(
        await partner.send(
            {"kind": "files.posted", "author_name": "Olga", "files": [blob("f.txt", b"f")]}, shared, 3
        ),
        "held",
    )
    outcome(await partner.send(comment_body("fourth"), shared, 4), "held")
    sent = await asyncio.gather(partner.transfer(shared), partner.send(comment_body("fifth"), shared, 5))
    outcome(sent[0][1], "applied")
    assert sent[1].status_code == 200 and sent[1].json()["outcome"] in ("applied", "held")
    ticket = await hub_ticket(partner, shared)
    bodies = await comment_bodies(partner, ticket["id"])
    assert [b for b in bodies if b in ("second", "fourth", "fifth")] == ["second", "fourth", "fifth"]
    assert [f["filename"] for f in await desk.files(partner.hub.client, partner.tenant, ticket["id"])] == [
        "f.txt"
    ]


def _limits(hub: Hub, **limits: int) -> None:
    """The receiver's settings (HUB_EXCHANGE_MAX_HELD / HUB_EXCHANGE_MAX_SEQ_AHEAD), lowered."""
    settings = hub.app.state.settings
    hub.app.state.settings = msgspec.structs.replace(
        settings, exchange=msgspec.structs.replace(settings.exchange, **limits)
    )


async def test_seq_too_far_beyond_the_hold_window(partner: Partner) -> None:
    """Section 5, the window lowered to 3: the next expected seq + 3 is held, + 4 is 422
    seq_too_far (nothing stored); the gap filled, everything applies in order."""
    _limits(partner.hub, max_seq_ahead=3)
    shared, _ = await partner.transfer()  # next expected: 2
    refused(await partner.send(comment_body("six"), shared, 6), 422, "seq_too_far")
    outcome(await partner.send(comment_body("five"), shared, 5), "held")
    for number, text in ((2, "two"), (3, "three"), (4, "four")):
        outcome(await partner.send(comment_body(text), shared, number), "applied")
    ticket = await hub_ticket(partner, shared)
    bodies = [
        b for b in await comment_bodies(partner, ticket["id"]) if b in ("two", "three", "four", "five", "six")
    ]
    assert bodies == ["two", "three", "four", "five"]


async def test_too_many_held_is_429_and_the_retry_applies(partner: Partner) -> None:
    """Section 5, at most 2 held per connection (over two tickets): the third is 429 too_many_held;
    retried (same message) once the gap filled, it applies in order."""
    _limits(partner.hub, max_held=2)
    shared, _ = await partner.transfer()
    other, _ = await partner.transfer()
    outcome(await partner.send(comment_body("four"), shared, 4), "held")
    outcome(await partner.send(comment_body("other three"), other, 3), "held")
    three = partner.envelope(comment_body("three"), shared, 3)
    refused(await partner.post(three), 429, "too_many_held")
    outcome(await partner.send(comment_body("two"), shared, 2), "applied")  # applies 2 only: 3 missing
    outcome(await partner.post(three), "applied")  # the same message, retried: 3 and the held 4
    ticket = await hub_ticket(partner, shared)
    bodies = [b for b in await comment_bodies(partner, ticket["id"]) if b in ("two", "three", "four")]
    assert bodies == ["two", "three", "four"]


async def test_skip_gaps_applies_what_a_lost_message_holds_up(partner: Partner) -> None:
    """Permanent gap: the hub shows the held messages on the connection; its administrator skips the
    gap and the held messages apply in order; later messages then apply at once."""
    hub, alpha = partner.hub, partner.tenant
    shared, _ = await partner.transfer()
    outcome(await partner.send(comment_body("three"), shared, 3), "held")
    outcome(await partner.send(comment_body("four"), shared, 4), "held")
    url = f"/api/exchange/connections/{partner.connection_id}"
    assert (await hub.client.get(url, headers=alpha.admin.headers)).json()["delivery"]["held"] == 2
    skipped = await hub.client.post(f"{url}/skip-gaps", headers=alpha.admin.headers)
    assert skipped.status_code in (200, 201), skipped.text
    outcome(await partner.send(comment_body("five"), shared, 5), "applied")
    ticket = await hub_ticket(partner, shared)
    bodies = [b for b in await comment_bodies(partner, ticket["id"]) if b in ("three", "four", "five")]
    assert bodies == ["three", "four", "five"]
    assert (await hub.client.get(url, headers=alpha.admin.headers)).json()["delivery"]["held"] == 0


async def test_an_inbox_body_over_16_mib_is_413(partner: Partner) -> None:
    """Section 4 rule 1: the inbox takes bodies up to 16 MiB; more is 413 payload_too_large."""
    too_big = {"jws": "a" * (16 * 1024 * 1024 + 1)}
    refused(await partner.hub.client.post("/api/exchange/inbox", json=too_big), 413, "payload_too_large")


async def _connection_delivery(partner: Partner) -> dict[str, Any]:
    url = f"/api/exchange/connections/{partner.connection_id}"
    return dict((await partner.hub.client.get(url, headers=partner.tenant.admin.headers)).json()["delivery"])


async def test_the_hub_as_sender_handles_each_answer_per_the_table(
    partner: Partner, inbox: PartnerInbox
) -> None:
    """Section 10 seen from the hub's outbox: message_already_received counts as delivered;
    429 too_many_held is retried later; message_id_reused is dead-lettered, never delivered."""
    hub, alpha = partner.hub, partner.tenant
    original = await desk.new_ticket(hub.client, alpha)
    await desk.transfer(hub.client, alpha, original["id"], partner.connection_id)

    def answer_with(status: int, code: str) -> Any:
        return lambda e: (status, {"type": f"urn:hub:problem:{code}", "status": status, "code": code})

    inbox.answer = answer_with(409, "message_already_received")
    assert len(await hub_messages(partner, inbox)) == 1
    delivery = await _connection_delivery(partner)
    assert delivery["backlog"] == 0 and delivery["dead"] == 0

    await desk.comment(
        hub.client, alpha, original["id"], "to the partner", public=False, pass_to_partner=True
    )
    inbox.answer = answer_with(429, "too_many_held")
    [(_, retried)] = await hub_messages(partner, inbox)
    assert retried["body"]["kind"] == "comment.posted" and retried["seq"] == 2
    delivery = await _connection_delivery(partner)
    assert delivery["backlog"] == 1 and delivery["dead"] == 0

    inbox.answer = answer_with(409, "message_id_reused")
    await desk.comment(hub.client, alpha, original["id"], "another", public=False, pass_to_partner=True)
    await drain_outbox(hub.app.state.jobs, now=datetime.now(UTC) + timedelta(hours=1))  # past the backoff
    delivery = await _connection_delivery(partner)
    assert delivery["dead"] >= 1 and "message_id_reused" in (delivery["last_error"] or "")
    history = await hub.client.get(f"/api/tickets/{original['id']}/history", headers=alpha.dispatcher.headers)
    assert "partner_protocol_error" in [event["kind"] for event in history.json()["items"]]


def test_signatures_of_the_hub_verify_only_with_its_key() -> None:
    """The verifier this file uses rejects a forged signature (so the checks above mean something)."""
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    token = sign(key, "k", {"v": 1})
    assert open_jws(token, public_of(key))[1] == {"v": 1}
    with pytest.raises(InvalidSignature):
        open_jws(token, public_of(other))
