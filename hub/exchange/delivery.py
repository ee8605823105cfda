"""Delivering queued exchange messages to the partner's inbox (EX-10).

The message is signed at each attempt (a fresh ``sent_at``, the same ``id``), so a partner that
was down for hours still gets a message inside its freshness window, and recognises a repeat.
No session is held during the HTTP call.
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import structlog
from sqlalchemy import update

from hub.db import utcnow
from hub.exchange import crypto
from hub.exchange.models import Connection, ConnectionState
from hub.exchange.service import TOPIC, record_protocol_error, record_rejection
from hub.exchange.transport import MessageTooLarge, PartnerResponse, post_to_partner
from hub.outbox import (
    DeliveryContext,
    MessageView,
    PermanentDeliveryError,
    TransientDeliveryError,
    outbox_handler,
)

__all__ = ["INBOX_PATH", "deliver", "sign_envelope"]

INBOX_PATH = "/api/exchange/inbox"
log = structlog.get_logger("hub.exchange")
# Answers that mean "the partner already has it": the effect happened once; stop retrying.
_ALREADY = {"message_already_received"}
# Answers that mean our numbering or ids went wrong: never "delivered"; dead-lettered and alerted.
_PROTOCOL_ERRORS = {"message_id_reused", "seq_already_used"}


def sign_envelope(connection: Connection, envelope: dict[str, object]) -> str:
    stamped = {**envelope, "sent_at": utcnow().isoformat()}
    return crypto.sign(
        connection.private_key,
        f"{connection.uuid}/{connection.side}",
        msgspec.json.encode(stamped),
    )


@outbox_handler(TOPIC)
async def deliver(ctx: DeliveryContext, message: MessageView) -> None:
    envelope = message.payload["envelope"]
    connection = await _connection(ctx, message.payload["connection_id"])
    if connection is None:
        raise PermanentDeliveryError("the connection no longer exists")
    kind = envelope["body"]["kind"]
    if connection.state != ConnectionState.ACTIVE and kind != "connection.ended":
        raise PermanentDeliveryError("the partner connection has ended")
    token = sign_envelope(connection, envelope)
    try:
        answer = await post_to_partner(ctx.http, connection.partner_hub_url + INBOX_PATH, {"jws": token})
    except httpx.HTTPError as exc:
        raise TransientDeliveryError(f"partner hub unreachable: {exc!r}") from exc
    except TimeoutError as exc:
        raise TransientDeliveryError("partner hub too slow to answer") from exc
    except MessageTooLarge as exc:
        raise PermanentDeliveryError(str(exc)) from exc
    except ValueError as exc:
        raise TransientDeliveryError(str(exc)) from exc
    if answer.status in (200, 202) or answer.code in _ALREADY:
        if _outcome(answer) == "rejected":
            await _rejected(ctx, connection, envelope, answer)
        return
    if answer.code in _PROTOCOL_ERRORS:
        reason = await _protocol_error(ctx, connection, envelope, answer)
        raise PermanentDeliveryError(reason)
    if answer.code == "connection_ended":
        if kind == "connection.ended":
            return
        # EX-3: the partner ended the connection and its notice never reached us: end it here too.
        await _ended_by_partner(ctx, connection)
        raise PermanentDeliveryError("the partner connection has ended")
    error = f"HTTP {answer.status} {answer.code or ''}".strip()
    if answer.status >= 500 or answer.status in (408, 429):
        raise TransientDeliveryError(error)
    # A stale message (clock skew, long queueing) is signed afresh on the next attempt.
    if answer.code == "message_stale":
        raise TransientDeliveryError(error)
    raise PermanentDeliveryError(error)


async def _connection(ctx: DeliveryContext, connection_id: int) -> Connection | None:
    """The connection as read once per worker round: a busy shared ticket sends several messages
    a round, and each read would queue behind the requests for the database connection."""
    key = (Connection, connection_id)
    if key not in ctx.round_cache:
        async with ctx.db.sessionmaker() as session:
            ctx.round_cache[key] = await session.get(Connection, connection_id)
    cached: Connection | None = ctx.round_cache[key]
    return cached


def _outcome(answer: PartnerResponse) -> str | None:
    return answer.body.get("outcome") if isinstance(answer.body, dict) else None


async def _rejected(
    ctx: DeliveryContext, connection: Connection, envelope: dict[str, Any], answer: PartnerResponse
) -> None:
    """The partner has the message but its rules refused it: shown on our ticket, not retried."""
    body = answer.body if isinstance(answer.body, dict) else {}
    code = str(body.get("code") or "rejected")[:100]
    detail = str(body.get("detail") or "refused by the partner")[:1000]
    async with ctx.db.sessionmaker() as session, session.begin():
        await record_rejection(session, connection, envelope, code, detail)


async def _protocol_error(
    ctx: DeliveryContext, connection: Connection, envelope: dict[str, Any], answer: PartnerResponse
) -> str:
    """The partner refused a message as a second use of an id or a number: nothing reached it, and
    retrying cannot help. Recorded on the ticket and sent to the account's administrators."""
    code = str(answer.code)
    reason = (
        f"protocol error: the partner refused message {envelope['id']} (seq {envelope.get('seq')}) "
        f"as {code}; it was not applied there"
    )
    log.error("exchange_protocol_error", connection=connection.uuid, message=envelope["id"], code=code)
    async with ctx.db.sessionmaker() as session, session.begin():
        await record_protocol_error(session, connection, envelope, code, reason)
    return reason


async def _ended_by_partner(ctx: DeliveryContext, connection: Connection) -> None:
    async with ctx.db.sessionmaker() as session, session.begin():
        await session.execute(
            update(Connection)
            .where(Connection.id == connection.id, Connection.state == ConnectionState.ACTIVE)
            .values(state=ConnectionState.ENDED, ended_at=utcnow(), ended_by="partner")
        )
