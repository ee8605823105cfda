"""The desk sweeper: pending tickets whose ``until`` passed go back (DESK-4), SLA clocks past their
deadline are flagged (DESK-5), resolved tickets past the account's auto-close timeout close.

Safe with several hub processes: each ticket is changed under its row lock (FOR UPDATE SKIP
LOCKED on PostgreSQL; SQLite has one writer), after re-checking the condition, and SLA flags are
set with conditional UPDATEs, so a second sweeper finds nothing left to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import Account
from hub.db import utcnow
from hub.desk import service
from hub.desk.actors import Actor
from hub.desk.models import Ticket
from hub.jobs import JobContext, register_job

__all__ = ["SweepResult", "desk_sweeper", "sweep"]

BATCH = 200
RUNNING = ("open", "in_progress", "reopened", "pending")


@dataclass
class SweepResult:
    returned: int = 0
    reaction_breached: int = 0
    resolution_breached: int = 0
    closed: int = 0


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
    done = 0
    for ticket in await _locked(session, ids):
        if ticket.status != "pending" or ticket.pending_until is None or ticket.pending_until > now:
            continue  # another process got there first
        back = ticket.status_before_pending or "open"
        if back == "in_progress" and ticket.responsible_id is None:
            back = "open"
        await service._apply_transition(
            session,
            ticket,
            Actor.system("sweeper"),
            back,
            comment=None,
            until=None,
            now=now,
            reason="pending_until_passed",
        )
        done += 1
    return done


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
            .limit(BATCH)
        )
    )
    flagged = 0
    for ticket in rows:
        flagged += await _flag(session, ticket, "reaction", now, service._seconds(now - ticket.created_at))
    return flagged


async def _flag_resolution(session: AsyncSession, now: datetime) -> int:
    # Pending time moves the deadline, so ``due < now`` only narrows the candidates.
    rows = list(
        await session.scalars(
            select(Ticket)
            .where(
                Ticket.status.in_(RUNNING),
                Ticket.resolution_seconds.is_(None),
                Ticket.sla_resolution_breached.is_(False),
                Ticket.resolution_due_at < now,
            )
            .limit(BATCH)
        )
    )
    flagged = 0
    for ticket in rows:
        assert ticket.resolution_due_at is not None
        clock_now = ticket.pending_since if ticket.status == "pending" and ticket.pending_since else now
        effective = clock_now - timedelta(seconds=ticket.pending_seconds)
        if effective > ticket.resolution_due_at:
            seconds = service._seconds(effective - ticket.created_at)
            flagged += await _flag(session, ticket, "resolution", now, seconds)
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
        for ticket in await _locked(session, ids):
            if ticket.status != "resolved" or ticket.resolved_at is None:
                continue
            if ticket.resolved_at > now - timedelta(hours=hours):
                continue
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
            done += 1
    return done


async def sweep(session: AsyncSession, now: datetime | None = None) -> SweepResult:
    """One round over every account. ``now`` is explicit so tests need no sleeping."""
    now = now or utcnow()
    result = SweepResult()
    result.returned = await _return_pending(session, now)
    result.reaction_breached = await _flag_reaction(session, now)
    result.resolution_breached = await _flag_resolution(session, now)
    result.closed = await _auto_close(session, now)
    return result


@register_job("desk.sweeper", interval=lambda s: s.server.sweeper_interval_seconds)
async def desk_sweeper(ctx: JobContext) -> None:
    async with ctx.db.sessionmaker() as session, session.begin():
        await sweep(session)
