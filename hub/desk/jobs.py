"""The desk sweeper: pending tickets whose ``until`` passed go back (DESK-4), SLA clocks past their
deadline are flagged (DESK-5), resolved tickets past the account's auto-close timeout close.

Safe with several hub processes: each ticket is changed under its row lock (FOR UPDATE SKIP
LOCKED on PostgreSQL; SQLite has one writer), after re-checking the condition, and SLA flags are
set with conditional UPDATEs, so a second sweeper finds nothing left to do.

Each ticket is handled in its own savepoint: one ticket that cannot change (bad old data, a
failing subscriber) is logged and skipped instead of undoing the whole round every round.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import Account
from hub.db import utcnow
from hub.desk import service
from hub.desk.actors import Actor
from hub.desk.models import Ticket
from hub.desk.sla.sweeper import flag_overdue_replies
from hub.jobs import JobContext, periodic_job

__all__ = ["SweepResult", "desk_sweeper", "sweep"]

BATCH = 200
RUNNING = ("open", "in_progress", "reopened", "pending")

log = structlog.get_logger("hub.desk.jobs")


@dataclass
class SweepResult:
    returned: int = 0
    reaction_breached: int = 0
    resolution_breached: int = 0
    reply_overdue: int = 0
    closed: int = 0


async def _each(
    session: AsyncSession, tickets: Iterable[Ticket], work: Callable[[Ticket], Awaitable[bool]], job: str
) -> int:
    """Run ``work`` per ticket in a savepoint; count the tickets it changed, skip the ones that fail."""
    done = 0
    # Ids first: a failed savepoint expires what it touched, and an async session cannot lazy-load.
    for ticket_id, ticket in [(t.id, t) for t in tickets]:
        try:
            async with session.begin_nested():
                done += await work(ticket)
        except Exception:
            log.exception("desk sweeper skipped a ticket", job=job, ticket_id=ticket_id)
    return done


async def _locked(session: AsyncSession, ids: list[int]) -> list[Ticket]:
    if not ids:
        return []
    query = (
        select(Ticket)
        .where(Ticket.id.in_(ids))
        .order_by(Ticket.id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list(await session.scalars(query))


async def _return_pending(session: AsyncSession, now: datetime) -> int:
    ids = list(
        await session.scalars(
            select(Ticket.id)
            .where(Ticket.status == "pending", Ticket.pending_until <= now)
            .order_by(Ticket.pending_until)
            .limit(BATCH)
        )
    )

    async def give_back(ticket: Ticket) -> bool:
        if ticket.status != "pending" or ticket.pending_until is None or ticket.pending_until > now:
            return False  # another process got there first
        await service.return_from_pending(
            session, ticket, Actor.system("sweeper"), now, "pending_until_passed"
        )
        return True

    return await _each(session, await _locked(session, ids), give_back, "pending")


async def _flag(session: AsyncSession, ticket: Ticket, clock: str, now: datetime, seconds: int) -> bool:
    column = Ticket.sla_reaction_breached if clock == "reaction" else Ticket.sla_resolution_breached
    changed = await session.scalar(
        update(Ticket)
        .where(Ticket.id == ticket.id, column.is_(False))
        .values({column: True})
        .returning(Ticket.id)
        .execution_options(synchronize_session=False)
    )
    if changed is None:
        return False
    setattr(ticket, column.key, True)
    await service.record_history(
        session, ticket, Actor.system("sla"), "sla_breached", {"clock": clock, "seconds": seconds}, now=now
    )
    return True


async def _flag_reaction(session: AsyncSession, now: datetime) -> int:
    rows = list(
        await session.scalars(
            select(Ticket)
            .where(
                Ticket.status.in_(RUNNING),
                Ticket.reacted_at.is_(None),
                Ticket.sla_reaction_breached.is_(False),
                Ticket.reaction_due_at < now,
            )
            .order_by(Ticket.reaction_due_at, Ticket.id)
            .limit(BATCH)
        )
    )

    async def flag(ticket: Ticket) -> bool:
        return await _flag(session, ticket, "reaction", now, service._seconds(now - ticket.created_at))

    return await _each(session, rows, flag, "reaction")


def _resolution_clock(ticket: Ticket, now: datetime) -> datetime:
    """Where the resolution clock stands: pending time does not count (DESK-5)."""
    clock_now = ticket.pending_since if ticket.status == "pending" and ticket.pending_since else now
    return clock_now - timedelta(seconds=ticket.pending_seconds)


async def _flag_resolution(session: AsyncSession, now: datetime) -> int:
    """Pending time moves the deadline, so ``due < now`` only narrows the candidates: walk them in
    deadline order past the ones that are not late yet, so a real breach is never starved."""

    async def flag(ticket: Ticket) -> bool:
        assert ticket.resolution_due_at is not None
        effective = _resolution_clock(ticket, now)
        if effective <= ticket.resolution_due_at:
            return False
        seconds = service._seconds(effective - ticket.created_at)
        return await _flag(session, ticket, "resolution", now, seconds)

    flagged = 0
    after: tuple[datetime, int] | None = None
    while flagged < BATCH:
        query = select(Ticket).where(
            Ticket.status.in_(RUNNING),
            Ticket.resolution_seconds.is_(None),
            Ticket.sla_resolution_breached.is_(False),
            Ticket.resolution_due_at < now,
        )
        if after is not None:
            query = query.where(
                or_(
                    Ticket.resolution_due_at > after[0],
                    (Ticket.resolution_due_at == after[0]) & (Ticket.id > after[1]),
                )
            )
        rows = list(await session.scalars(query.order_by(Ticket.resolution_due_at, Ticket.id).limit(BATCH)))
        if not rows:
            break
        last_due, last_id = rows[-1].resolution_due_at, rows[-1].id
        assert last_due is not None
        flagged += await _each(session, rows, flag, "resolution")
        if len(rows) < BATCH:
            break
        after = (last_due, last_id)
    return flagged


async def _auto_close(session: AsyncSession, now: datetime) -> int:
    hours_values = list(await session.scalars(select(Account.auto_close_hours).distinct()))
    done = 0
    for hours in hours_values:
        accounts = select(Account.id).where(Account.auto_close_hours == hours).scalar_subquery()
        ids = list(
            await session.scalars(
                select(Ticket.id)
                .where(
                    Ticket.status == "resolved",
                    Ticket.resolved_at <= now - timedelta(hours=hours),
                    Ticket.account_id.in_(accounts),
                )
                .order_by(Ticket.resolved_at)
                .limit(BATCH)
            )
        )

        async def close(ticket: Ticket, hours: float = hours) -> bool:
            if ticket.status != "resolved" or ticket.resolved_at is None:
                return False
            if ticket.resolved_at > now - timedelta(hours=hours):
                return False
            await service._apply_transition(
                session,
                ticket,
                Actor.system("auto-close"),
                "closed",
                comment=None,
                until=None,
                now=now,
                reason="auto_close",
            )
            return True

        done += await _each(session, await _locked(session, ids), close, "auto_close")
    return done


async def sweep(session: AsyncSession, now: datetime | None = None) -> SweepResult:
    """One round over every account. ``now`` is explicit so tests need no sleeping."""
    now = now or utcnow()
    result = SweepResult()
    result.returned = await _return_pending(session, now)
    result.reaction_breached = await _flag_reaction(session, now)
    result.resolution_breached = await _flag_resolution(session, now)
    result.reply_overdue = await flag_overdue_replies(session, now)
    result.closed = await _auto_close(session, now)
    return result


@periodic_job("desk.sweeper", interval=lambda s: s.server.sweeper_interval_seconds)
async def desk_sweeper(ctx: JobContext) -> None:
    async with ctx.db.sessionmaker() as session, session.begin():
        await sweep(session)
