"""The outbox delivery worker.

A round claims due messages in one short transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
several workers share the work; SQLite serialises writers by itself), delivers them with no
session held, then records each outcome in another short transaction, guarded by the claim token
so a worker whose lease ran out cannot overwrite its successor. A message whose worker died is
claimed again once its lease passes: delivery is at least once, and the idempotency key makes the
effect once.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timedelta

import structlog
from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from tenacity import RetryCallState, wait_exponential_jitter

from hub.db import utcnow
from hub.jobs import JobContext, register_job
from hub.outbox.handlers import (
    DeliveryContext,
    MessageView,
    PermanentDeliveryError,
    TransientDeliveryError,
    handler_for,
)
from hub.outbox.models import DeliveryAttempt, OutboxMessage, OutboxStatus
from hub.outbox.service import OUTBOX_JOB
from hub.settings import OutboxSettings

__all__ = ["backoff_seconds", "deliver_due", "drain_outbox"]

log = structlog.get_logger("hub.outbox")
_UNFINISHED = (OutboxStatus.PENDING, OutboxStatus.DELIVERING)


def backoff_seconds(settings: OutboxSettings, attempts: int) -> float:
    """Delay before the next attempt: exponential from the initial delay, capped, with jitter."""
    wait = wait_exponential_jitter(
        initial=settings.initial_delay_seconds,
        max=settings.max_delay_seconds,
        jitter=settings.initial_delay_seconds,
    )
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = max(attempts, 1)
    return float(wait(state))


def _due_condition(now: datetime):  # type: ignore[no-untyped-def]
    earlier = aliased(OutboxMessage)
    blocked_by_earlier = exists().where(
        earlier.ordering_key == OutboxMessage.ordering_key,
        earlier.id < OutboxMessage.id,
        earlier.status.in_(_UNFINISHED),
    )
    return and_(
        or_(
            and_(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.next_attempt_at <= now),
            and_(OutboxMessage.status == OutboxStatus.DELIVERING, OutboxMessage.locked_until < now),
        ),
        or_(OutboxMessage.ordering_key.is_(None), ~blocked_by_earlier),
    )


async def _claim(
    session: AsyncSession, settings: OutboxSettings, now: datetime
) -> tuple[str, list[MessageView]]:
    token = secrets.token_hex(16)
    candidates = select(OutboxMessage.id).where(_due_condition(now)).order_by(OutboxMessage.id)
    candidates = candidates.limit(settings.batch_size)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True, of=OutboxMessage)
    ids = list(await session.scalars(candidates))
    if not ids:
        return token, []
    rows = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids))
        .values(
            status=OutboxStatus.DELIVERING,
            attempts=OutboxMessage.attempts + 1,
            locked_until=now + timedelta(seconds=settings.lease_seconds),
            claim_token=token,
        )
        .returning(
            OutboxMessage.id,
            OutboxMessage.account_id,
            OutboxMessage.topic,
            OutboxMessage.payload,
            OutboxMessage.idempotency_key,
            OutboxMessage.ordering_key,
            OutboxMessage.attempts,
            OutboxMessage.max_attempts,
        )
    )
    claimed = [MessageView(*row) for row in rows]
    return token, sorted(claimed, key=lambda m: m.id)


async def _deliver_one(ctx: DeliveryContext, message: MessageView) -> tuple[str, str | None]:
    """Run the topic's handler; the outcome is ``delivered``, ``retry`` or ``dead`` with an error."""
    handler = handler_for(message.topic)
    if handler is None:
        return "dead", f"no handler for topic {message.topic!r}"
    try:
        await handler(ctx, message)
    except PermanentDeliveryError as exc:
        return "dead", f"permanent: {exc}"[:2000]
    except TransientDeliveryError as exc:
        return "retry", f"transient: {exc}"[:2000]
    except Exception as exc:  # a handler bug must not lose the message: retry, bounded
        log.exception("outbox_handler_failed", topic=message.topic, message_id=message.id)
        return "retry", f"unexpected: {exc!r}"[:2000]
    return "delivered", None


async def _record(
    session: AsyncSession,
    settings: OutboxSettings,
    message: MessageView,
    token: str,
    outcome: str,
    error: str | None,
    started: datetime,
) -> None:
    now = utcnow()
    bound = message.max_attempts or settings.max_attempts
    if outcome == "retry" and message.attempts >= bound:
        outcome = "dead"
        error = f"gave up after {message.attempts} attempts; last error: {error}"
    values: dict[str, object] = {"locked_until": None, "claim_token": None, "last_error": error}
    if outcome == "delivered":
        values |= {"status": OutboxStatus.DELIVERED, "delivered_at": now}
    elif outcome == "dead":
        values |= {"status": OutboxStatus.DEAD, "dead_at": now}
    else:
        delay = backoff_seconds(settings, message.attempts)
        values |= {"status": OutboxStatus.PENDING, "next_attempt_at": now + timedelta(seconds=delay)}
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message.id, OutboxMessage.claim_token == token)
        .values(**values)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        log.warning("outbox_claim_lost", message_id=message.id)
        return
    session.add(
        DeliveryAttempt(
            message_id=message.id,
            attempt=message.attempts,
            started_at=started,
            finished_at=now,
            outcome=outcome,
            error=error,
        )
    )
    if outcome == "dead":
        log.warning("outbox_dead_letter", message_id=message.id, topic=message.topic, error=error)


async def deliver_due(ctx: JobContext, *, now: datetime | None = None) -> int:
    """One round: claim what is due, deliver it, record the outcomes. Returns how many were tried."""
    settings = ctx.settings.outbox
    async with ctx.db.sessionmaker() as session, session.begin():
        token, messages = await _claim(session, settings, now or utcnow())
    if not messages:
        return 0
    delivery = DeliveryContext(ctx.db, ctx.settings, ctx.http)
    started = utcnow()
    outcomes = await asyncio.gather(*(_deliver_one(delivery, message) for message in messages))
    async with ctx.db.sessionmaker() as session, session.begin():
        for message, (outcome, error) in zip(messages, outcomes, strict=True):
            await _record(session, settings, message, token, outcome, error, started)
    return len(messages)


async def drain_outbox(ctx: JobContext, *, now: datetime | None = None, max_rounds: int = 100) -> int:
    """Deliver until nothing is due (tests and the CLI). ``now`` lets a caller look ahead in time."""
    total = 0
    for _ in range(max_rounds):
        tried = await deliver_due(ctx, now=now)
        if tried == 0:
            break
        total += tried
    return total


@register_job(OUTBOX_JOB, interval=lambda settings: settings.outbox.poll_seconds)
async def outbox_job(ctx: JobContext) -> None:
    # Keep going while there is work, so a burst does not wait a poll interval per batch.
    while await deliver_due(ctx) >= ctx.settings.outbox.batch_size:
        pass
