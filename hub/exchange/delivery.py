"""Delivering queued exchange messages to the partner's inbox (EX-10).

The message is signed at each attempt (a fresh ``sent_at``, the same ``id``), so a partner that
was down for hours still gets a message inside its freshness window, and recognises a repeat.
No session is held during the HTTP call.
"""

from __future__ import annotations

import httpx
import msgspec

from hub.db import utcnow
from hub.exchange import crypto
from hub.exchange.models import Connection, ConnectionState
from hub.exchange.service import TOPIC
from hub.exchange.transport import post_to_partner
from hub.jobs import wake_job
from hub.outbox import (
    DeliveryContext,
    MessageView,
    PermanentDeliveryError,
    TransientDeliveryError,
    outbox_handler,
)
from hub.outbox.service import OUTBOX_JOB

__all__ = ["INBOX_PATH", "deliver", "sign_envelope"]

INBOX_PATH = "/api/exchange/inbox"
# Answers that mean "the partner already has it": the effect happened once; stop retrying.
_ALREADY = {"message_already_received"}


def sign_envelope(connection: Connection, envelope: dict[str, object]) -> str:
    stamped = {**envelope, "sent_at": utcnow().isoformat()}
    return crypto.sign(
        connection.private_key,
        connection.public_key,
        f"{connection.uuid}/{connection.side}",
        msgspec.json.encode(stamped),
    )


@outbox_handler(TOPIC)
async def deliver(ctx: DeliveryContext, message: MessageView) -> None:
    envelope = message.payload["envelope"]
    async with ctx.db.sessionmaker() as session:
        connection = await session.get(Connection, message.payload["connection_id"])
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
    except ValueError as exc:
        raise TransientDeliveryError(str(exc)) from exc
    if answer.status in (200, 202) or answer.code in _ALREADY:
        # One shared ticket's messages go one per worker round (ordering key); start the next round
        # now instead of after the poll interval, so a burst flows at network speed.
        wake_job(OUTBOX_JOB)
        return
    if kind == "connection.ended" and answer.code == "connection_ended":
        return
    error = f"HTTP {answer.status} {answer.code or ''}".strip()
    if answer.status >= 500 or answer.status in (408, 429):
        raise TransientDeliveryError(error)
    # A stale message (clock skew, long queueing) is signed afresh on the next attempt.
    if answer.code == "message_stale":
        raise TransientDeliveryError(error)
    raise PermanentDeliveryError(error)
