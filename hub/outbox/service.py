"""Writing to the outbox (in the caller's transaction) and the administrators' dead-letter view."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import after_commit, dialect_insert, utcnow
from hub.errors import Conflict, NotFound
from hub.jobs import wake_job
from hub.outbox.models import OutboxMessage, OutboxStatus

__all__ = ["OUTBOX_JOB", "Outgoing", "enqueue", "enqueue_many", "get_message", "retry_dead"]

OUTBOX_JOB = "outbox"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One outbound effect for :func:`enqueue_many` (the arguments of :func:`enqueue`)."""

    topic: str
    payload: dict[str, Any]
    idempotency_key: str
    ordering_key: str | None = None
    max_attempts: int | None = None
    not_before: datetime | None = None


async def enqueue(
    session: AsyncSession,
    *,
    account_id: int | None,
    topic: str,
    payload: dict[str, Any],
    idempotency_key: str,
    ordering_key: str | None = None,
    max_attempts: int | None = None,
    not_before: datetime | None = None,
) -> None:
    """Queue one outbound effect in the caller's transaction.

    Nothing leaves the process until that transaction commits; then the local worker is woken.
    Queueing an already known ``idempotency_key`` does nothing.
    """
    outgoing = Outgoing(topic, payload, idempotency_key, ordering_key, max_attempts, not_before)
    await enqueue_many(session, account_id, [outgoing])


async def enqueue_many(session: AsyncSession, account_id: int | None, messages: Sequence[Outgoing]) -> None:
    """:func:`enqueue` for several effects in one statement (a fan-out), same guarantees."""
    if not messages:
        return
    now = utcnow()
    rows = [
        {
            "account_id": account_id,
            "topic": m.topic,
            "payload": m.payload,
            "idempotency_key": m.idempotency_key,
            "ordering_key": m.ordering_key,
            "status": OutboxStatus.PENDING,
            "attempts": 0,
            "max_attempts": m.max_attempts,
            "next_attempt_at": m.not_before or now,
            "created_at": now,
        }
        for m in messages
    ]
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    await session.execute(_INSERTS[dialect == "postgresql"], rows)
    after_commit(session, _wake)


_TABLE = cast(Table, OutboxMessage.__table__)
# Built once: constructing and cache-keying the statement per call cost more than running it.
_INSERTS = {
    pg: dialect_insert("postgresql" if pg else "sqlite", _TABLE).on_conflict_do_nothing(
        index_elements=["idempotency_key"]
    )
    for pg in (False, True)
}


def _wake() -> None:
    wake_job(OUTBOX_JOB)


async def get_message(session: AsyncSession, account_id: int, message_id: int) -> OutboxMessage:
    message = await session.get(OutboxMessage, message_id)
    if message is None or message.account_id != account_id:
        raise NotFound("No such outbox message", code="outbox_message_not_found")
    return message


async def retry_dead(session: AsyncSession, account_id: int, message_id: int) -> OutboxMessage:
    """Give a dead-lettered message a fresh set of attempts."""
    message = await get_message(session, account_id, message_id)
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message.id, OutboxMessage.status == OutboxStatus.DEAD)
        .values(status=OutboxStatus.PENDING, attempts=0, next_attempt_at=utcnow(), dead_at=None)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise Conflict("Only dead-lettered messages can be retried", code="outbox_not_dead")
    await session.refresh(message)
    after_commit(session, lambda: wake_job(OUTBOX_JOB))
    return message
