"""Pairing keys, the handshake, the connection list and disconnecting (EX-1, EX-2, EX-3)."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
from sqlalchemy import select, text, update

from contracts.exchange import MAX_INBOX_BYTES, SCHEMA_DIR, schemas
from hub.exchange import crypto
from hub.exchange.models import Connection, PairingKeyRecord
from hub.exchange.transport import TOTAL_TIMEOUT, MessageTooLarge, post_to_partner
from tests.exchange import desk
from tests.exchange.conftest import Hub, Router, drain, pair


def _decode(key: str) -> dict[str, str]:
    raw = key.removeprefix("hubpair1.")
    return dict(json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))))


def _encode(payload: dict[str, str]) -> str:
    return "hubpair1." + base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()


def test_json_schema_files_match_the_contract() -> None:
    """EX-10: the exported JSON Schema files are what the contract Structs produce."""
    for name, schema in schemas().items():
        on_disk = json.loads((SCHEMA_DIR / name).read_text())
        assert on_disk == json.loads(json.dumps(schema)), f"{name} is stale: run python -m contracts.exchange"


async def test_pairing_key_shown_once_stored_only_as_verifier(two_hubs: tuple[Hub, Hub]) -> None:
    """EX-1: the key carries the issuing hub's address, expires in 72 h, is shown once and never
    stored: neither the key nor its secret appear in any list or in the database."""
    a, _ = two_hubs
    alpha = a.tenants[0]
    issued = await a.client.post(
        "/api/exchange/pairing-keys", json={"label": "for Beta"}, headers=alpha.admin.headers
    )
    assert issued.status_code == 201, issued.text
    key = issued.json()["key"]
    decoded = _decode(key)
    assert decoded["hub"] == "http://hub-a.test"
    expires = datetime.fromisoformat(issued.json()["pairing_key"]["expires_at"])
    assert timedelta(hours=71.9) < expires - datetime.now(UTC) <= timedelta(hours=72)
    listed = await a.client.get("/api/exchange/pairing-keys", headers=alpha.admin.headers)
    [listed_key] = listed.json()["items"]
    assert listed_key["state"] == "usable" and listed_key["label"] == "for Beta"
    assert decoded["secret"] not in listed.text and key not in listed.text
    async with a.db.sessionmaker() as session:
        rows = (await session.execute(text("SELECT * FROM exchange_pairing_keys"))).all()
    assert rows and all(decoded["secret"] not in str(row) for row in rows)
    # Only administrators may issue keys.
    refused = await a.client.post("/api/exchange/pairing-keys", json={}, headers=alpha.dispatcher.headers)
    assert refused.status_code == 403


async def test_connect_across_two_hubs_both_sides_list_the_partner(two_hubs: tuple[Hub, Hub]) -> None:
    """EX-2, EX-3: B enters A's key; the connection exists on both hubs with the partner's name,
    since when and state; the key is used up."""
    a, b = two_hubs
    alpha, beta = a.tenants[0], b.tenants[0]
    a_conn, b_conn = await pair(a, alpha, b, beta)
    mine = (await a.client.get(f"/api/exchange/connections/{a_conn}", headers=alpha.admin.headers)).json()
    theirs = (await b.client.get(f"/api/exchange/connections/{b_conn}", headers=beta.admin.headers)).json()
    assert mine["partner_name"] == "Beta Lifts" and theirs["partner_name"] == "Alpha Security"
    assert mine["state"] == theirs["state"] == "active"
    assert mine["partner_hub_url"] == "http://hub-b.test" and theirs["partner_hub_url"] == "http://hub-a.test"
    assert mine["since"] and mine["uuid"] == theirs["uuid"]
    assert mine["delivery"] == {
        "last_success_at": None,
        "backlog": 0,
        "dead": 0,
        "last_error": None,
        "held": 0,
    }
    keys = (await a.client.get("/api/exchange/pairing-keys", headers=alpha.admin.headers)).json()["items"]
    assert keys[0]["state"] == "used" and keys[0]["connection_id"] == a_conn


async def test_connect_on_one_hub(one_hub: Hub) -> None:
    """EX-2: two accounts of the same hub pair through the same handshake endpoint."""
    alpha, beta, _ = one_hub.tenants
    a_conn, b_conn = await pair(one_hub, alpha, one_hub, beta)
    assert a_conn != b_conn
    beta_view = (await one_hub.client.get("/api/exchange/connections", headers=beta.admin.headers)).json()[
        "items"
    ]
    assert [c["partner_name"] for c in beta_view] == ["Alpha Security"]
    # Alpha cannot pair with itself.
    issued = await one_hub.client.post("/api/exchange/pairing-keys", json={}, headers=alpha.admin.headers)
    own = await one_hub.client.post(
        "/api/exchange/connections", json={"key": issued.json()["key"]}, headers=alpha.admin.headers
    )
    assert own.status_code == 409 and own.json()["code"] == "pairing_key_own"


async def _refused(b: Hub, key: str, status: int, code: str) -> None:
    beta = b.tenants[0]
    response = await b.client.post("/api/exchange/connections", json={"key": key}, headers=beta.admin.headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code
    async with b.db.sessionmaker() as session:
        assert (await session.scalars(select(Connection))).all() == []


async def test_reused_expired_revoked_and_forged_keys_are_refused(two_hubs: tuple[Hub, Hub]) -> None:
    """EX-1, EX-2: a used key, an expired key, a revoked key, a key with a wrong secret and a
    malformed key are refused with problem JSON, and no connection appears anywhere."""
    a, b = two_hubs
    alpha, beta = a.tenants[0], b.tenants[0]

    async def issue() -> str:
        response = await a.client.post("/api/exchange/pairing-keys", json={}, headers=alpha.admin.headers)
        return str(response.json()["key"])

    forged = _decode(await issue())
    forged["secret"] = "A" * 43
    await _refused(b, _encode(forged), 401, "bad_signature")
    await _refused(b, "hubpair1.not-base64!", 400, "pairing_key_malformed")
    await _refused(b, "something else", 400, "pairing_key_malformed")

    expired = await issue()
    async with a.db.sessionmaker() as session, session.begin():
        await session.execute(
            update(PairingKeyRecord)
            .where(PairingKeyRecord.kid == _decode(expired)["kid"])
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    await _refused(b, expired, 410, "pairing_key_expired")

    revoked = await issue()
    keys = (await a.client.get("/api/exchange/pairing-keys", headers=alpha.admin.headers)).json()["items"]
    key_id = next(k["id"] for k in keys if k["kid"] == _decode(revoked)["kid"])
    revoke = await a.client.delete(f"/api/exchange/pairing-keys/{key_id}", headers=alpha.admin.headers)
    assert revoke.status_code == 200 and revoke.json()["state"] == "revoked"
    await _refused(b, revoked, 410, "pairing_key_revoked")

    async with a.db.sessionmaker() as session:
        assert (await session.scalars(select(Connection))).all() == []
    used = await issue()
    ok = await b.client.post("/api/exchange/connections", json={"key": used}, headers=beta.admin.headers)
    assert ok.status_code == 201
    again = await b.client.post("/api/exchange/connections", json={"key": used}, headers=beta.admin.headers)
    assert again.status_code == 409 and again.json()["code"] == "pairing_key_used"
    async with b.db.sessionmaker() as session:
        assert (
            len((await session.scalars(select(Connection).where(Connection.account_id == beta.id))).all())
            == 1
        )


async def test_one_key_used_by_two_acceptors_at_once_connects_once(two_hubs: tuple[Hub, Hub]) -> None:
    """EX-1 (works once) under concurrency: two handshakes with one key at the same moment (two
    connection ids) make exactly one connection; the other is refused 409 pairing_key_used. On
    PostgreSQL both requests read the unused key before either commits: only the conditional update
    keeps the second one out."""
    a, b = two_hubs
    alpha, beta = a.tenants[0], b.tenants[0]
    issued = await a.client.post("/api/exchange/pairing-keys", json={}, headers=alpha.admin.headers)
    key = issued.json()["key"]
    answers = await asyncio.gather(
        *(
            b.client.post("/api/exchange/connections", json={"key": key}, headers=beta.admin.headers)
            for _ in range(2)
        )
    )
    assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
    refused = next(r for r in answers if r.status_code == 409)
    assert refused.json()["code"] == "pairing_key_used"
    async with a.db.sessionmaker() as session:
        mine = (await session.scalars(select(Connection).where(Connection.account_id == alpha.id))).all()
    async with b.db.sessionmaker() as session:
        theirs = (await session.scalars(select(Connection).where(Connection.account_id == beta.id))).all()
    assert len(mine) == 1 and len(theirs) == 1 and mine[0].uuid == theirs[0].uuid


async def test_a_bad_handshake_answer_is_502_partner_answer_invalid(
    two_hubs: tuple[Hub, Hub], router: Router
) -> None:
    """EX-2: an answer to the handshake that is not JSON, not a JWS, or not signed by the key it
    announces is 502 partner_answer_invalid (the partner is at fault, not the administrator), and
    no connection is stored."""
    a, b = two_hubs
    other_private, _ = crypto.new_keypair()
    _, announced = crypto.new_keypair()
    claims = {
        "v": 1,
        "conn": "00000000-0000-4000-8000-000000000000",
        "hub": "http://hub-a.test",
        "name": "Alpha Security",
        "public_key": announced,
        "nonce": "n" * 24,
        "iat": "2026-01-01T00:00:00Z",
    }
    wrongly_signed = crypto.sign(other_private, f"{claims['conn']}/issuer", json.dumps(claims).encode())
    for answer in (
        httpx.Response(200, text="<html>hello</html>"),
        httpx.Response(200, json={"jws": "not.a.jws"}),
        httpx.Response(200, json={"jws": wrongly_signed}),
    ):

        async def tap(request: httpx.Request, answer: httpx.Response = answer) -> httpx.Response | None:
            return answer if request.url.path == "/api/exchange/handshake" else None

        router.tap = tap
        issued = await a.client.post(
            "/api/exchange/pairing-keys", json={}, headers=a.tenants[0].admin.headers
        )
        await _refused(b, issued.json()["key"], 502, "partner_answer_invalid")


async def test_partner_address_must_be_https(two_hubs: tuple[Hub, Hub], router: Router) -> None:
    """EX-10 safety: without allow_insecure_partners, an http, loopback or private partner address,
    or a host name that resolves to one, is refused before any request leaves the hub; a name that
    does not resolve is refused as invalid."""
    _, b = two_hubs
    strict = b.settings.server.__class__(public_url=b.url, allow_insecure_partners=False)
    b.app.state.settings = b.settings.__class__(
        data_dir=b.settings.data_dir,
        database=b.settings.database,
        server=strict,
        files=b.settings.files,
        security=b.settings.security,
    )
    # This machine's own name resolves to a loopback or private address: refused by what it
    # resolves to, not by how it is spelled.
    own_name = socket.gethostname()
    own_addresses = {info[4][0] for info in socket.getaddrinfo(own_name, 443)}
    assert not any(ipaddress.ip_address(address).is_global for address in own_addresses)
    for hub, code in (
        ("http://hub-a.test", "partner_url_insecure"),
        ("https://127.0.0.1:8443", "partner_url_insecure"),
        ("https://localhost", "partner_url_insecure"),
        ("https://10.1.2.3", "partner_url_insecure"),
        (f"https://{own_name}", "partner_url_insecure"),
        ("https://no-such-hub.invalid", "partner_url_invalid"),
    ):
        key = _encode({"v": 1, "hub": hub, "kid": "k" * 24, "secret": "s" * 43})  # type: ignore[dict-item]
        before = len(router.requests)
        await _refused(b, key, 400, code)
        assert len(router.requests) == before


async def test_disconnect_ends_both_sides(two_hubs: tuple[Hub, Hub]) -> None:
    """EX-3: either side disconnects; the other side sees the connection as ended."""
    a, b = two_hubs
    alpha, beta = a.tenants[0], b.tenants[0]
    a_conn, b_conn = await pair(a, alpha, b, beta)
    ended = await b.client.post(f"/api/exchange/connections/{b_conn}/disconnect", headers=beta.admin.headers)
    assert ended.status_code == 200 and ended.json()["state"] == "ended" and ended.json()["ended_by"] == "us"
    await drain(a, b)
    mine = (await a.client.get(f"/api/exchange/connections/{a_conn}", headers=alpha.admin.headers)).json()
    assert mine["state"] == "ended" and mine["ended_by"] == "partner" and mine["ended_at"]


async def test_partner_ended_and_its_notice_lost_ends_here_on_the_next_message(
    two_hubs: tuple[Hub, Hub], router: Router
) -> None:
    """EX-3: B disconnects while A's hub is down, so B's notice does not arrive. A's next message is
    answered 410 connection_ended: A marks the connection ended by the partner, so both sides show
    it ended, and A's later transfers are refused."""
    a, b = two_hubs
    alpha, beta = a.tenants[0], b.tenants[0]
    a_conn, b_conn = await pair(a, alpha, b, beta)
    original = await desk.new_ticket(a.client, alpha)
    await desk.transfer(a.client, alpha, original["id"], a_conn)
    await drain(a, b)
    router.down.add("hub-a.test")
    ended = await b.client.post(f"/api/exchange/connections/{b_conn}/disconnect", headers=beta.admin.headers)
    assert ended.status_code == 200
    await desk.comment(a.client, alpha, original["id"], "anyone there?", public=False, pass_to_partner=True)
    await drain(a)
    mine = (await a.client.get(f"/api/exchange/connections/{a_conn}", headers=alpha.admin.headers)).json()
    assert mine["state"] == "ended" and mine["ended_by"] == "partner" and mine["ended_at"]
    another = await desk.new_ticket(a.client, alpha)
    refused = await a.client.post(
        f"/api/exchange/tickets/{another['id']}/transfer",
        json={"connection_id": a_conn},
        headers=alpha.dispatcher.headers,
    )
    assert refused.status_code == 409 and refused.json()["code"] == "connection_ended"


async def test_a_body_over_the_partner_limit_is_never_sent() -> None:
    """EX-10: a message over the partner's 16 MiB inbox limit is refused before it is sent (the
    delivery dead-letters it at once instead of retrying a request the partner must refuse)."""
    url = "https://partner.example/api/exchange/inbox"
    with respx.mock(assert_all_called=True) as partner:
        route = partner.post(url).respond(200, json={"outcome": "applied"})
        async with httpx.AsyncClient() as http:
            with pytest.raises(MessageTooLarge):
                await post_to_partner(http, url, {"jws": "x" * MAX_INBOX_BYTES})
            answer = await post_to_partner(http, url, {"jws": "x" * 1000})
    assert answer.status == 200 and route.call_count == 1


async def test_a_partner_that_trickles_its_answer_is_cut_off_after_15_seconds() -> None:
    """EX-10: the 15 s total timeout: a partner sending a byte every 2 s never trips httpx's
    per-read timeout, yet the call ends after ``TOTAL_TIMEOUT`` (the delivery retries later)."""

    class Trickle(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for _ in range(30):
                await asyncio.sleep(2)
                yield b" "

    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=Trickle()))
    started = time.monotonic()
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(TimeoutError):
            await post_to_partner(http, "https://partner.example/api/exchange/inbox", {"jws": "x"})
    assert TOTAL_TIMEOUT <= time.monotonic() - started < TOTAL_TIMEOUT + 3
