"""Pairing, connections and the sending side of the partner exchange (EX-1..5, EX-7, EX-8).

Nothing here talks to a partner inside a database transaction: messages are queued in the
outbox (``send``) and delivered after commit by ``hub.exchange.delivery``; the one synchronous
call, the pairing handshake, runs with no session open.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import uuid
from datetime import timedelta
from typing import Any

import httpx
import msgspec
import structlog
from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from contracts.exchange import (
    SUPPORTED_VERSIONS,
    Body,
    ConnectAccepted,
    ConnectionEnded,
    ConnectRequest,
    EndClient,
    FilesPosted,
    PairingKey,
    SignedToken,
    TicketRated,
    TicketSentBack,
    TicketTransfer,
)
from hub.accounts.models import Account
from hub.db import Database, utcnow
from hub.desk.actors import Actor
from hub.errors import BadRequest, Conflict, Gone, HubError, NotFound, Unauthorized, Unprocessable
from hub.exchange import crypto
from hub.exchange.files import blob_batches, files_to_send, fits_partner, ticket_files, to_send_on
from hub.exchange.models import (
    Connection,
    ConnectionState,
    InboundMessage,
    PairingKeyRecord,
    SharedTicket,
)
from hub.exchange.schemas import (
    ConnectionRead,
    DeliveryStatus,
    PairingKeyCreate,
    PairingKeyRead,
    PartnerFiles,
    PartnerLinkRead,
    PartnerRate,
    PartnerSendBack,
    TransferCreate,
)
from hub.exchange.transport import check_partner_address, post_to_partner
from hub.notifications import notify
from hub.outbox import enqueue
from hub.outbox.models import OutboxMessage, OutboxStatus
from hub.paging import Rows, by_id, fetch_page
from hub.settings import Settings

__all__ = [
    "KEY_PREFIX",
    "TOPIC",
    "accept_handshake",
    "connect_with_key",
    "connection_read",
    "disconnect",
    "get_connection",
    "issue_pairing_key",
    "list_connections",
    "list_pairing_keys",
    "mirror_public_files",
    "partner_links",
    "pass_files",
    "rate_partner",
    "record_protocol_error",
    "record_rejection",
    "revoke_pairing_key",
    "send",
    "send_back",
    "transfer",
]

log = structlog.get_logger("hub.exchange")
TOPIC = "exchange.message"
KEY_PREFIX = "hubpair1."
HANDSHAKE_PATH = "/api/exchange/handshake"
CLOCK_SKEW = timedelta(minutes=5)


class PartnerRefused(HubError):
    """The partner hub answered the handshake with a refusal; its status and code are passed on."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail, code=code)
        self.status = status if 400 <= status < 500 else 502
        self.title = "The partner hub refused"


# --- pairing keys (EX-1) ------------------------------------------------------------------------


def _key_state(record: PairingKeyRecord) -> str:
    if record.revoked_at is not None:
        return "revoked"
    if record.used_at is not None:
        return "used"
    return "expired" if record.expires_at <= utcnow() else "usable"


def pairing_key_read(record: PairingKeyRecord) -> PairingKeyRead:
    return PairingKeyRead(
        id=record.id,
        kid=record.kid,
        label=record.label,
        created_at=record.created_at,
        expires_at=record.expires_at,
        used_at=record.used_at,
        revoked_at=record.revoked_at,
        connection_id=record.connection_id,
        state=_key_state(record),
    )


async def issue_pairing_key(
    session: AsyncSession,
    account_id: int,
    employee_id: int | None,
    settings: Settings,
    data: PairingKeyCreate,
) -> tuple[PairingKeyRecord, str]:
    """A new key and its one-time text. Only the verifier derived from the secret is stored."""
    secret = crypto.new_secret()
    _, verifier = crypto.pairing_keypair(secret)
    record = PairingKeyRecord(
        account_id=account_id,
        kid=secrets.token_urlsafe(18),
        verifier=verifier,
        label=data.label,
        created_by_id=employee_id,
        created_at=utcnow(),
        expires_at=utcnow() + timedelta(hours=data.expires_in_hours),
    )
    session.add(record)
    await session.flush()
    payload = PairingKey(hub=settings.server.public_url, kid=record.kid, secret=secret)
    return record, KEY_PREFIX + crypto.b64url(msgspec.json.encode(payload))


async def list_pairing_keys(
    session: AsyncSession, account_id: int, *, cursor: str | None = None, limit: int = 50
) -> Rows:
    """Newest first."""
    query = select(PairingKeyRecord).where(PairingKeyRecord.account_id == account_id)
    order = by_id(PairingKeyRecord.id, newest_first=True)
    return await fetch_page(session, query, order, cursor=cursor, limit=limit)


async def revoke_pairing_key(session: AsyncSession, account_id: int, key_id: int) -> PairingKeyRecord:
    record = await session.get(PairingKeyRecord, key_id)
    if record is None or record.account_id != account_id:
        raise NotFound("No such pairing key", code="pairing_key_not_found")
    if record.used_at is not None:
        raise Conflict("The key was already used; disconnect the partner instead", code="pairing_key_used")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
    return record


def decode_pairing_key(text: str) -> PairingKey:
    text = text.strip()
    if not text.startswith(KEY_PREFIX):
        raise BadRequest("This is not a pairing key", code="pairing_key_malformed")
    try:
        encoded = text[len(KEY_PREFIX) :]
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        return msgspec.json.decode(raw, type=PairingKey)
    except (ValueError, binascii.Error, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadRequest("This is not a pairing key", code="pairing_key_malformed") from exc


# --- the handshake (EX-2) -----------------------------------------------------------------------


async def connect_with_key(
    db: Database, http: httpx.AsyncClient, settings: Settings, account_id: int, key_text: str
) -> Connection:
    """The acceptor's side: prove the secret to the issuing hub, exchange keys, store the connection.

    Runs without an open session during the HTTP call (the issuer may be this very process)."""
    key = decode_pairing_key(key_text)
    hub_url = await check_partner_address(key.hub, settings)
    async with db.sessionmaker() as session:
        account = await session.get(Account, account_id)
        own_key = await session.scalar(
            select(PairingKeyRecord.id).where(
                PairingKeyRecord.kid == key.kid, PairingKeyRecord.account_id == account_id
            )
        )
    if account is None:
        raise NotFound("No such account", code="account_not_found")
    if own_key is not None:
        raise Conflict("This key was issued by your own account", code="pairing_key_own")
    private, public = crypto.new_keypair()
    request = ConnectRequest(
        kid=key.kid,
        conn=str(uuid.uuid4()),
        hub=settings.server.public_url,
        name=account.name,
        public_key=public,
        nonce=secrets.token_urlsafe(18),
        iat=utcnow(),
        versions=list(SUPPORTED_VERSIONS),
    )
    proof_private, _ = crypto.pairing_keypair(key.secret)
    token = crypto.sign(proof_private, key.kid, msgspec.json.encode(request))
    try:
        answer = await post_to_partner(http, hub_url + HANDSHAKE_PATH, {"jws": token})
    except (httpx.HTTPError, ValueError, TimeoutError) as exc:
        raise PartnerRefused(
            502, "partner_unreachable", f"The partner hub did not answer: {exc!r}"[:300]
        ) from exc
    if answer.status != 200:
        detail = answer.body.get("detail") if isinstance(answer.body, dict) else None
        raise PartnerRefused(
            answer.status, answer.code or "partner_refused", detail or f"HTTP {answer.status}"
        )
    accepted = _verify_accepted(answer.body, request)
    connection = Connection(
        account_id=account_id,
        uuid=request.conn,
        side="acceptor",
        partner_name=accepted.name,
        partner_hub_url=await check_partner_address(accepted.hub, settings),
        partner_public_key=accepted.public_key,
        private_key=private,
        public_key=public,
        state=ConnectionState.ACTIVE,
        created_at=utcnow(),
        protocol_version=accepted.v,
    )
    async with db.sessionmaker() as session, session.begin():
        session.add(connection)
    log.info("exchange_connected", account_id=account_id, connection=connection.uuid, side="acceptor")
    return connection


def _verify_accepted(body: Any, request: ConnectRequest) -> ConnectAccepted:
    try:
        token = msgspec.convert(body, SignedToken)
        kid = crypto.peek_kid(token.jws)
        unverified = base64.urlsafe_b64decode(token.jws.split(".")[1] + "==")
        claimed = msgspec.json.decode(unverified, type=ConnectAccepted)
    except (
        msgspec.ValidationError,
        msgspec.DecodeError,
        ValueError,
        IndexError,
        binascii.Error,
        Unauthorized,
    ) as exc:
        raise PartnerRefused(502, "partner_answer_invalid", "The partner hub's answer is malformed") from exc
    # Signed by the key it announces: proves the issuer holds the private half.
    try:
        accepted = msgspec.json.decode(crypto.verify(token.jws, claimed.public_key), type=ConnectAccepted)
    except Unauthorized as exc:
        raise PartnerRefused(502, "partner_answer_invalid", "The partner hub's answer is not signed") from exc
    if accepted.v not in request.versions:
        raise PartnerRefused(502, "partner_answer_invalid", "The partner hub chose a version we do not speak")
    if kid != f"{request.conn}/issuer" or accepted.conn != request.conn or accepted.nonce != request.nonce:
        raise PartnerRefused(502, "partner_answer_invalid", "The partner hub's answer does not match")
    return accepted


async def accept_handshake(session: AsyncSession, settings: Settings, token: SignedToken) -> SignedToken:
    """The issuer's side: check the proof against the stored verifier, use the key up, connect."""
    kid = crypto.peek_kid(token.jws)
    record = await session.scalar(select(PairingKeyRecord).where(PairingKeyRecord.kid == kid))
    if record is None:
        raise Unauthorized("Unknown pairing key", code="pairing_key_invalid")
    payload = crypto.verify(token.jws, record.verifier)  # wrong secret: 401 bad_signature
    try:
        request = msgspec.json.decode(payload, type=ConnectRequest)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BadRequest(f"Malformed handshake: {exc}", code="handshake_malformed") from exc
    now = utcnow()
    if request.kid != kid or abs(now - request.iat) > CLOCK_SKEW:
        raise Unauthorized("Stale or mismatched handshake", code="handshake_stale")
    version = _common_version(request.versions)
    if record.revoked_at is not None:
        raise Gone("The pairing key was revoked", code="pairing_key_revoked")
    if record.used_at is not None:
        raise Conflict("The pairing key was already used", code="pairing_key_used")
    if record.expires_at <= now:
        raise Gone("The pairing key has expired", code="pairing_key_expired")
    partner_hub = await check_partner_address(request.hub, settings)
    taken = await session.scalar(select(Connection.id).where(Connection.uuid == request.conn))
    if taken is not None:
        raise Conflict("This connection id is taken", code="connection_exists")
    # EX-1 works once, also when two acceptors race with one key: only the transaction whose
    # conditional update finds the key still unused goes on (the other waits for the row, then
    # finds it used).
    claimed = await session.execute(
        update(PairingKeyRecord)
        .where(
            PairingKeyRecord.id == record.id,
            PairingKeyRecord.used_at.is_(None),
            PairingKeyRecord.revoked_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("The pairing key was already used", code="pairing_key_used")
    account = await session.get(Account, record.account_id)
    assert account is not None
    private, public = crypto.new_keypair()
    connection = Connection(
        account_id=record.account_id,
        uuid=request.conn,
        side="issuer",
        partner_name=request.name,
        partner_hub_url=partner_hub,
        partner_public_key=request.public_key,
        private_key=private,
        public_key=public,
        state=ConnectionState.ACTIVE,
        created_at=now,
        protocol_version=version,
    )
    session.add(connection)
    await session.flush()
    record.connection_id = connection.id
    accepted = ConnectAccepted(
        v=version,  # type: ignore[arg-type]  # one of SUPPORTED_VERSIONS
        conn=request.conn,
        hub=settings.server.public_url,
        name=account.name,
        public_key=public,
        nonce=request.nonce,
        iat=now,
    )
    log.info("exchange_connected", account_id=record.account_id, connection=request.conn, side="issuer")
    return SignedToken(crypto.sign(private, f"{request.conn}/issuer", msgspec.json.encode(accepted)))


def _common_version(offered: list[int]) -> int:
    """The highest protocol version both hubs speak, else 400 ``version_unsupported``."""
    common = set(offered) & set(SUPPORTED_VERSIONS)
    if not common:
        raise BadRequest(
            f"This hub speaks protocol versions {list(SUPPORTED_VERSIONS)}",
            code="version_unsupported",
            versions=list(SUPPORTED_VERSIONS),
        )
    return max(common)


# --- connections (EX-3) -------------------------------------------------------------------------


async def get_connection(session: AsyncSession, account_id: int, connection_id: int) -> Connection:
    connection = await session.get(Connection, connection_id)
    if connection is None or connection.account_id != account_id:
        raise NotFound("No such partner connection", code="connection_not_found")
    return connection


async def list_connections(
    session: AsyncSession, account_id: int, *, cursor: str | None = None, limit: int = 50
) -> Rows:
    """Oldest first."""
    query = select(Connection).where(Connection.account_id == account_id)
    return await fetch_page(session, query, by_id(Connection.id), cursor=cursor, limit=limit)


async def delivery_status(session: AsyncSession, connection: Connection) -> DeliveryStatus:
    """Per-connection view of the outbox (EX-10): last success, backlog, dead letters, last error."""
    mine = OutboxMessage.ordering_key.like(connection.ordering_prefix + "%")
    unfinished = (OutboxStatus.PENDING, OutboxStatus.DELIVERING)
    row = (
        await session.execute(
            select(
                func.max(OutboxMessage.delivered_at),
                func.count(case((OutboxMessage.status.in_(unfinished), 1))),
                func.count(case((OutboxMessage.status == OutboxStatus.DEAD, 1))),
            ).where(mine)
        )
    ).one()
    last_error = await session.scalar(
        select(OutboxMessage.last_error)
        .where(mine, OutboxMessage.last_error.is_not(None))
        .order_by(OutboxMessage.id.desc())
        .limit(1)
    )
    held = await session.scalar(
        select(func.count()).where(
            InboundMessage.connection_id == connection.id, InboundMessage.status == "held"
        )
    )
    return DeliveryStatus(
        last_success_at=row[0],
        backlog=int(row[1]),
        dead=int(row[2]),
        last_error=last_error,
        held=int(held or 0),
    )


async def connection_read(session: AsyncSession, connection: Connection) -> ConnectionRead:
    return ConnectionRead(
        id=connection.id,
        uuid=connection.uuid,
        partner_name=connection.partner_name,
        partner_hub_url=connection.partner_hub_url,
        side=connection.side,
        state=connection.state,
        since=connection.created_at,
        ended_at=connection.ended_at,
        ended_by=connection.ended_by,
        delivery=await delivery_status(session, connection),
    )


async def disconnect(session: AsyncSession, account_id: int, connection_id: int, actor: Actor) -> Connection:
    connection = await get_connection(session, account_id, connection_id)
    if connection.state == ConnectionState.ENDED:
        return connection
    connection.state = ConnectionState.ENDED
    connection.ended_at = utcnow()
    connection.ended_by = "us"
    account = await session.get(Account, account_id)
    await send(session, connection, None, ConnectionEnded(by_name=account.name if account else "partner"))
    return connection


# --- sending ------------------------------------------------------------------------------------


async def send(session: AsyncSession, connection: Connection, link: SharedTicket | None, body: Body) -> str:
    """Queue one message to the partner in the caller's transaction; returns its id.

    ``seq`` counts per shared ticket, so the receiver can apply in order; the ordering key keeps
    one shared ticket's messages in line in the outbox, under the connection's key prefix."""
    message_id = str(uuid.uuid4())
    envelope: dict[str, Any] = {
        "v": connection.protocol_version,
        "id": message_id,
        "conn": connection.uuid,
        "sender": connection.side,
        "body": msgspec.to_builtins(body),
    }
    if link is not None:
        envelope |= {"ticket": link.uuid, "seq": await _next_seq(session, link)}
    await enqueue(
        session,
        account_id=connection.account_id,
        topic=TOPIC,
        payload={"connection_id": connection.id, "envelope": envelope},
        idempotency_key=f"exchange:{message_id}",
        ordering_key=connection.ordering_key(link.uuid if link is not None else None),
    )
    return message_id


async def _next_seq(session: AsyncSession, link: SharedTicket) -> int:
    """The link's next outgoing number, drawn in one atomic UPDATE ... RETURNING.

    The row lock it takes is held to commit, so two transactions sending on one shared ticket get
    distinct numbers in commit order (their outbox rows too), whatever else either of them has
    locked: no lost update of a counter read earlier without a lock."""
    if link in session.dirty:
        await session.flush()  # the UPDATE below must not be overwritten by a pending change
    seq = await session.scalar(
        update(SharedTicket)
        .where(SharedTicket.id == link.id)
        .values(out_seq=SharedTicket.out_seq + 1)
        .returning(SharedTicket.out_seq)
        .execution_options(synchronize_session=False)
    )
    assert seq is not None
    set_committed_value(link, "out_seq", seq)
    return int(seq)


async def active_links(
    session: AsyncSession, account_id: int, ticket_id: int
) -> list[tuple[SharedTicket, Connection]]:
    rows = await session.execute(
        select(SharedTicket, Connection)
        .join(Connection, Connection.id == SharedTicket.connection_id)
        .where(
            SharedTicket.account_id == account_id,
            SharedTicket.ticket_id == ticket_id,
            Connection.state == ConnectionState.ACTIVE,
        )
        .order_by(SharedTicket.id)
    )
    return [(link, connection) for link, connection in rows.tuples()]


# --- transfer and resolution (EX-4, EX-8) -------------------------------------------------------


async def _end_client(session: AsyncSession, ticket: Any) -> EndClient:
    from hub.people.models import Company, Contact, ServiceObject

    company = await session.get(Company, ticket.company_id) if ticket.company_id else None
    contact = await session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    obj = await session.get(ServiceObject, ticket.object_id) if ticket.object_id else None
    phones = [*(company.phones if company else [])]
    if contact is not None:
        phones += [p for p in (contact.phone, contact.mobile) if p]
    return EndClient(
        company=company.name if company else None,
        contact=contact.name if contact else None,
        phones=phones[:20],
        email=(contact.email if contact else None) or (company.email if company else None),
        object_number=obj.number if obj else None,
        object_address=obj.address if obj else None,
    )


async def transfer(
    session: AsyncSession,
    settings: Settings,
    account_id: int,
    ticket_id: int,
    actor: Actor,
    data: TransferCreate,
) -> SharedTicket:
    from hub.desk import service as desk

    ticket = await desk.get_ticket(session, account_id, ticket_id)
    connection = await get_connection(session, account_id, data.connection_id)
    if connection.state != ConnectionState.ACTIVE:
        raise Conflict("The partner connection has ended", code="connection_ended")
    existing = await session.scalar(
        select(SharedTicket.direction).where(
            SharedTicket.ticket_id == ticket.id, SharedTicket.connection_id == connection.id
        )
    )
    if existing == "outgoing":
        raise Conflict(
            "The ticket was already transferred to this partner", code="ticket_already_transferred"
        )
    if existing == "incoming":
        # No loops: a ticket never goes back to the partner it came from.
        raise Conflict("The ticket came from this partner", code="ticket_from_this_partner")
    if ticket.type == "internal":
        raise Unprocessable("Internal tickets are not transferred", code="ticket_internal")
    rows = await ticket_files(session, account_id, ticket.id, data.file_ids)
    first, *more = blob_batches(settings, rows) or [[]]
    link = SharedTicket(
        account_id=account_id,
        connection_id=connection.id,
        ticket_id=ticket.id,
        uuid=str(uuid.uuid4()),
        direction="outgoing",
        include_client=data.include_client,
        out_seq=0,
        in_seq=0,
        created_at=utcnow(),
    )
    session.add(link)
    await session.flush()
    body = TicketTransfer(
        number=ticket.number,
        title=ticket.title,
        description=ticket.description or "",
        priority=ticket.priority,  # type: ignore[arg-type]  # the desk keeps one of the four
        client=await _end_client(session, ticket) if data.include_client else None,
        files=first,
    )
    await send(session, connection, link, body)
    for blobs in more:  # files beyond one message's budget follow the transfer, in order
        await send(session, connection, link, FilesPosted(author_name=_name(actor), files=blobs))
    desk.set_ext_flag(
        ticket, "partner", {"name": connection.partner_name, "status": "transferred", "number": None}
    )
    await desk.record_history(
        session,
        ticket,
        actor,
        "partner_transfer",
        {"partner": connection.partner_name, "include_client": data.include_client, "files": len(rows)},
    )
    return link


async def _outgoing_link(
    session: AsyncSession, account_id: int, ticket_id: int, connection_id: int | None
) -> tuple[Any, SharedTicket, Connection]:
    """The ticket (locked), and its link to the chosen (or latest) active partner."""
    from hub.desk import service as desk

    # The ticket's row lock serialises everything that sends on its links (seq, pending decision).
    ticket = await desk.get_ticket(session, account_id, ticket_id, for_update=True)
    links = [
        (link, connection)
        for link, connection in await active_links(session, account_id, ticket_id)
        if link.direction == "outgoing" and connection_id in (None, connection.id)
    ]
    if not links:
        raise NotFound("The ticket was not transferred to an active partner", code="partner_link_not_found")
    link, connection = links[-1]
    return ticket, link, connection


def _check_decidable(link: SharedTicket) -> None:
    """EX-8: one decision per resolution. A second one (double click, two dispatchers) would only
    be refused by the partner, which still holds the ticket as resolved until the first arrives."""
    if link.decision_pending:
        raise Conflict(
            "A rating or send-back is already on its way to the partner", code="partner_decision_pending"
        )
    if link.partner_status != "resolved":
        raise Conflict("The partner ticket is not resolved", code="partner_not_resolved")


def _name(actor: Actor) -> str:
    return (actor.name or "staff")[:200]


async def rate_partner(
    session: AsyncSession, account_id: int, ticket_id: int, actor: Actor, data: PartnerRate
) -> SharedTicket:
    """EX-8: confirm the partner's resolution with a score; the partner ticket becomes closed."""
    from hub.desk import service as desk

    ticket, link, connection = await _outgoing_link(session, account_id, ticket_id, data.connection_id)
    _check_decidable(link)
    await send(session, connection, link, TicketRated(score=data.score, comment=data.comment))
    link.decision_pending = True
    await desk.record_history(
        session, ticket, actor, "partner_rated", {"partner": connection.partner_name, "score": data.score}
    )
    return link


async def send_back(
    session: AsyncSession, account_id: int, ticket_id: int, actor: Actor, data: PartnerSendBack
) -> SharedTicket:
    """EX-8: refuse the partner's resolution with a comment; the partner ticket is reopened."""
    from hub.desk import service as desk

    ticket, link, connection = await _outgoing_link(session, account_id, ticket_id, data.connection_id)
    _check_decidable(link)
    await send(session, connection, link, TicketSentBack(comment=data.comment))
    link.decision_pending = True
    await desk.record_history(
        session,
        ticket,
        actor,
        "partner_sent_back",
        {"partner": connection.partner_name, "comment": data.comment},
    )
    return link


# What a partner refused, in words for the original ticket's people (EX-8, EX-10).
_REFUSED_WHAT = {
    "ticket.rated": "the rating",
    "ticket.sent_back": "the send-back",
    "comment.posted": "a comment",
    "files.posted": "files",
    "ticket.status": "a status update",
}


async def record_rejection(
    session: AsyncSession, connection: Connection, envelope: dict[str, Any], code: str, detail: str
) -> None:
    """The partner received a message of a shared ticket but its rules refused it: say so on the
    ticket (history and a private comment that goes nowhere) and let a new decision be made."""
    from hub.desk import service as desk
    from hub.exchange.inbox import ORIGIN

    link = await session.scalar(
        select(SharedTicket).where(
            SharedTicket.connection_id == connection.id, SharedTicket.uuid == envelope.get("ticket")
        )
    )
    if link is None:
        return
    kind = str(envelope["body"]["kind"])
    if kind in ("ticket.rated", "ticket.sent_back"):
        link.decision_pending = False
    partner = Actor("partner", None, connection.partner_name)
    ticket = await desk.get_ticket(session, connection.account_id, link.ticket_id)
    await desk.record_history(
        session,
        ticket,
        partner,
        "partner_refused",
        {"partner": connection.partner_name, "kind": kind, "code": code, "detail": detail},
    )
    await desk.add_comment(
        session,
        connection.account_id,
        ticket.id,
        partner,
        f"{connection.partner_name} did not accept {_REFUSED_WHAT.get(kind, kind)}: {detail} ({code})",
        public=False,
        author_name=connection.partner_name,
        context={ORIGIN: connection.id},
    )


async def record_protocol_error(
    session: AsyncSession, connection: Connection, envelope: dict[str, Any], code: str, reason: str
) -> None:
    """A message the partner refused as a protocol error (a used id or number): the ticket's history
    says so and the account's administrators are alerted; the message itself is dead-lettered."""
    from hub.accounts.models import Employee
    from hub.desk import service as desk

    link = await session.scalar(
        select(SharedTicket).where(
            SharedTicket.connection_id == connection.id, SharedTicket.uuid == envelope.get("ticket")
        )
    )
    ticket = await desk.get_ticket(session, connection.account_id, link.ticket_id) if link else None
    if ticket is not None:
        await desk.record_history(
            session,
            ticket,
            Actor("system", None, "exchange"),
            "partner_protocol_error",
            {"partner": connection.partner_name, "code": code, "message": envelope["id"], "reason": reason},
        )
    admins = await session.scalars(
        select(Employee.id).where(
            Employee.account_id == connection.account_id,
            Employee.role == "administrator",
            Employee.active.is_(True),
        )
    )
    await notify(
        session,
        account_id=connection.account_id,
        event="partner_protocol_error",
        ticket=ticket,
        recipients=[("employee", admin) for admin in admins],
        data={"partner": connection.partner_name, "code": code, "reason": reason},
        key=f"exchange-protocol-error:{envelope['id']}",
    )


async def partner_links(session: AsyncSession, account_id: int, ticket_id: int) -> list[PartnerLinkRead]:
    """EX-7: what the ticket knows about its partner tickets."""
    from hub.desk import service as desk

    await desk.get_ticket(session, account_id, ticket_id)
    rows = await session.execute(
        select(SharedTicket, Connection)
        .join(Connection, Connection.id == SharedTicket.connection_id)
        .where(SharedTicket.account_id == account_id, SharedTicket.ticket_id == ticket_id)
        .order_by(SharedTicket.id)
    )
    return [
        PartnerLinkRead(
            id=link.id,
            connection_id=connection.id,
            partner_name=connection.partner_name,
            connection_state=connection.state,
            direction=link.direction,
            shared_uuid=link.uuid,
            partner_number=link.partner_number,
            partner_status=link.partner_status,
            partner_responsible=link.partner_responsible,
            partner_updated_at=link.partner_updated_at,
            client=link.client,
            can_rate=link.direction == "outgoing"
            and link.partner_status == "resolved"
            and not link.decision_pending
            and connection.state == ConnectionState.ACTIVE,
            created_at=link.created_at,
        )
        for link, connection in rows.tuples()
    ]


async def pass_files(
    session: AsyncSession,
    settings: Settings,
    account_id: int,
    ticket_id: int,
    actor: Actor,
    data: PartnerFiles,
) -> SharedTicket:
    """EX-5: chosen files of the original ticket go to the partner ticket, public there."""
    _, link, connection = await _outgoing_link(session, account_id, ticket_id, data.connection_id)
    rows = await ticket_files(session, account_id, ticket_id, data.file_ids)
    for blobs in blob_batches(settings, rows):
        await send(session, connection, link, FilesPosted(author_name=_name(actor), files=blobs))
    return link


async def mirror_public_files(db: Database, settings: Settings) -> int:
    """EX-6: public files added to a partner ticket go back to the original (private there); EX-5:
    files attached to a comment passed to the partner follow it (public there).

    The desk has no file event, so a short periodic job picks them up; ``files_upto`` on the link
    (moved in the same transaction as the enqueue) makes each file go once, also with several
    workers. Each link is mirrored in a transaction of its own that locks the ticket before the
    link, the order every other writer of a shared ticket takes."""
    from hub.desk.models import TicketFile

    async with db.sessionmaker() as session:
        link_ids = list(
            await session.scalars(
                select(SharedTicket.id)
                .join(Connection, Connection.id == SharedTicket.connection_id)
                .where(
                    Connection.state == ConnectionState.ACTIVE,
                    select(TicketFile.id).where(to_send_on(SharedTicket)).exists(),
                )
                .order_by(SharedTicket.id)
                .limit(100)
            )
        )
    sent = 0
    for link_id in link_ids:
        async with db.sessionmaker() as session, session.begin():
            sent += await _mirror_link(session, settings, link_id)
    return sent


async def _mirror_link(session: AsyncSession, settings: Settings, link_id: int) -> int:
    from hub.desk import service as desk

    link = await session.get(SharedTicket, link_id)
    if link is None:
        return 0
    await desk.get_ticket(session, link.account_id, link.ticket_id, for_update=True)
    link = await session.scalar(
        select(SharedTicket)
        .where(SharedTicket.id == link_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    connection = await session.get(Connection, link.connection_id) if link is not None else None
    if link is None or connection is None or connection.state != ConnectionState.ACTIVE:
        return 0
    rows = await files_to_send(session, link)  # read under the lock: another worker's are gone
    if not rows:
        return 0
    link.files_upto = rows[-1].id
    too_large = [row for row in rows if not fits_partner(row)]
    if too_large:
        await _too_large_to_mirror(session, link, connection, too_large)
    author = (rows[0].uploaded_by_name or "staff")[:200]
    for blobs in blob_batches(settings, [row for row in rows if fits_partner(row)]):
        await send(session, connection, link, FilesPosted(author_name=author, files=blobs))
    return len(rows)


async def _too_large_to_mirror(
    session: AsyncSession, link: SharedTicket, connection: Connection, rows: list[Any]
) -> None:
    """A file over the per-message limit cannot reach the partner: the ticket's history says so,
    instead of the job failing on it at every round."""
    from hub.desk import service as desk

    ticket = await desk.get_ticket(session, link.account_id, link.ticket_id)
    await desk.record_history(
        session,
        ticket,
        Actor("system", None, "exchange"),
        "partner_file_not_sent",
        {"partner": connection.partner_name, "files": [row.filename for row in rows], "reason": "too large"},
    )
