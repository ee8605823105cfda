"""The outbox delivery worker.

A round claims due messages in one short transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
several workers share the work; SQLite serialises writers by itself), delivers them with no
session held (the messages of one ordering key one after the other, in order, the others side by
side), then records each outcome in another short transaction, guarded by the claim token
so a worker whose lease ran out cannot overwrite its successor. While it delivers, a worker
renews its claims' lease every few seconds (a heartbeat), so the lease can be short: a message
whose worker died (kill -9, a lost machine) is claimed again seconds later, not minutes, while a
slow delivery that is still going is never taken over. Delivery is at least once, and the
idempotency key makes the effect once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, exists, func, insert, literal_column, or_, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from hub.db import utcnow
from hub.jobs import JobContext, periodic_job
from hub.metrics import OUTBOX_DELIVERIES
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
    """Delay before the next attempt: the initial delay doubled per failed attempt, plus up to one
    initial delay of jitter (so the messages of a dead endpoint do not all retry at the same
    moment), capped at the maximum."""
    doublings = min(max(attempts, 1) - 1, 62)  # beyond any cap; keeps the float finite
    delay = settings.initial_delay_seconds * 2.0**doublings
    return min(delay + random.uniform(0, settings.initial_delay_seconds), settings.max_delay_seconds)


# How many consecutive messages of one ordering key a round may take: they go one after the
# other, so a busy shared ticket is not held to one message per round trip, and a long backlog
# of one key does not take the whole batch from the others.
CHAIN_LENGTH = 8


def _due(message: type[OutboxMessage], now: datetime):  # type: ignore[no-untyped-def]
    """Claimable now: pending and due, or claimed by a worker whose lease ran out.

    ``unfinished`` (the partial indexes' own predicate, written inline so the planner can match it
    even in a generic plan) and ``next_attempt_at <= now`` let the claim walk those indexes. The
    latter holds for an expired claim too: a message is claimed only once due, and its lease ends
    after that, so ``locked_until < now`` implies ``next_attempt_at <= now``."""
    return and_(
        _unfinished(message),
        message.next_attempt_at <= now,
        or_(
            message.status == OutboxStatus.PENDING,
            and_(message.status == OutboxStatus.DELIVERING, message.locked_until < now),
        ),
    )


def _unfinished(message: type[OutboxMessage]):  # type: ignore[no-untyped-def]
    return message.status.in_([literal_column(f"'{status.value}'") for status in _UNFINISHED])


def _candidates(now: datetime, limit: int):  # type: ignore[no-untyped-def]
    """Due messages with the id of the unfinished message before each in its ordering key.

    A keyed message is a candidate only if everything unfinished before it is due as well (so it
    can be taken in the same round, in front of it) and at most ``CHAIN_LENGTH - 1`` are.

    Read in id order through ``ix_outbox_messages_unfinished`` and cut at ``limit``: PostgreSQL
    stops after the batch, testing only the rows it passed, instead of testing and sorting every
    due message (seconds at a backlog of 10,000). The look-backs go through the partial index on
    (ordering_key, id), which skips each key's delivered history. The cheap depth test comes
    first, so a key's deep backlog is turned away after reading ``CHAIN_LENGTH`` index rows."""
    earlier = aliased(OutboxMessage)
    before = (
        earlier.ordering_key == OutboxMessage.ordering_key,
        earlier.id < OutboxMessage.id,
        _unfinished(earlier),
    )
    waiting_before = exists().where(*before, ~_due(earlier, now))
    too_deep = select(earlier.id).where(*before).offset(CHAIN_LENGTH - 1).limit(1).exists()
    previous = select(func.max(earlier.id)).where(*before).scalar_subquery()
    return (
        select(OutboxMessage.id, previous)
        .where(
            _due(OutboxMessage, now),
            or_(OutboxMessage.ordering_key.is_(None), and_(~too_deep, ~waiting_before)),
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    )


def _in_line(rows: Iterable[tuple[int, int | None]]) -> list[int]:
    """The candidates whose predecessor in their ordering key is none or taken in this round.

    A gap (a predecessor locked by a concurrent claim, or past the limit) stops its key here, so
    two workers never deliver one key's messages side by side."""
    taken: set[int] = set()
    for message_id, previous in rows:
        if previous is None or previous in taken:
            taken.add(message_id)
    return sorted(taken)


async def read_in_index_order(session: AsyncSession) -> None:
    """Make this PostgreSQL transaction's claim walk ``ix_outbox_messages_unfinished`` in id order.

    The planner picks between that walk (stopped at the batch) and "filter every due row, then
    sort" by its row estimate, and the statistics are taken when the outbox is quiet: they say
    next to nothing is pending, so a burst of 10,000 got the sort plan (a second per claim in
    ``bench/outbox.py``). With sorting priced out the walk is the plan whatever the statistics say;
    the claim's other statements sort nothing."""
    await session.execute(text("SET LOCAL enable_sort = off"))


async def _claim(
    session: AsyncSession, settings: OutboxSettings, now: datetime
) -> tuple[str, list[MessageView]]:
    token = secrets.token_hex(16)
    candidates = _candidates(now, settings.batch_size)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await read_in_index_order(session)
        candidates = candidates.with_for_update(skip_locked=True, of=OutboxMessage)
    ids = _in_line((row[0], row[1]) for row in await session.execute(candidates))
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


Outcome = tuple[str, str | None, datetime]


async def _deliver_one(ctx: DeliveryContext, message: MessageView) -> Outcome:
    """Run the topic's handler; the outcome is ``delivered``, ``retry`` or ``dead`` with an error."""
    started = utcnow()
    handler = handler_for(message.topic)
    if handler is None:
        return "dead", f"no handler for topic {message.topic!r}", started
    try:
        await handler(ctx, message)
    except PermanentDeliveryError as exc:
        return "dead", f"permanent: {exc}"[:2000], started
    except TransientDeliveryError as exc:
        return "retry", f"transient: {exc}"[:2000], started
    except Exception as exc:  # a handler bug must not lose the message: retry, bounded
        log.exception("outbox_handler_failed", topic=message.topic, message_id=message.id)
        return "retry", f"unexpected: {exc!r}"[:2000], started
    return "delivered", None, started


# How long one round may keep delivering a chain before it hands the rest back: a long backlog of
# one key must not keep the round (and the other keys' next messages) waiting.
ROUND_SECONDS = 60.0


async def _deliver_chain(ctx: DeliveryContext, chain: list[MessageView]) -> list[Outcome]:
    """One ordering key's messages in order. After one that must be retried, the rest are
    ``released`` untried: they wait behind it (a dead-lettered one does not hold them up). So are
    those left when the round has run for ``ROUND_SECONDS``."""
    outcomes: list[Outcome] = []
    give_up_at = time.monotonic() + ROUND_SECONDS
    for message in chain:
        stop = outcomes and outcomes[-1][0] in ("retry", "released")
        if stop or time.monotonic() > give_up_at:
            outcomes.append(("released", None, utcnow()))
        else:
            outcomes.append(await _deliver_one(ctx, message))
    return outcomes


def _chains(messages: list[MessageView]) -> list[list[MessageView]]:
    by_key: dict[str, list[MessageView]] = {}
    chains: list[list[MessageView]] = []
    for message in messages:
        if message.ordering_key is None:
            chains.append([message])
        elif message.ordering_key in by_key:
            by_key[message.ordering_key].append(message)
        else:
            chains.append(by_key.setdefault(message.ordering_key, [message]))
    return chains


def _settle(
    settings: OutboxSettings, message: MessageView, outcome: str, error: str | None, now: datetime
) -> tuple[str, str | None, dict[str, Any]]:
    """The final outcome (a retry past the bound is dead) and the message's new column values."""
    values: dict[str, Any] = {"locked_until": None, "claim_token": None}
    if outcome == "released":  # never tried: back in line as it was, the attempt not counted
        values |= {"status": OutboxStatus.PENDING, "attempts": OutboxMessage.attempts - 1}
        return outcome, None, values
    bound = message.max_attempts or settings.max_attempts
    if outcome == "retry" and message.attempts >= bound:
        outcome = "dead"
        error = f"gave up after {message.attempts} attempts; last error: {error}"
    values["last_error"] = error
    if outcome == "delivered":
        values |= {"status": OutboxStatus.DELIVERED, "delivered_at": now}
    elif outcome == "dead":
        values |= {"status": OutboxStatus.DEAD, "dead_at": now}
    else:
        delay = backoff_seconds(settings, message.attempts)
        values |= {"status": OutboxStatus.PENDING, "next_attempt_at": now + timedelta(seconds=delay)}
    return outcome, error, values


async def _record(
    session: AsyncSession, settings: OutboxSettings, token: str, results: list[tuple[MessageView, Outcome]]
) -> None:
    """Store a round's outcomes, each guarded by the claim token, and one attempt row per try.

    The delivered messages (nearly all of them) get the same new values: one UPDATE for them all
    and one INSERT for all attempt rows, instead of two statements per message."""
    now = utcnow()
    settled = [
        (message, started, *_settle(settings, message, outcome, error, now))
        for message, (outcome, error, started) in results
    ]
    mine = update(OutboxMessage).where(OutboxMessage.claim_token == token).returning(OutboxMessage.id)
    kept: set[int] = set()
    delivered = [(message.id, values) for message, _, outcome, _, values in settled if outcome == "delivered"]
    if delivered:  # all with the same values
        ids = [message_id for message_id, _ in delivered]
        kept.update(await session.scalars(mine.where(OutboxMessage.id.in_(ids)).values(delivered[0][1])))
    for message, _, outcome, _, values in settled:
        if outcome != "delivered":
            kept.update(await session.scalars(mine.where(OutboxMessage.id == message.id).values(values)))
    attempts = []
    for message, started, outcome, error, _ in settled:
        if outcome == "released":
            continue
        if message.id not in kept:
            log.warning("outbox_claim_lost", message_id=message.id)
            continue
        if outcome == "dead":
            log.warning("outbox_dead_letter", message_id=message.id, topic=message.topic, error=error)
        OUTBOX_DELIVERIES.labels(topic=message.topic, outcome=outcome).inc()
        attempts.append(
            {
                "message_id": message.id,
                "attempt": message.attempts,
                "started_at": started,
                "finished_at": now,
                "outcome": outcome,
                "error": error,
            }
        )
    if attempts:
        await session.execute(insert(DeliveryAttempt), attempts)


async def _renew_lease(ctx: JobContext, token: str) -> None:
    """Keep this round's claims alive while it delivers: every third of the lease, push their
    ``locked_until`` a whole lease ahead. A worker that dies stops renewing, and its claims pass
    to another worker within one lease."""
    lease = ctx.settings.outbox.lease_seconds
    mine = (OutboxMessage.claim_token == token, OutboxMessage.status == OutboxStatus.DELIVERING)
    while True:
        await asyncio.sleep(lease / 3)
        try:
            async with ctx.db.sessionmaker() as session, session.begin():
                await session.execute(
                    update(OutboxMessage)
                    .where(*mine)
                    .values(locked_until=utcnow() + timedelta(seconds=lease))
                )
        except SQLAlchemyError:  # a missed beat only shortens the lease; the next one may get through
            log.warning("outbox_lease_renewal_failed", exc_info=True)


async def deliver_due(ctx: JobContext, *, now: datetime | None = None) -> int:
    """One round: claim what is due, deliver it, record the outcomes. Returns how many were tried."""
    settings = ctx.settings.outbox
    async with ctx.db.sessionmaker() as session, session.begin():
        token, messages = await _claim(session, settings, now or utcnow())
    if not messages:
        return 0
    delivery = DeliveryContext(ctx.db, ctx.settings, ctx.http)
    chains = _chains(messages)
    heartbeat = asyncio.create_task(_renew_lease(ctx, token))
    try:
        outcomes = await asyncio.gather(*(_deliver_chain(delivery, chain) for chain in chains))
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
    results = [
        (message, outcome)
        for chain, chain_outcomes in zip(chains, outcomes, strict=True)
        for message, outcome in zip(chain, chain_outcomes, strict=True)
    ]
    async with ctx.db.sessionmaker() as session, session.begin():
        await _record(session, settings, token, results)
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


@periodic_job(OUTBOX_JOB, interval=lambda settings: settings.outbox.poll_seconds)
async def outbox_job(ctx: JobContext) -> None:
    # Keep going while there is work, so a burst (or a shared ticket's next messages, which wait
    # for the ones before them) does not wait a poll interval per round.
    while await deliver_due(ctx) > 0:
        pass
