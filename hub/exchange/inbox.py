"""The receiving side of the protocol (EX-4..8, EX-10): verify, de-duplicate, order, apply.

Every refusal is raised before anything is written, so the request's transaction rolls back and a
refused message changes nothing. The message id is recorded in the same transaction as its effect:
applied exactly once, however often it is delivered.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import msgspec
import structlog
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.exchange import (
    CommentPosted,
    ConnectionEnded,
    Envelope,
    FileBlob,
    FilesPosted,
    InboxResult,
    SignedToken,
    StatusUpdate,
    TicketRated,
    TicketSentBack,
    TicketTransfer,
)
from hub.db import utcnow
from hub.desk.actors import Actor
from hub.desk.models import Comment
from hub.desk.workflow import FINAL
from hub.errors import (
    BadRequest,
    Conflict,
    Gone,
    HubError,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
)
from hub.exchange import crypto
from hub.exchange.files import check_blobs, store_blobs
from hub.exchange.models import Connection, ConnectionState, InboundMessage, SharedTicket
from hub.exchange.service import send
from hub.notifications import notify
from hub.settings import Settings

__all__ = [
    "MAX_AGE",
    "ORIGIN",
    "apply_held",
    "digest_of",
    "lock_shared_ticket",
    "partner_author",
    "receive",
    "send_status",
]

log = structlog.get_logger("hub.exchange")
# A signed message older (or further in the future) than this is refused as stale.
MAX_AGE = timedelta(minutes=5)
# Context key on desk calls made for a partner's message: subscribers never send these back.
ORIGIN = "exchange_origin"
# Which way each kind may travel: to the original's side (outgoing link) or the partner's (incoming).
_TO_ORIGINAL = (StatusUpdate,)
_TO_PARTNER = (TicketTransfer, TicketRated, TicketSentBack)
AUTHOR_MAX: int = Comment.__table__.c.author_name.type.length  # type: ignore[attr-defined]


async def _authenticate(session: AsyncSession, token: SignedToken) -> tuple[Connection, Envelope]:
    kid = crypto.peek_kid(token.jws)
    conn_uuid, _, sender = kid.partition("/")
    if sender not in ("issuer", "acceptor"):
        raise Unauthorized("Unknown key", code="unknown_key")
    receiver_side = "acceptor" if sender == "issuer" else "issuer"
    connection = await session.scalar(
        select(Connection).where(Connection.uuid == conn_uuid, Connection.side == receiver_side)
    )
    if connection is None:
        raise Unauthorized("Unknown key", code="unknown_key")
    payload = crypto.verify(token.jws, connection.partner_public_key)
    try:
        envelope = msgspec.json.decode(payload, type=Envelope)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BadRequest(f"Malformed message: {exc}", code="message_malformed") from exc
    if envelope.conn != conn_uuid or envelope.sender != sender:
        raise Unauthorized("The message does not match its key", code="unknown_key")
    if envelope.v != connection.protocol_version:
        raise BadRequest(
            f"This connection speaks protocol version {connection.protocol_version}", code="message_malformed"
        )
    if connection.state != ConnectionState.ACTIVE:
        raise Gone("The partner connection has ended", code="connection_ended")
    if abs(utcnow() - envelope.sent_at) > MAX_AGE:
        raise Unauthorized("The message is stale", code="message_stale")
    return connection, envelope


def digest_of(envelope: Envelope) -> str:
    """SHA-256 of the message as decoded, without ``sent_at`` (re-stamped at each attempt): a
    re-delivery has the digest of the first delivery, another message with the same id does not."""
    content = msgspec.to_builtins(envelope)
    content.pop("sent_at", None)
    return hashlib.sha256(msgspec.json.encode(content, order="sorted")).hexdigest()


async def receive(session: AsyncSession, settings: Settings, token: SignedToken) -> InboxResult:
    """Rules 1-8 of contracts/EXCHANGE.md section 3, in that order; a refusal changes nothing."""
    connection, envelope = await _authenticate(session, token)
    body = envelope.body
    check_blobs(_files_of(body))  # a file that does not match its hash is malformed: refused
    digest = digest_of(envelope)
    if isinstance(body, ConnectionEnded):
        await _check_not_seen(session, connection, envelope, digest)
        await _record(session, connection, envelope, "applied", digest)
        connection.state = ConnectionState.ENDED
        connection.ended_at = utcnow()
        connection.ended_by = "partner"
        log.info("exchange_disconnected_by_partner", connection=connection.uuid)
        return InboxResult(envelope.id, "applied")
    if envelope.ticket is None or envelope.seq is None:
        raise BadRequest("A ticket message needs ticket and seq", code="message_malformed")
    # Everything below reads and moves the shared ticket's position under its locks, so two
    # messages of one ticket (in any order, at once) never both read the same position.
    link = await lock_shared_ticket(session, connection, envelope.ticket)
    await _check_not_seen(session, connection, envelope, digest)
    if isinstance(body, TicketTransfer):
        return await _receive_transfer(session, settings, connection, link, envelope, digest)
    if link is None and (isinstance(body, _TO_ORIGINAL) or envelope.seq == 1):
        raise NotFound("No such ticket is shared on this connection", code="ticket_not_shared")
    if link is not None and not _direction_ok(link, body):
        raise Unprocessable("This message cannot travel in this direction", code="wrong_direction")
    await _check_seq_free(session, connection, envelope, link)
    if link is None or envelope.seq > link.in_seq + 1:
        # EX-10 order: wait for the predecessor (for a ticket not known yet: for its transfer).
        await _check_hold_limits(session, settings, connection, envelope, link)
        await _record(session, connection, envelope, "held", digest)
        return InboxResult(envelope.id, "held")
    record = await _record(session, connection, envelope, "applied", digest)
    refusal = await _apply_or_reject(session, settings, connection, link, envelope, record)
    await apply_held(session, settings, connection, link)
    if refusal is not None:
        return InboxResult(envelope.id, "rejected", code=refusal.code, detail=refusal.detail)
    return InboxResult(envelope.id, "applied")


async def _receive_transfer(
    session: AsyncSession,
    settings: Settings,
    connection: Connection,
    link: SharedTicket | None,
    envelope: Envelope,
    digest: str,
) -> InboxResult:
    assert isinstance(envelope.body, TicketTransfer) and envelope.ticket is not None
    if link is not None:
        raise Conflict("This ticket was already transferred", code="ticket_already_shared")
    if envelope.seq != 1:
        raise BadRequest("A transfer is message 1 of its ticket", code="message_malformed")
    await _record(session, connection, envelope, "applied", digest)
    link = await _apply_transfer(session, settings, connection, envelope.ticket, envelope.body)
    await apply_held(session, settings, connection, link)  # messages that overtook their transfer
    return InboxResult(envelope.id, "applied")


def _direction_ok(link: SharedTicket, body: Any) -> bool:
    if isinstance(body, _TO_ORIGINAL):
        return link.direction == "outgoing"
    if isinstance(body, _TO_PARTNER):
        return link.direction == "incoming"
    return True


async def lock_shared_ticket(
    session: AsyncSession, connection: Connection, shared_uuid: str
) -> SharedTicket | None:
    """Serialise everything that reads or moves one shared ticket's inbound position.

    Lock order: the shared ticket's advisory lock (PostgreSQL; it exists before the link does, so
    a message that overtakes its transfer waits for it), then the local ticket, then the link: the
    order a local change takes too (ticket, then the link's out_seq). SQLite has one writer."""
    from hub.desk import service as desk

    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"exchange:{connection.id}:{shared_uuid}".encode()).digest()[:8])
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key - (1 << 63)})
    query = select(SharedTicket).where(
        SharedTicket.connection_id == connection.id, SharedTicket.uuid == shared_uuid
    )
    link = await session.scalar(query)
    if link is None:
        return None
    await desk.get_ticket(session, connection.account_id, link.ticket_id, for_update=True)
    return await session.scalar(query.with_for_update().execution_options(populate_existing=True))


async def _check_not_seen(
    session: AsyncSession, connection: Connection, envelope: Envelope, digest: str
) -> None:
    """Rule 5: a re-delivery is ``message_already_received``; a different message under a used id
    is a protocol error the sender must see (``message_id_reused``), never "delivered"."""
    seen = (
        await session.execute(
            select(InboundMessage.id, InboundMessage.digest).where(
                InboundMessage.connection_id == connection.id, InboundMessage.message_id == envelope.id
            )
        )
    ).first()
    if seen is None:
        return
    if seen.digest not in (None, digest):  # None: received before digests were kept
        raise Conflict("Another message was received under this id", code="message_id_reused")
    raise Conflict("This message was already received", code="message_already_received")


async def _check_seq_free(
    session: AsyncSession, connection: Connection, envelope: Envelope, link: SharedTicket | None
) -> None:
    """Rule 7: a new message with a number already taken (applied, held or rejected) is a protocol
    error of the sender's numbering: ``seq_already_used``."""
    taken = await session.scalar(
        select(InboundMessage.message_id).where(
            InboundMessage.connection_id == connection.id,
            InboundMessage.ticket_uuid == envelope.ticket,
            InboundMessage.seq == envelope.seq,
        )
    )
    if taken is not None or (link is not None and (envelope.seq or 0) <= link.in_seq):
        raise Conflict(
            f"Message {envelope.seq} of this ticket was already received as another message",
            code="seq_already_used",
        )


async def _check_hold_limits(
    session: AsyncSession,
    settings: Settings,
    connection: Connection,
    envelope: Envelope,
    link: SharedTicket | None,
) -> None:
    """What one partner may make us hold: a bounded jump ahead, a bounded number of messages."""
    limits = settings.exchange
    expected = (link.in_seq if link is not None else 0) + 1
    if (envelope.seq or 0) - expected > limits.max_seq_ahead:
        raise Unprocessable(
            f"Message {envelope.seq} is too far ahead of the next expected one ({expected})",
            code="seq_too_far",
        )
    held = await session.scalar(
        select(func.count()).where(
            InboundMessage.connection_id == connection.id, InboundMessage.status == "held"
        )
    )
    if (held or 0) >= limits.max_held:
        raise TooManyRequests(
            f"{held} messages of this connection wait for their predecessors; try again later",
            code="too_many_held",
        )


def _files_of(body: Any) -> list[FileBlob]:
    return list(getattr(body, "files", None) or [])


async def _record(
    session: AsyncSession, connection: Connection, envelope: Envelope, status: str, digest: str
) -> InboundMessage:
    """Claim the message id first, so a concurrent duplicate fails on the unique key before any effect."""
    record = InboundMessage(
        account_id=connection.account_id,
        connection_id=connection.id,
        message_id=envelope.id,
        ticket_uuid=envelope.ticket,
        seq=envelope.seq,
        kind=type(envelope.body).__struct_config__.tag or "",
        status=status,
        digest=digest,
        envelope=msgspec.to_builtins(envelope) if status == "held" else None,
        received_at=utcnow(),
        applied_at=utcnow() if status == "applied" else None,
    )
    session.add(record)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("This message was already received", code="message_already_received") from exc
    return record


async def _apply_or_reject(
    session: AsyncSession,
    settings: Settings,
    connection: Connection,
    link: SharedTicket,
    envelope: Envelope,
    record: InboundMessage,
) -> HubError | None:
    """Apply one in-order message (the caller holds the ticket's locks); a refusal by this
    account's rules (a second rating, a comment on a closed ticket, ...) is recorded on the message
    instead of refusing the delivery. The ticket's sequence moves on either way, so one refused
    message never holds up the ones after it; the savepoint undoes whatever it had half done."""
    link.in_seq = envelope.seq or link.in_seq
    try:
        async with session.begin_nested():
            await _apply(session, settings, connection, link, envelope)
    except HubError as exc:
        record.error = f"{exc.code}: {exc.detail}"[:2000]
        log.info(
            "exchange_message_rejected",
            connection=connection.uuid,
            message=envelope.id,
            kind=record.kind,
            code=exc.code,
        )
        return exc
    return None


async def apply_held(
    session: AsyncSession, settings: Settings, connection: Connection, link: SharedTicket
) -> int:
    """Apply the held successors of the link's position, in order (caller holds the locks)."""
    applied = 0
    while True:
        held = await session.scalar(
            select(InboundMessage).where(
                InboundMessage.connection_id == connection.id,
                InboundMessage.ticket_uuid == link.uuid,
                InboundMessage.seq == link.in_seq + 1,
                InboundMessage.status == "held",
            )
        )
        if held is None or held.envelope is None:
            return applied
        envelope = msgspec.convert(held.envelope, Envelope)
        held.status, held.envelope, held.applied_at = "applied", None, utcnow()
        if not _direction_ok(link, envelope.body):  # held before its ticket was known
            link.in_seq = envelope.seq or link.in_seq
            held.error = "wrong_direction: this message cannot travel in this direction"
        else:
            await _apply_or_reject(session, settings, connection, link, envelope, held)
        applied += 1


def _actor(connection: Connection, name: str | None = None) -> Actor:
    return Actor("partner", None, name or connection.partner_name)


def _context(connection: Connection) -> dict[str, Any]:
    return {ORIGIN: connection.id}


async def _apply(
    session: AsyncSession, settings: Settings, connection: Connection, link: SharedTicket, envelope: Envelope
) -> None:
    from hub.desk import service as desk

    body = envelope.body
    ticket = await desk.get_ticket(session, connection.account_id, link.ticket_id)
    if isinstance(body, CommentPosted | FilesPosted) and ticket.status in FINAL:
        # Rule 8: received, but a closed ticket takes nothing new; the sender shows the refusal.
        raise Conflict(f"The ticket is {ticket.status}: it takes nothing new", code="ticket_final")
    if isinstance(body, CommentPosted):
        await _apply_comment(session, settings, connection, link, body)
    elif isinstance(body, FilesPosted):
        await store_blobs(
            session,
            settings,
            connection.account_id,
            ticket.id,
            _actor(connection, body.author_name),
            body.files,
            public=link.direction == "incoming",
        )
    elif isinstance(body, StatusUpdate):
        await _apply_status(session, connection, link, ticket, body)
    elif isinstance(body, TicketRated):
        await desk.rate_ticket(
            session, connection.account_id, ticket.id, _actor(connection), body.score, body.comment
        )
        ticket = await desk.get_ticket(session, connection.account_id, ticket.id)
        if ticket.status != "closed":
            await desk.change_status(session, connection.account_id, ticket.id, _actor(connection), "closed")
    elif isinstance(body, TicketSentBack):
        await desk.change_status(
            session, connection.account_id, ticket.id, _actor(connection), "reopened", comment=body.comment
        )


async def _apply_transfer(
    session: AsyncSession, settings: Settings, connection: Connection, shared_uuid: str, body: TicketTransfer
) -> SharedTicket:
    """EX-4: a new ticket in this account, source ``partner``, linked to the original."""
    from hub.desk import service as desk
    from hub.desk.schemas import TicketCreate

    ticket = await desk.create_ticket(
        session,
        connection.account_id,
        _actor(connection),
        TicketCreate(
            title=body.title, description=body.description, priority=body.priority, source="partner"
        ),
        context=_context(connection),
    )
    link = SharedTicket(
        account_id=connection.account_id,
        connection_id=connection.id,
        ticket_id=ticket.id,
        uuid=shared_uuid,
        direction="incoming",
        include_client=body.client is not None,
        client=msgspec.to_builtins(body.client) if body.client is not None else None,
        partner_number=body.number,
        out_seq=0,
        in_seq=1,
        created_at=utcnow(),
    )
    session.add(link)
    await session.flush()
    await store_blobs(
        session, settings, connection.account_id, ticket.id, _actor(connection), body.files, public=True
    )
    desk.set_ext_flag(
        ticket, "partner", {"name": connection.partner_name, "from_partner": True, "number": body.number}
    )
    await desk.record_history(
        session,
        ticket,
        _actor(connection),
        "partner_transfer_received",
        {"partner": connection.partner_name, "number": body.number},
    )
    # EX-7: tell the original our number and status at once.
    await send_status(session, connection, link, ticket)
    return link


async def _apply_comment(
    session: AsyncSession,
    settings: Settings,
    connection: Connection,
    link: SharedTicket,
    body: CommentPosted,
) -> None:
    """EX-5: from the original, public here. EX-6: from the partner ticket, private here, marked."""
    from hub.desk import service as desk

    public = link.direction == "incoming"
    comment = await desk.add_comment(
        session,
        connection.account_id,
        link.ticket_id,
        _actor(connection, body.author_name),
        body.body or "(files)",
        public=public,
        author_name=partner_author(body.author_name, connection.partner_name),
        context=_context(connection),
    )
    await store_blobs(
        session,
        settings,
        connection.account_id,
        link.ticket_id,
        _actor(connection, body.author_name),
        body.files,
        comment_id=comment.id,
        public=public,
    )


def partner_author(author: str, partner: str) -> str:
    """ "author (partner)" within the desk's author column: the author's name gives way first."""
    room = AUTHOR_MAX - len(partner) - 3
    return f"{author[:room]} ({partner})" if room > 0 else partner[:AUTHOR_MAX]


async def _apply_status(
    session: AsyncSession, connection: Connection, link: SharedTicket, ticket: Any, body: StatusUpdate
) -> None:
    """EX-7 tracking on the original; EX-9 notification of the partner's decision."""
    from hub.desk import service as desk

    previous = link.partner_status
    # Closed after our rating, reopened after our send-back: our own decision taking effect, which
    # our people need not be told of (EX-8, EX-9).
    ours = link.decision_pending and body.status in ("closed", "reopened")
    if body.status != "resolved":
        link.decision_pending = False
    link.partner_number = body.number
    link.partner_status = body.status
    link.partner_responsible = body.responsible_name
    link.partner_updated_at = body.changed_at
    desk.set_ext_flag(
        ticket,
        "partner",
        {
            "name": connection.partner_name,
            "number": body.number,
            "status": body.status,
            "responsible": body.responsible_name,
        },
    )
    if previous == body.status:
        return
    await desk.record_history(
        session,
        ticket,
        _actor(connection),
        "partner_status",
        {
            "partner": connection.partner_name,
            "number": body.number,
            "from": previous,
            "to": body.status,
            "comment": body.comment,
        },
    )
    if body.status in ("resolved", "cancelled", "closed", "reopened") and previous is not None and not ours:
        await _notify_decision(session, connection, ticket, body)


async def _notify_decision(
    session: AsyncSession, connection: Connection, ticket: Any, body: StatusUpdate
) -> None:
    """EX-9: the responsible and observers of the original ticket hear of the partner's decision."""
    from hub.desk import service as desk

    _, observers = (await desk.people_of(session, [ticket.id]))[ticket.id]
    recipients = [("employee", i) for i in dict.fromkeys([ticket.responsible_id, *observers]) if i]
    if not recipients:
        return
    await notify(
        session,
        account_id=connection.account_id,
        event="partner_decision",
        ticket=ticket,
        recipients=recipients,
        data={
            "partner": connection.partner_name,
            "partner_number": body.number,
            "status": body.status,
            "comment": body.comment,
        },
    )


async def send_status(
    session: AsyncSession,
    connection: Connection,
    link: SharedTicket,
    ticket: Any,
    comment: str | None = None,
) -> None:
    """EX-7: our ticket's number, status and responsible, to the original's side, with the comment
    of the status change (a resolution note, a cancellation reason) when there is one."""
    from hub.accounts.models import Employee

    responsible = await session.get(Employee, ticket.responsible_id) if ticket.responsible_id else None
    await send(
        session,
        connection,
        link,
        StatusUpdate(
            number=ticket.number,
            status=ticket.status,
            responsible_name=responsible.name if responsible else None,
            comment=comment,
            changed_at=utcnow(),
        ),
    )
