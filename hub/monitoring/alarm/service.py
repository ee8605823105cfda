"""Applying a stored DC-09 message (the intake source ``alarm``): every event is kept; a trouble
opens the object's alarm ticket or folds into the open one; a restore is noted on it.

One alarm ticket per object at a time: an engineer visits the object once, whatever is wrong
with it. Its troubles (code and zone) are counted on :class:`AlarmTicket`; a repeat adds a private
comment with the count and time, another trouble a comment of its own, a restore marks its
trouble restored and, when the panel's account asks for it, the restore of the last open trouble
resolves the ticket (cancels it when nobody was assigned yet: nothing was done by anyone).
Events of one object are applied one at a time (the intake order key), and the unique object of
:class:`AlarmTicket` makes two workers that race anyway open one ticket between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import utcnow
from hub.desk import service as desk
from hub.desk.actors import Actor
from hub.desk.models import Ticket
from hub.desk.schemas import TicketCreate
from hub.errors import HubError
from hub.intake import Applied, EventView
from hub.jobs import JobContext
from hub.monitoring.alarm.codes import Event, decode_events, default_opens_ticket, kind_of, label_of
from hub.monitoring.alarm.codes import never_opens_ticket as never_opens
from hub.monitoring.alarm.frame import parse_message
from hub.monitoring.alarm.models import AlarmAccount, AlarmEvent, AlarmRule, AlarmTicket
from hub.monitoring.alarm.receiver import SOURCE
from hub.people.models import ServiceObject

__all__ = ["RECEIVER", "AlarmEvents", "opens_ticket"]

RECEIVER = Actor("monitoring", None, "Alarm receiver")
_DONE = frozenset({"resolved", "closed", "cancelled"})


@dataclass(frozen=True, slots=True)
class Decoded:
    events: list[Event]
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class _Context:
    panel: AlarmAccount
    obj: ServiceObject
    when: datetime
    raw: str


def opens_ticket(rules: dict[tuple[str, str], bool], event: Event) -> bool:
    if never_opens(event.protocol, event.code):
        return False
    return rules.get((event.protocol, event.code), default_opens_ticket(event.protocol, event.code))


def _key(event: Event, code: str | None = None) -> str:
    return f"{event.protocol}:{code or event.code}:{event.zone}"


def _where(event: Event) -> str:
    parts = [
        f"zone {event.zone}" if event.zone else "",
        f"partition {event.partition}" if event.partition else "",
    ]
    return ", ".join(p for p in parts if p) or "no zone"


class AlarmEvents:
    """The intake source ``alarm``: messages the DC-09 receiver stored (and acknowledged)."""

    name = SOURCE

    async def prepare(self, ctx: JobContext, event: EventView) -> Decoded:
        message = parse_message(event.headers["clear"])
        return Decoded(decode_events(event.headers["token"], message.data), message.timestamp)

    async def apply(
        self, session: AsyncSession, ctx: JobContext, event: EventView, prepared: Decoded
    ) -> Applied:
        panel = await session.get(AlarmAccount, event.endpoint_id) if event.endpoint_id else None
        obj = await session.get(ServiceObject, panel.object_id) if panel else None
        if panel is None or obj is None:
            return Applied("ignored", "alarm_account_gone", "The panel's account number was removed")
        rules = await _rules(session, panel.account_id)
        context = _Context(panel, obj, prepared.sent_at or event.received_at, event.body)
        tickets = []
        for item in prepared.events:
            row = await _apply_event(session, context, item, opens_ticket(rules, item), event)
            tickets.append(row.ticket_id)
        return Applied(result={"events": len(prepared.events), "ticket_ids": tickets})

    async def refused(
        self, session: AsyncSession, ctx: JobContext, event: EventView, exc: Exception
    ) -> Applied | None:
        if isinstance(exc, HubError):  # the desk refused (e.g. the object was removed meanwhile)
            return Applied("rejected", exc.code, exc.detail[:500])
        return None


async def _rules(session: AsyncSession, account_id: int) -> dict[tuple[str, str], bool]:
    """The account's own rules, read once per worker transaction (a batch of many messages)."""
    cache: dict[int, dict[tuple[str, str], bool]] = session.info.setdefault("alarm_rules", {})
    if account_id not in cache:
        rows = await session.scalars(select(AlarmRule).where(AlarmRule.account_id == account_id))
        cache[account_id] = {(r.protocol, r.code): r.opens_ticket for r in rows}
    return cache[account_id]


async def _apply_event(
    session: AsyncSession, context: _Context, event: Event, opens: bool, stored: EventView
) -> AlarmEvent:
    row = AlarmEvent(
        account_id=context.panel.account_id,
        object_id=context.obj.id,
        alarm_account_id=context.panel.id,
        intake_event_id=stored.id or None,
        panel_account=context.panel.number,
        protocol=event.protocol,
        code=event.code,
        sent_code=event.sia_code or event.code,
        restore=event.restore,
        kind=kind_of(event.protocol, event.code),
        label=label_of(event)[:120],
        zone=event.zone[:8],
        partition=event.partition[:8],
        sent_at=context.when if stored.headers.get("sent_at") else None,
        received_at=stored.received_at,
        raw=context.raw,
        outcome="logged",
    )
    if opens and event.restore:
        row.ticket_id, row.outcome = await _restore(session, context, event)
    elif opens:
        row.ticket_id, row.outcome = await _trouble(session, context, event)
    session.add(row)
    await session.flush()
    return row


async def _slot(session: AsyncSession, object_id: int) -> AlarmTicket | None:
    return await session.scalar(
        select(AlarmTicket)
        .where(AlarmTicket.object_id == object_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def _open_ticket(session: AsyncSession, slot: AlarmTicket | None) -> Ticket | None:
    if slot is None:
        return None
    ticket = await session.get(Ticket, slot.ticket_id)
    return ticket if ticket is not None and ticket.status not in _DONE else None


async def _trouble(session: AsyncSession, context: _Context, event: Event) -> tuple[int, str]:
    slot = await _slot(session, context.obj.id)
    ticket = await _open_ticket(session, slot)
    if slot is not None and ticket is not None:
        return ticket.id, await _fold(session, context, slot, ticket, event)
    try:
        async with session.begin_nested():
            ticket = await _new_ticket(session, context, event)
            troubles = {_key(event): _trouble_entry(event, context.when)}
            if slot is None:
                session.add(
                    AlarmTicket(
                        account_id=context.panel.account_id,
                        object_id=context.obj.id,
                        ticket_id=ticket.id,
                        troubles=troubles,
                        updated_at=utcnow(),
                    )
                )
            else:
                slot.ticket_id, slot.troubles, slot.updated_at = ticket.id, troubles, utcnow()
            await session.flush()
    except IntegrityError:  # another worker opened the object's ticket first: fold into it
        slot = await _slot(session, context.obj.id)
        ticket = await _open_ticket(session, slot)
        assert slot is not None and ticket is not None
        return ticket.id, await _fold(session, context, slot, ticket, event)
    return ticket.id, "opened"


def _trouble_entry(event: Event, when: datetime) -> dict[str, Any]:
    stamp = when.isoformat()
    return {"label": label_of(event), "count": 1, "first": stamp, "last": stamp, "open": True}


async def _new_ticket(session: AsyncSession, context: _Context, event: Event) -> Ticket:
    obj, label = context.obj, label_of(event)
    description = "\n".join(
        (
            f"The alarm panel of object {obj.number} ({obj.name}) reported a trouble: {label}.",
            f"Object: {obj.number} {obj.name}" + (f", {obj.address}" if obj.address else ""),
            f"Event: {event.protocol.upper()} {event.sia_code or event.code} {label}",
            f"Zone: {event.zone or '-'}; partition: {event.partition or '-'}",
            f"Panel account: {context.panel.number}; at {context.when.isoformat()}",
            f"Message: {context.raw}",
        )
    )
    return await desk.create_ticket(
        session,
        context.panel.account_id,
        RECEIVER,
        TicketCreate(
            title=f"{label} ({_where(event)}): object {obj.number}"[:200],
            description=description,
            source="monitoring",
            object_id=obj.id,
            company_id=obj.company_id,
            operator_name=RECEIVER.name,
        ),
        context={"alarm_account_id": context.panel.id},
    )


async def _fold(
    session: AsyncSession, context: _Context, slot: AlarmTicket, ticket: Ticket, event: Event
) -> str:
    troubles = dict(slot.troubles)
    key = _key(event)
    entry = troubles.get(key)
    if entry is None:
        troubles[key] = _trouble_entry(event, context.when)
        body = f"Another trouble: {label_of(event)} ({_where(event)}) at {context.when.isoformat()}"
    else:
        entry = {**entry, "count": entry["count"] + 1, "last": context.when.isoformat(), "open": True}
        troubles[key] = entry
        body = (
            f"Repeated: {label_of(event)} ({_where(event)}), {entry['count']} times, "
            f"last at {context.when.isoformat()}"
        )
    slot.troubles, slot.updated_at = troubles, utcnow()
    await desk.add_comment(session, ticket.account_id, ticket.id, RECEIVER, body, public=False)
    return "folded"


async def _restore(session: AsyncSession, context: _Context, event: Event) -> tuple[int | None, str]:
    slot = await _slot(session, context.obj.id)
    ticket = await _open_ticket(session, slot)
    if slot is None or ticket is None:
        return None, "logged"
    troubles = dict(slot.troubles)
    keys = [_key(event, code) for code in (event.restores or (event.code,))]
    restored = [k for k in keys if k in troubles]
    if not restored:
        return None, "logged"
    for key in restored:
        troubles[key] = {**troubles[key], "open": False, "restored": context.when.isoformat()}
    slot.troubles, slot.updated_at = troubles, utcnow()
    body = f"Restored: {label_of(event)} ({_where(event)}) at {context.when.isoformat()}"
    await desk.add_comment(session, ticket.account_id, ticket.id, RECEIVER, body, public=False)
    if not context.panel.resolve_on_restore or any(t["open"] for t in troubles.values()):
        return ticket.id, "restored"
    await _resolve(session, ticket)
    return ticket.id, "resolved"


async def _resolve(session: AsyncSession, ticket: Ticket) -> None:
    """Every trouble of the ticket restored by itself: resolved, or cancelled when nobody was
    assigned (a resolution needs a responsible employee, and nobody did anything)."""
    comment = "Every trouble was restored by the panel itself"
    to_status = "resolved" if ticket.responsible_id is not None else "cancelled"
    await desk.change_status(session, ticket.account_id, ticket.id, RECEIVER, to_status, comment=comment)
