"""The desk sweeper's reply step (DESK-5): a client message whose reply deadline passed flags its
ticket *reply overdue* and records ``sla_breached`` (``clock: reply``) in the history.

Safe with several sweepers: each clock is flagged by one conditional UPDATE (``breached`` still
false), so a second sweeper finds nothing left and records nothing twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.desk import service, workflow
from hub.desk.actors import Actor
from hub.desk.models import Ticket
from hub.desk.sla.models import SlaReplyClock

__all__ = ["flag_overdue_replies"]

BATCH = 200
# A resolved ticket waits for the client, not the other way round.
_NOT_WAITING = (*workflow.FINAL, "resolved")


async def flag_overdue_replies(session: AsyncSession, now: datetime) -> int:
    """Flag up to BATCH overdue reply clocks (earliest deadline first); returns how many."""
    overdue = (
        select(SlaReplyClock.id)
        .join(Ticket, Ticket.id == SlaReplyClock.ticket_id)
        .where(
            SlaReplyClock.answered_at.is_(None),
            SlaReplyClock.breached.is_(False),
            SlaReplyClock.due_at < now,
            Ticket.status.not_in(_NOT_WAITING),
        )
        .order_by(SlaReplyClock.due_at, SlaReplyClock.id)
        .limit(BATCH)
    )
    flagged = (
        await session.execute(
            update(SlaReplyClock)
            .where(
                SlaReplyClock.id.in_(overdue.scalar_subquery()),
                SlaReplyClock.breached.is_(False),
                SlaReplyClock.answered_at.is_(None),
            )
            .values(breached=True)
            .returning(SlaReplyClock.ticket_id, SlaReplyClock.comment_id, SlaReplyClock.created_at)
            .execution_options(synchronize_session=False)
        )
    ).all()
    if not flagged:
        return 0
    tickets = {
        t.id: t
        for t in await session.scalars(
            select(Ticket).where(Ticket.id.in_({ticket_id for ticket_id, _, _ in flagged}))
        )
    }
    for ticket_id, comment_id, created_at in sorted(flagged, key=lambda row: row[2]):
        ticket = tickets[ticket_id]
        ticket.sla_reply_overdue = True
        data = {"clock": "reply", "comment_id": comment_id, "seconds": service._seconds(now - created_at)}
        await service.record_history(session, ticket, Actor.system("sla"), "sla_breached", data, now=now)
    return len(flagged)
