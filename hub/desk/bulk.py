"""The desk's writes for many tickets at once, for appliers that work in sets (the intake worker
applying a batch of payment callbacks): the same rows :func:`hub.desk.service.record_history`,
:func:`~hub.desk.service.add_activity` and :func:`~hub.desk.service.set_ext_flag` write one by one,
in one statement each, whatever the batch's size."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.desk.actors import Actor
from hub.desk.models import ActivityEntry, Ticket, TicketEvent
from hub.desk.service import _jsonable as jsonable

__all__ = ["ActivityLine", "HistoryLine", "add_activity_lines", "record_history_lines", "set_ext_flags"]

_TICKETS = cast(Table, Ticket.__table__)
_HISTORY = cast(Table, TicketEvent.__table__)
_ACTIVITY = cast(Table, ActivityEntry.__table__)


@dataclass(frozen=True, slots=True)
class HistoryLine:
    account_id: int
    ticket_id: int
    actor: Actor
    kind: str
    data: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class ActivityLine:
    account_id: int
    contact_id: int
    kind: str
    ref_id: int
    summary: str
    data: Mapping[str, Any]
    at: datetime
    ticket_id: int | None = None  # decides who may see the line (DESK-12)


async def record_history_lines(session: AsyncSession, lines: Sequence[HistoryLine]) -> None:
    """DESK-7, many lines in one INSERT (a client's name is not kept, as one by one)."""
    if not lines:
        return
    await session.execute(
        insert(_HISTORY),
        [
            {
                "account_id": line.account_id,
                "ticket_id": line.ticket_id,
                "kind": line.kind,
                "actor_kind": line.actor.kind,
                "actor_id": line.actor.id,
                "actor_name": None if line.actor.is_client else line.actor.name,
                "data": {k: jsonable(v) for k, v in line.data.items()},
                "created_at": line.at,
            }
            for line in lines
        ],
    )


async def add_activity_lines(session: AsyncSession, lines: Sequence[ActivityLine]) -> None:
    """DESK-8, many feed lines in one INSERT."""
    if not lines:
        return
    await session.execute(
        insert(_ACTIVITY),
        [
            {
                "account_id": line.account_id,
                "contact_id": line.contact_id,
                "kind": line.kind,
                "ref_id": line.ref_id,
                "ticket_id": line.ticket_id,
                "summary": line.summary[:500],
                "data": {k: jsonable(v) for k, v in line.data.items()},
                "created_at": line.at,
            }
            for line in lines
        ],
    )


_SET_FLAGS = update(_TICKETS).where(_TICKETS.c.id == bindparam("b_id")).values(ext_flags=bindparam("b_flags"))


async def set_ext_flags(session: AsyncSession, key: str, values: Mapping[int, Any]) -> None:
    """:func:`~hub.desk.service.set_ext_flag` for many tickets (ticket id -> value; ``None``
    removes the flag). The tickets are locked in id order first, so the read-modify-write of
    their flags cannot lose another domain's flag written meanwhile."""
    if not values:
        return
    current = await session.execute(
        select(_TICKETS.c.id, _TICKETS.c.ext_flags)
        .where(_TICKETS.c.id.in_(sorted(values)))
        .order_by(_TICKETS.c.id)
        .with_for_update()
    )
    rows = []
    for ticket_id, flags in current:
        merged = dict(flags or {})
        if values[ticket_id] is None:
            merged.pop(key, None)
        else:
            merged[key] = values[ticket_id]
        rows.append({"b_id": ticket_id, "b_flags": merged})
    await session.execute(_SET_FLAGS.execution_options(synchronize_session=False), rows)
