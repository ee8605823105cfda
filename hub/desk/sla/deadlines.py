"""Computed SLA deadlines (DESK-5): which rule applies to a ticket, the calendar it runs on, and
the desk-event subscribers that set the deadlines.

- On creation the reaction and resolution deadlines come from the first matching rule (or the
  account default), counted in working time from the ticket's creation. A deadline given in the
  creation request is a staff override and stays.
- When type, priority, company or object change, the running, not overridden clocks are counted
  again from creation (history ``sla_recomputed``).
- A deadline set by hand (PATCH) is an override (the ``updated`` history line records it);
  clearing it (``null``) hands the clock back to the rules.
- Each public client message gets its own reply deadline; the next public staff reply answers
  every waiting one (history ``sla_met`` / ``sla_breached`` with ``clock: reply``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Select, case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import Account
from hub.desk import service
from hub.desk.actors import Actor
from hub.desk.events import CommentAdded, TicketCreated, TicketUpdated, subscriber
from hub.desk.models import Ticket
from hub.desk.sla.calendar import Calendar, CalendarExhausted, InvalidSchedule, parse_week, zone_of
from hub.desk.sla.models import (
    DEFAULT_REPLY_MINUTES,
    SlaHoliday,
    SlaOverride,
    SlaReplyClock,
    SlaRule,
    SlaSettings,
)
from hub.people.models import Company

__all__ = [
    "Terms",
    "calendar_of",
    "on_comment_added",
    "on_ticket_created",
    "on_ticket_updated",
    "terms_for",
]

CLOCKS = ("reaction", "resolution")
# What a rule matches on besides priority and type: a change re-selects the rule.
RECOMPUTE_ON = frozenset({"type", "priority", "company_id", "object_id"})

log = structlog.get_logger("hub.desk.sla")


@dataclass(frozen=True)
class Terms:
    """The targets that apply to one ticket and where they come from."""

    settings: SlaSettings | None
    rule: SlaRule | None

    def target(self, clock: str) -> timedelta | None:
        """A rule's target, else the account default (reply: 3 days when nothing is set)."""
        minutes = getattr(self.rule, f"{clock}_minutes", None) if self.rule else None
        if minutes is None and self.settings is not None:
            minutes = getattr(self.settings, f"{clock}_minutes")
        elif minutes is None and clock == "reply":
            minutes = DEFAULT_REPLY_MINUTES
        return None if minutes is None else timedelta(minutes=minutes)

    @property
    def working_hours(self) -> bool:
        return self.rule.working_hours if self.rule else True


def _first_rule(ticket: Ticket) -> Select[Any]:
    category = select(Company.category).where(Company.id == ticket.company_id).scalar_subquery()
    return (
        select(SlaRule.id)
        .where(
            SlaRule.account_id == ticket.account_id,
            or_(SlaRule.ticket_type.is_(None), SlaRule.ticket_type == ticket.type),
            or_(SlaRule.priority.is_(None), SlaRule.priority == ticket.priority),
            or_(SlaRule.client_category.is_(None), SlaRule.client_category == category),
            or_(SlaRule.company_id.is_(None), SlaRule.company_id == ticket.company_id),
            or_(SlaRule.object_id.is_(None), SlaRule.object_id == ticket.object_id),
        )
        .order_by(SlaRule.position, SlaRule.id)
        .limit(1)
    )


async def terms_for(session: AsyncSession, ticket: Ticket) -> Terms:
    """The account's settings and the first matching rule, in one statement."""
    query = (
        select(SlaSettings, SlaRule)
        .select_from(Account)
        .outerjoin(SlaSettings, SlaSettings.account_id == Account.id)
        .outerjoin(SlaRule, SlaRule.id == _first_rule(ticket).scalar_subquery())
        .where(Account.id == ticket.account_id)
    )
    settings, rule = (await session.execute(query)).one()
    return Terms(settings, rule)


async def calendar_of(session: AsyncSession, account_id: int, terms: Terms, since: datetime) -> Calendar:
    """The calendar ``terms`` run on, with the account's holidays from ``since`` on. An account
    without settings counts round the clock in UTC, minus its holidays."""
    if not terms.working_hours:
        return Calendar.round_the_clock()
    settings = terms.settings
    try:
        zone = zone_of(settings.time_zone if settings else "UTC")
        week = parse_week(settings.week) if settings and settings.week is not None else Calendar().week
    except InvalidSchedule:  # stored before a validation rule existed: count plain time
        log.warning("sla calendar unusable", account_id=account_id)
        return Calendar.round_the_clock()
    first_day = since.astimezone(zone).date() - timedelta(days=1)
    days = await session.scalars(
        select(SlaHoliday.day).where(SlaHoliday.account_id == account_id, SlaHoliday.day >= first_day)
    )
    return Calendar(zone=zone, week=week, holidays=frozenset(days))


def _deadline(calendar: Calendar, start: datetime, target: timedelta | None) -> datetime | None:
    if target is None:
        return None
    try:
        return calendar.add(start, target)
    except CalendarExhausted:  # no working time for years: no deadline rather than a wrong one
        return None


async def _deadlines(
    session: AsyncSession, ticket: Ticket, clocks: tuple[str, ...]
) -> tuple[Terms, dict[str, datetime | None]]:
    terms = await terms_for(session, ticket)
    targets = {clock: terms.target(clock) for clock in clocks}
    if all(target is None for target in targets.values()):
        return terms, dict.fromkeys(clocks)
    calendar = await calendar_of(session, ticket.account_id, terms, ticket.created_at)
    return terms, {clock: _deadline(calendar, ticket.created_at, t) for clock, t in targets.items()}


# --- creation and changes --------------------------------------------------------------------


@subscriber(TicketCreated)
async def on_ticket_created(session: AsyncSession, event: TicketCreated) -> None:
    """DESK-5: deadlines computed at creation; the ones the creator typed are overrides."""
    ticket = event.ticket
    typed = {clock: getattr(ticket, f"{clock}_due_at") is not None for clock in CLOCKS}
    if any(typed.values()):
        session.add(SlaOverride(ticket_id=ticket.id, account_id=ticket.account_id, **typed))
    clocks = tuple(clock for clock in CLOCKS if not typed[clock])
    if not clocks:
        return
    _, due = await _deadlines(session, ticket, clocks)
    for clock, at in due.items():
        if at is not None:
            setattr(ticket, f"{clock}_due_at", at)


async def _overrides(session: AsyncSession, ticket: Ticket, typed: dict[str, datetime | None]) -> SlaOverride:
    """The ticket's overrides after this change (a row only once a deadline was set by hand)."""
    override = await session.get(SlaOverride, ticket.id)
    if override is None:
        override = SlaOverride(
            ticket_id=ticket.id, account_id=ticket.account_id, reaction=False, resolution=False
        )
        if typed:
            session.add(override)
    for clock, value in typed.items():
        setattr(override, clock, value is not None)
    return override


def _running(ticket: Ticket, clock: str) -> bool:
    return ticket.reacted_at is None if clock == "reaction" else ticket.resolution_seconds is None


@subscriber(TicketUpdated)
async def on_ticket_updated(session: AsyncSession, event: TicketUpdated) -> None:
    """DESK-5: a hand-set deadline becomes an override; a type/priority (or company/object) change
    counts the running clocks again from creation."""
    ticket, changes = event.ticket, event.changes
    typed = {clock: changes[f"{clock}_due_at"][1] for clock in CLOCKS if f"{clock}_due_at" in changes}
    cleared = {clock for clock, value in typed.items() if value is None}
    if not typed and not set(changes) & RECOMPUTE_ON:
        return
    override = await _overrides(session, ticket, typed)
    clocks = tuple(
        clock
        for clock in CLOCKS
        if not getattr(override, clock)
        and _running(ticket, clock)
        and (set(changes) & RECOMPUTE_ON or clock in cleared)
    )
    if clocks:
        await _recompute(session, ticket, clocks)


async def _recompute(session: AsyncSession, ticket: Ticket, clocks: tuple[str, ...]) -> None:
    terms, due = await _deadlines(session, ticket, clocks)
    changed = {clock: at for clock, at in due.items() if getattr(ticket, f"{clock}_due_at") != at}
    if not changed:
        return
    for clock, at in changed.items():
        setattr(ticket, f"{clock}_due_at", at)
    data: dict[str, Any] = {"rule_id": terms.rule.id if terms.rule else None}
    data.update({f"{clock}_due_at": at for clock, at in changed.items()})
    await service.record_history(session, ticket, Actor.system("sla"), "sla_recomputed", data)


# --- reply clocks ----------------------------------------------------------------------------


@subscriber(CommentAdded)
async def on_comment_added(session: AsyncSession, event: CommentAdded) -> None:
    """DESK-5: a public client message starts its own reply clock; a public staff reply answers
    every waiting one."""
    comment = event.comment
    if comment is None or not comment.public:
        return
    if event.actor.kind in service.CLIENT_SIDE:
        await _start_reply_clock(session, event.ticket, comment.id, comment.created_at)
    elif event.actor.kind == "employee":
        await _answer(session, event.ticket, comment.created_at)


async def _start_reply_clock(session: AsyncSession, ticket: Ticket, comment_id: int, at: datetime) -> None:
    terms = await terms_for(session, ticket)
    target = terms.target("reply")
    if target is None:
        return
    due = _deadline(await calendar_of(session, ticket.account_id, terms, at), at, target)
    if due is None:
        return
    session.add(
        SlaReplyClock(
            account_id=ticket.account_id,
            ticket_id=ticket.id,
            comment_id=comment_id,
            due_at=due,
            answered_at=None,
            breached=False,
            created_at=at,
        )
    )
    if ticket.reply_due_at is None or due < ticket.reply_due_at:
        ticket.reply_due_at = due


async def _answer(session: AsyncSession, ticket: Ticket, now: datetime) -> None:
    if ticket.reply_due_at is None:
        return  # nothing waits: no statement
    answered = (
        await session.execute(
            update(SlaReplyClock)
            .where(SlaReplyClock.ticket_id == ticket.id, SlaReplyClock.answered_at.is_(None))
            .values(
                answered_at=now,
                breached=case((SlaReplyClock.due_at < now, True), else_=SlaReplyClock.breached),
            )
            .returning(SlaReplyClock.created_at, SlaReplyClock.due_at)
            .execution_options(synchronize_session=False)
        )
    ).all()
    if answered:
        late = any(due < now for _, due in answered)
        seconds = service._seconds(now - min(created for created, _ in answered))
        if not late:
            await service.record_history(
                session,
                ticket,
                Actor.system("sla"),
                "sla_met",
                {"clock": "reply", "seconds": seconds},
                now=now,
            )
        elif not ticket.sla_reply_overdue:  # the sweeper had not got to it: record it now
            await service.record_history(
                session,
                ticket,
                Actor.system("sla"),
                "sla_breached",
                {"clock": "reply", "seconds": seconds},
                now=now,
            )
    ticket.reply_due_at = None
    ticket.sla_reply_overdue = False
