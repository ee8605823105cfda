"""Messages a partner sent ahead of their turn (EX-10): released when their predecessor is in,
by the inbox itself and by a sweep that does not depend on which transaction committed first,
and an administrator's way past a number that will never come.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import Database
from hub.desk.actors import Actor
from hub.exchange.inbox import apply_held, lock_shared_ticket
from hub.exchange.models import Connection, ConnectionState, InboundMessage, SharedTicket
from hub.settings import Settings

__all__ = ["release_ready_held", "skip_gaps"]


async def release_ready_held(db: Database, settings: Settings) -> int:
    """Apply held messages whose predecessor has arrived: the inbox applies them when it moves a
    ticket on, and this sweep catches any it could not see (a repair path, normally idle)."""
    async with db.sessionmaker() as session:
        ready = (
            await session.execute(
                select(SharedTicket.connection_id, SharedTicket.uuid)
                .join(
                    InboundMessage,
                    (InboundMessage.connection_id == SharedTicket.connection_id)
                    & (InboundMessage.ticket_uuid == SharedTicket.uuid),
                )
                .join(Connection, Connection.id == SharedTicket.connection_id)
                .where(
                    InboundMessage.status == "held",
                    InboundMessage.seq == SharedTicket.in_seq + 1,
                    Connection.state == ConnectionState.ACTIVE,
                )
                .limit(100)
            )
        ).all()
    released = 0
    for connection_id, shared_uuid in ready:
        async with db.sessionmaker() as session, session.begin():
            connection = await session.get(Connection, connection_id)
            link = await lock_shared_ticket(session, connection, shared_uuid) if connection else None
            if connection is not None and link is not None:
                released += await apply_held(session, settings, connection, link)
    return released


async def skip_gaps(
    session: AsyncSession, settings: Settings, connection: Connection, actor: Actor
) -> dict[str, list[int]]:
    """Move every shared ticket of the connection past the numbers it waits for and apply what is
    held. Only for a number the partner lost for good: the skipped numbers' messages, if they come
    after all, are refused as ``seq_already_used``. Returns the skipped numbers per shared ticket."""
    from hub.desk import service as desk

    waiting = (
        await session.execute(
            select(InboundMessage.ticket_uuid, func.min(InboundMessage.seq))
            .where(InboundMessage.connection_id == connection.id, InboundMessage.status == "held")
            .group_by(InboundMessage.ticket_uuid)
        )
    ).all()
    skipped: dict[str, list[int]] = {}
    for shared_uuid, first_held in waiting:
        if shared_uuid is None:
            continue
        link = await lock_shared_ticket(session, connection, shared_uuid)
        if link is None or first_held is None or first_held <= link.in_seq + 1:
            continue  # its transfer never came (nothing to apply to), or nothing is missing
        numbers = list(range(link.in_seq + 1, first_held))
        link.in_seq = first_held - 1
        ticket = await desk.get_ticket(session, connection.account_id, link.ticket_id)
        await desk.record_history(
            session,
            ticket,
            actor,
            "partner_gap_skipped",
            {"partner": connection.partner_name, "skipped": numbers},
        )
        await apply_held(session, settings, connection, link)
        skipped[shared_uuid] = numbers
    return skipped
