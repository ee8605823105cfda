"""Writing to the outbox (in the caller's transaction) and the administrators' dead-letter view."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import after_commit, utcnow
from hub.errors import Conflict, NotFound
from hub.jobs import wake_job
from hub.outbox.models import OutboxMessage, OutboxStatus

__all__ = ["OUTBOX_JOB", "enqueue", "get_message", "retry_dead"]

OUTBOX_JOB = "outbox"


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
    values = {
        "account_id": account_id,
        "topic": topic,
        "payload": payload,
        "idempotency_key": idempotency_key,
        "ordering_key": ordering_key,
        "status": OutboxStatus.PENDING,
        "attempts": 0,
        "max_attempts": max_attempts,
        "next_attempt_at": not_before or utcnow(),
        "created_at": utcnow(),
    }
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(OutboxMessage).values(**values).on_conflict_do_nothing(index_elements=["idempotency_key"])
    )
    await session.execute(statement)
    after_commit(session, lambda: wake_job(OUTBOX_JOB))


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
