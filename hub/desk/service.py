"""The desk's service functions (DESK-3..9). They take the session first and never commit.

Other domains call these (the contract in TEAM.md) and react to the desk through
``hub.desk.events``; they never change tickets behind the desk's back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, false, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import Employee
from hub.db import utcnow
from hub.desk import routing, search, thread, workflow
from hub.desk.actors import Actor
from hub.desk.events import CommentAdded, StatusChanged, TicketCreated, TicketUpdated, emit
from hub.desk.models import (
    ActivityEntry,
    Comment,
    Ticket,
    TicketEvent,
    TicketExecutor,
    TicketObserver,
)
from hub.desk.numbering import NewTicketRefs, number_and_refs
from hub.desk.schemas import TicketCreate
from hub.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from hub.monitoring import rules as app_rules
from hub.paging import fetch_page
from hub.people import matching
from hub.people.models import Company, Contact, ServiceObject

__all__ = [
    "BASE_DATA",
    "TicketFilters",
    "add_activity",
    "add_comment",
    "change_status",
    "check_not_final",
    "client_spoke",
    "create_ticket",
    "get_ticket",
    "list_comments",
    "list_history",
    "list_tickets",
    "mark_seen",
    "people_of",
    "rate_ticket",
    "record_history",
    "refresh_search_text",
    "register_base_data_lock",
    "return_from_pending",
    "set_ext_flag",
    "update_ticket",
]

BASE_DATA = frozenset({"type", "object_id", "company_id", "contact_id"})
MAX_EXECUTORS = 4
# Whose public comments make a ticket "need a reply" (DESK-6): the client's side.
CLIENT_SIDE = frozenset({"contact", "partner"})

BaseDataLock = Callable[[AsyncSession, Ticket, dict[str, Any]], Awaitable[None]]
_base_data_locks: list[BaseDataLock] = []


def register_base_data_lock(check: BaseDataLock) -> None:
    """Hook: ``await check(session, ticket, changes)`` runs before base data (type, object, company,
    contact) changes and may raise to refuse it (payments, PAY-4)."""
    if check not in _base_data_locks:
        _base_data_locks.append(check)


def set_ext_flag(ticket: Ticket, key: str, value: Any) -> None:
    """Set (or with ``None`` remove) a list flag owned by another domain (PAY-8, EX-7)."""
    flags = dict(ticket.ext_flags or {})
    if value is None:
        flags.pop(key, None)
    else:
        flags[key] = value
    ticket.ext_flags = flags  # a new dict, so the JSON column is seen as changed


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return value


# --- numbering, references, search text ------------------------------------------------------


async def _require(session: AsyncSession, model: Any, account_id: int, ref_id: int | None, code: str) -> Any:
    if ref_id is None:
        return None
    row = await session.get(model, ref_id)
    if row is None or row.account_id != account_id:
        # The same answer for "not yours" and "does not exist" (DESK-1).
        raise Unprocessable(f"No such {code.removesuffix('_not_found').replace('_', ' ')}", code=code)
    return row


async def _require_employees(session: AsyncSession, account_id: int, ids: Iterable[int]) -> list[int]:
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    found = set(
        await session.scalars(
            select(Employee.id).where(Employee.account_id == account_id, Employee.id.in_(wanted))
        )
    )
    if len(found) != len(wanted):
        raise Unprocessable(
            "No such employee", code="employee_not_found", missing=sorted(set(wanted) - found)
        )
    return wanted


def _compose_search_text(number: int, title: str, *names: str | None) -> str:
    """DESK-9: what a ticket is found by: number, title, client, company, object number/name/address."""
    return " ".join(p for p in (str(number), title, *names) if p).lower()[:600]


async def _search_text(session: AsyncSession, ticket: Ticket) -> str:
    contact = await session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    company = await session.get(Company, ticket.company_id) if ticket.company_id else None
    obj = await session.get(ServiceObject, ticket.object_id) if ticket.object_id else None
    return _compose_search_text(
        ticket.number,
        ticket.title,
        contact.name if contact else None,
        company.name if company else None,
        *((obj.number, obj.name, obj.address) if obj else ()),
    )


_SEARCH_REFS = {"contact": Ticket.contact_id, "company": Ticket.company_id, "object": Ticket.object_id}


async def refresh_search_text(session: AsyncSession, account_id: int, ref: str, ref_id: int) -> None:
    """DESK-9: after a contact or company is renamed or an object's number, name or address
    changes, the tickets that show it are found by the new text (``ref``: contact|company|object)."""
    column = _SEARCH_REFS[ref]
    after = 0
    while True:
        batch = list(
            await session.scalars(
                select(Ticket)
                .where(Ticket.account_id == account_id, column == ref_id, Ticket.id > after)
                .order_by(Ticket.id)
                .limit(500)
            )
        )
        for ticket in batch:
            ticket.search_text = await _search_text(session, ticket)
        if len(batch) < 500:
            return
        after = batch[-1].id
        await session.flush()


# --- tickets ---------------------------------------------------------------------------------


async def _ticket_activity(session: AsyncSession, ticket: Ticket, now: datetime) -> None:
    """DESK-8: the ticket enters its contact's feed (on creation, or when the contact is set)."""
    assert ticket.contact_id is not None
    await add_activity(
        session,
        ticket.account_id,
        ticket.contact_id,
        "ticket",
        ticket.id,
        f"Ticket #{ticket.number}: {ticket.title}"[:500],
        {"number": ticket.number, "source": ticket.source, "type": ticket.type},
        now=now,
        ticket_id=ticket.id,
    )


async def create_ticket(
    session: AsyncSession,
    account_id: int,
    actor: Actor,
    data: TicketCreate,
    *,
    context: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Ticket:
    """DESK-3: a new ticket with the account's next number. Emits TicketCreated (context has call_id)."""
    now = now or utcnow()
    executors = list(dict.fromkeys(data.executor_ids))
    observers = list(dict.fromkeys(data.observer_ids))
    if len(executors) > MAX_EXECUTORS:
        raise Unprocessable("At most 4 executors", code="too_many_executors")
    for due in (data.reaction_due_at, data.resolution_due_at):
        if due is not None and due.tzinfo is None:
            raise Unprocessable("Deadlines need a time zone", code="naive_datetime")
    given = {
        name: getattr(data, name) for name in ("object_id", "contact_id", "company_id", "responsible_id")
    }
    refs = await number_and_refs(session, account_id, given, executors, observers)
    ticket = _new_ticket(account_id, actor, data, refs, now)
    session.add(ticket)
    await session.flush()
    session.add_all(TicketExecutor(ticket_id=ticket.id, employee_id=e) for e in executors)
    session.add_all(TicketObserver(ticket_id=ticket.id, employee_id=e) for e in observers)
    await record_history(
        session,
        ticket,
        actor,
        "created",
        {"number": ticket.number, "source": ticket.source, "responsible_id": ticket.responsible_id},
        now=now,
    )
    if ticket.contact_id is not None:
        await _ticket_activity(session, ticket, now)
    full_context = dict(context or {})
    if data.call_id is not None:
        full_context.setdefault("call_id", data.call_id)
    await session.flush()
    created = TicketCreated(
        ticket,
        actor,
        context=full_context,
        executor_ids=tuple(sorted(executors)),
        observer_ids=tuple(sorted(observers)),
        responsible_name=refs.responsible_name,
        object_user_ids=refs.object_user_ids,
    )
    await emit(session, created)
    return ticket


def _new_ticket(
    account_id: int, actor: Actor, data: TicketCreate, refs: NewTicketRefs, now: datetime
) -> Ticket:
    """The ticket row, search text included (computed here, so no UPDATE follows the INSERT)."""
    return Ticket(
        account_id=account_id,
        number=refs.number,
        title=data.title,
        description=data.description,
        type=data.type,
        priority=data.priority,
        status="open",
        source=data.source,
        company_id=refs.company_id,
        contact_id=data.contact_id,
        object_id=data.object_id,
        responsible_id=refs.responsible_id,
        reaction_due_at=data.reaction_due_at,
        resolution_due_at=data.resolution_due_at,
        repair_date=data.repair_date,
        created_by_kind=actor.kind,
        created_by_id=actor.id,
        created_by_name=None if actor.is_client else actor.name,
        operator_name=data.operator_name or (actor.name if actor.kind == "monitoring" else None),
        needs_reply=False,
        important=False,
        sla_reaction_breached=False,
        sla_resolution_breached=False,
        ext_flags={},
        pending_seconds=0,
        search_text=_compose_search_text(
            refs.number, data.title, refs.contact_name, refs.company_name, *refs.object_texts
        ),
        created_at=now,
        updated_at=now,
    )


async def get_ticket(
    session: AsyncSession, account_id: int, ticket_id: int, *, for_update: bool = False
) -> Ticket:
    """The account's ticket or NotFound ``ticket_not_found`` (also for another account's id)."""
    query = select(Ticket).where(Ticket.id == ticket_id, Ticket.account_id == account_id)
    if for_update:
        # Serialises concurrent changes of one ticket (PostgreSQL; SQLite has one writer anyway).
        query = query.with_for_update().execution_options(populate_existing=True)
    ticket = await session.scalar(query)
    if ticket is None:
        raise NotFound("No such ticket", code="ticket_not_found")
    return ticket


async def people_of(
    session: AsyncSession, ticket_ids: Sequence[int]
) -> dict[int, tuple[list[int], list[int]]]:
    """Executors and observers per ticket id."""
    result: dict[int, tuple[list[int], list[int]]] = {tid: ([], []) for tid in ticket_ids}
    if not ticket_ids:
        return result
    for tid, eid in await session.execute(
        select(TicketExecutor.ticket_id, TicketExecutor.employee_id)
        .where(TicketExecutor.ticket_id.in_(ticket_ids))
        .order_by(TicketExecutor.employee_id)
    ):
        result[tid][0].append(eid)
    for tid, eid in await session.execute(
        select(TicketObserver.ticket_id, TicketObserver.employee_id)
        .where(TicketObserver.ticket_id.in_(ticket_ids))
        .order_by(TicketObserver.employee_id)
    ):
        result[tid][1].append(eid)
    return result


_SIMPLE_FIELDS = (
    "title",
    "description",
    "type",
    "priority",
    "source",
    "reaction_due_at",
    "resolution_due_at",
    "repair_date",
)
_REF_FIELDS = {
    "company_id": (Company, "company_not_found"),
    "contact_id": (Contact, "contact_not_found"),
    "object_id": (ServiceObject, "object_not_found"),
    "responsible_id": (Employee, "employee_not_found"),
}
_UPDATABLE = frozenset({*_SIMPLE_FIELDS, *_REF_FIELDS, "executor_ids", "observer_ids"})


def _check_keeps_responsible(ticket: Ticket) -> None:
    """DESK-4: ``in_progress`` and ``resolved`` need a responsible employee, so one cannot be
    removed there (a ``pending`` ticket without one returns to ``open``, see the sweeper)."""
    if ticket.status in ("in_progress", "resolved"):
        raise Unprocessable(
            f"A ticket in {ticket.status!r} needs a responsible employee", code="responsible_required"
        )


async def update_ticket(
    session: AsyncSession,
    account_id: int,
    ticket_id: int,
    actor: Actor,
    changes: dict[str, Any],
    *,
    now: datetime | None = None,
) -> Ticket:
    """Change fields with history ("assignment" for people, "updated" for the rest).

    Base data (type, object, company, contact) passes the registered locks first (PAY-4).
    Emits TicketUpdated with ``{field: (old, new)}``.
    """
    now = now or utcnow()
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise BadRequest(f"Unknown fields: {', '.join(sorted(unknown))}", code="unknown_fields")
    ticket = await get_ticket(session, account_id, ticket_id, for_update=True)
    if ticket.status in workflow.FINAL:
        raise Conflict("A closed or cancelled ticket cannot change", code="ticket_final")
    people = (await people_of(session, [ticket.id]))[ticket.id]
    current: dict[str, Any] = {f: getattr(ticket, f) for f in (*_SIMPLE_FIELDS, *_REF_FIELDS)}
    current["executor_ids"], current["observer_ids"] = people
    diff = {k: (current[k], v) for k, v in changes.items() if current[k] != v}
    if "executor_ids" in diff:
        diff["executor_ids"] = (current["executor_ids"], sorted(set(changes["executor_ids"])))
        if diff["executor_ids"][0] == diff["executor_ids"][1]:
            del diff["executor_ids"]
    if "observer_ids" in diff:
        diff["observer_ids"] = (current["observer_ids"], sorted(set(changes["observer_ids"])))
        if diff["observer_ids"][0] == diff["observer_ids"][1]:
            del diff["observer_ids"]
    if not diff:
        return ticket
    if set(diff) & BASE_DATA:
        for lock in _base_data_locks:
            await lock(session, ticket, {k: changes[k] for k in diff})
    for name, (model, code) in _REF_FIELDS.items():
        if name in diff:
            await _require(session, model, account_id, diff[name][1], code)
    if "responsible_id" in diff and diff["responsible_id"][1] is None:
        _check_keeps_responsible(ticket)
    elif "responsible_id" in diff:
        await routing.check_can_be_responsible(session, account_id, diff["responsible_id"][1])
    for due in ("reaction_due_at", "resolution_due_at"):
        if due in diff and diff[due][1] is not None and diff[due][1].tzinfo is None:
            raise Unprocessable("Deadlines need a time zone", code="naive_datetime")
    if "executor_ids" in diff:
        new = await _require_employees(session, account_id, diff["executor_ids"][1])
        if len(new) > MAX_EXECUTORS:
            raise Unprocessable("At most 4 executors", code="too_many_executors")
        await session.execute(delete(TicketExecutor).where(TicketExecutor.ticket_id == ticket.id))
        session.add_all(TicketExecutor(ticket_id=ticket.id, employee_id=e) for e in new)
    if "observer_ids" in diff:
        new = await _require_employees(session, account_id, diff["observer_ids"][1])
        await session.execute(delete(TicketObserver).where(TicketObserver.ticket_id == ticket.id))
        session.add_all(TicketObserver(ticket_id=ticket.id, employee_id=e) for e in new)
    for name in diff:
        if name not in ("executor_ids", "observer_ids"):
            setattr(ticket, name, diff[name][1])
    ticket.updated_at = now
    if set(diff) & {"title", "company_id", "contact_id", "object_id"}:
        await session.flush()
        ticket.search_text = await _search_text(session, ticket)
    if "contact_id" in diff and ticket.contact_id is not None:
        await _ticket_activity(session, ticket, now)
    assignment = {
        k: [_jsonable(a), _jsonable(b)]
        for k, (a, b) in diff.items()
        if k in ("responsible_id", "executor_ids", "observer_ids")
    }
    other = {k: [_jsonable(a), _jsonable(b)] for k, (a, b) in diff.items() if k not in assignment}
    if assignment:
        await record_history(session, ticket, actor, "assignment", assignment, now=now)
    if other:
        await record_history(session, ticket, actor, "updated", other, now=now)
    await session.flush()
    await emit(session, TicketUpdated(ticket, actor, changes=diff))
    return ticket


# --- DESK-4 status workflow and DESK-5 clocks ------------------------------------------------


def _seconds(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds()))


async def _sla(
    session: AsyncSession,
    ticket: Ticket,
    actor: Actor,
    clock: str,
    breached: bool,
    now: datetime,
    seconds: int,
) -> None:
    """Flag and record the end of an SLA clock: met, or breached (once per clock)."""
    flag = f"sla_{clock}_breached"
    if breached:
        if not getattr(ticket, flag):
            setattr(ticket, flag, True)
            await record_history(
                session,
                ticket,
                Actor.system("sla"),
                "sla_breached",
                {"clock": clock, "seconds": seconds},
                now=now,
            )
    else:
        await record_history(
            session, ticket, Actor.system("sla"), "sla_met", {"clock": clock, "seconds": seconds}, now=now
        )


async def _react(session: AsyncSession, ticket: Ticket, actor: Actor, now: datetime) -> None:
    """DESK-5: the reaction clock stops at the first in_progress or public employee reply."""
    if ticket.reacted_at is not None:
        return
    ticket.reacted_at = now
    ticket.reaction_seconds = _seconds(now - ticket.created_at)
    if ticket.reaction_due_at is not None:
        await _sla(
            session, ticket, actor, "reaction", now > ticket.reaction_due_at, now, ticket.reaction_seconds
        )


async def _resolve_clock(session: AsyncSession, ticket: Ticket, actor: Actor, now: datetime) -> None:
    """DESK-5: the resolution clock stops at the first ``resolved``; pending time does not count."""
    if ticket.resolution_seconds is not None:
        return
    ticket.resolution_seconds = _seconds(now - ticket.created_at) - ticket.pending_seconds
    if ticket.resolution_due_at is not None:
        # The planned deadline moves by the time spent waiting in pending.
        late = now - timedelta(seconds=ticket.pending_seconds) > ticket.resolution_due_at
        await _sla(session, ticket, actor, "resolution", late, now, ticket.resolution_seconds)


async def _apply_transition(
    session: AsyncSession,
    ticket: Ticket,
    actor: Actor,
    to: str,
    *,
    comment: str | None,
    until: datetime | None,
    now: datetime,
    reason: str | None = None,
    for_client: bool = False,
) -> None:
    old = ticket.status
    workflow.check(
        current=old,
        to=to,
        actor=actor,
        responsible_id=ticket.responsible_id,
        previous=ticket.status_before_pending,
        comment=comment,
        until=until,
        now=now,
        by_rating=reason == "rating",
    )
    if old == "pending":
        if ticket.pending_since is not None:
            ticket.pending_seconds += _seconds(now - ticket.pending_since)
        ticket.pending_since = ticket.pending_until = ticket.status_before_pending = None
        ticket.pending_for_client = False
    if to == "pending":
        ticket.status_before_pending = old
        ticket.pending_until = until
        ticket.pending_since = now
        ticket.pending_for_client = for_client
    ticket.status = to
    ticket.updated_at = now
    if to == "in_progress":
        await _react(session, ticket, actor, now)
    elif to == "resolved":
        ticket.resolved_at = now
        await _resolve_clock(session, ticket, actor, now)
    elif to == "closed":
        ticket.closed_at = now
    data: dict[str, Any] = {"from": old, "to": to}
    if comment:
        data["comment"] = comment
    if until is not None:
        data["until"] = until.isoformat()
    if reason:
        data["reason"] = reason
    if to == "pending" and for_client:
        data["for_client"] = True
    await record_history(session, ticket, actor, "status_changed", data, now=now)
    if comment:
        thread.add_status_comment(session, ticket, actor, comment, now)
    await session.flush()
    await emit(session, StatusChanged(ticket, actor, old_status=old, new_status=to, comment=comment))


async def change_status(
    session: AsyncSession,
    account_id: int,
    ticket_id: int,
    actor: Actor,
    to_status: str,
    *,
    comment: str | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
    reason: str | None = None,
    for_client: bool = False,
) -> Ticket:
    """DESK-4: move a ticket through the ONE transition table (:mod:`hub.desk.workflow`).
    ``for_client``: pending because staff wait for the client, whose reply ends it (DESK-11).

    Refusals: 409 ``transition_not_allowed``; 422 ``responsible_required``, ``comment_required``,
    ``until_required``, ``until_in_past``, ``unknown_status``; 403 ``transition_not_allowed_for_client``.
    """
    ticket = await get_ticket(session, account_id, ticket_id, for_update=True)
    await _apply_transition(
        session,
        ticket,
        actor,
        to_status,
        comment=comment,
        until=until,
        now=now or utcnow(),
        reason=reason,
        for_client=for_client,
    )
    return ticket


async def return_from_pending(
    session: AsyncSession, ticket: Ticket, actor: Actor, now: datetime, reason: str
) -> None:
    """DESK-4: a pending ticket goes back to the state it had (``open`` when that was
    ``in_progress`` and nobody is responsible any more): its ``until`` passed, or the client it
    waited for replied (DESK-11)."""
    back = ticket.status_before_pending or "open"
    if back == "in_progress" and ticket.responsible_id is None:
        back = "open"
    await _apply_transition(session, ticket, actor, back, comment=None, until=None, now=now, reason=reason)


async def client_spoke(session: AsyncSession, ticket: Ticket, now: datetime) -> None:
    """DESK-6, DESK-11: the client wrote (a public comment or a file): the ticket needs a reply,
    and a ticket pending while staff wait for the client goes back to where it was."""
    ticket.needs_reply = True
    if ticket.status == "pending" and ticket.pending_for_client:
        await return_from_pending(session, ticket, Actor.system("client reply"), now, "client_replied")


# --- comments --------------------------------------------------------------------------------


def check_not_final(ticket: Ticket, actor: Actor) -> None:
    """DESK-4: ``closed`` and ``cancelled`` are final: staff and clients add no comments or files
    there (a new request is a new ticket). Partner and system records still land, so a partner's
    late message is kept rather than bounced forever by the exchange."""
    if ticket.status in workflow.FINAL and (actor.kind in workflow.STAFF or actor.is_client):
        raise Conflict(f"A {ticket.status} ticket takes no new comments or files", code="ticket_final")


async def add_comment(
    session: AsyncSession,
    account_id: int,
    ticket_id: int,
    actor: Actor,
    body: str,
    *,
    public: bool,
    important: bool = False,
    author_name: str | None = None,
    context: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Comment:
    """DESK-6: a public or private comment. A client's public comment flags *needs reply*; an
    employee's public one clears it and stops the reaction clock (DESK-5). Emits CommentAdded."""
    now = now or utcnow()
    ticket = await get_ticket(session, account_id, ticket_id, for_update=True)
    check_not_final(ticket, actor)
    if not body or not body.strip():
        raise Unprocessable("A comment needs a body", code="comment_empty")
    if actor.is_client and not public:
        raise Unprocessable("Client comments are public", code="client_comment_private")
    comment = Comment(
        account_id=account_id,
        ticket_id=ticket.id,
        body=body,
        public=public,
        important=important,
        author_kind=actor.kind,
        author_id=actor.id,
        author_name=author_name or actor.name,
        created_at=now,
    )
    session.add(comment)
    if public and actor.is_client:
        await client_spoke(session, ticket, now)
    elif public and actor.kind in CLIENT_SIDE:
        ticket.needs_reply = True
    elif public and actor.kind == "employee":
        ticket.needs_reply = False
        await _react(session, ticket, actor, now)
        await routing.assign_first_replier(session, ticket, actor, now)
    if important:
        ticket.important = True
    ticket.updated_at = now
    await session.flush()
    await emit(session, CommentAdded(ticket, actor, comment=comment, context=dict(context or {})))
    return comment


async def mark_seen(session: AsyncSession, ticket: Ticket, actor: Actor) -> None:
    """DESK-6: the *important* flag clears when any employee opens the ticket."""
    if actor.kind != "employee" or not ticket.important:
        return
    ticket.important = False
    await session.execute(
        update(Comment)
        .where(Comment.ticket_id == ticket.id, Comment.important.is_(True))
        .values(important=False)
        .execution_options(synchronize_session=False)
    )


# --- history and activity (DESK-7, DESK-8) ----------------------------------------------------


async def record_history(
    session: AsyncSession,
    ticket: Ticket,
    actor: Actor,
    kind: str,
    data: dict[str, Any],
    *,
    now: datetime | None = None,
) -> None:
    """DESK-7: one history line. A client's name is not kept (and its id not shown)."""
    session.add(
        TicketEvent(
            account_id=ticket.account_id,
            ticket_id=ticket.id,
            kind=kind,
            actor_kind=actor.kind,
            actor_id=actor.id,
            actor_name=None if actor.is_client else actor.name,
            data={k: _jsonable(v) for k, v in data.items()},
            created_at=now or utcnow(),
        )
    )


async def list_comments(
    session: AsyncSession, account_id: int, ticket_id: int, *, public_only: bool = False
) -> list[Comment]:
    await get_ticket(session, account_id, ticket_id)
    query = select(Comment).where(Comment.account_id == account_id, Comment.ticket_id == ticket_id)
    if public_only:
        query = query.where(Comment.public.is_(True))
    return list(await session.scalars(query.order_by(Comment.id)))


async def list_history(session: AsyncSession, account_id: int, ticket_id: int) -> list[TicketEvent]:
    await get_ticket(session, account_id, ticket_id)
    return list(
        await session.scalars(
            select(TicketEvent)
            .where(TicketEvent.account_id == account_id, TicketEvent.ticket_id == ticket_id)
            .order_by(TicketEvent.id)
        )
    )


async def add_activity(
    session: AsyncSession,
    account_id: int,
    contact_id: int,
    kind: str,
    ref_id: int,
    summary: str,
    data: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
    ticket_id: int | None = None,
) -> None:
    """DESK-8: one line in a contact's activity feed (tickets, ratings, calls, payments, refunds);
    ``ticket_id``: the ticket it belongs to, which decides who may see it (DESK-12)."""
    session.add(
        ActivityEntry(
            account_id=account_id,
            contact_id=contact_id,
            kind=kind,
            ref_id=ref_id,
            ticket_id=ticket_id,
            summary=summary[:500],
            data={k: _jsonable(v) for k, v in (data or {}).items()},
            created_at=now or utcnow(),
        )
    )


async def list_activity(
    session: AsyncSession,
    account_id: int,
    contact_id: int,
    *,
    before_id: int | None = None,
    limit: int = 50,
    visible: Any = None,
) -> list[ActivityEntry]:
    """Newest first by time (entries may carry an earlier time than their id suggests, e.g. a call
    logged when it ends), paged by the (created_at, id) keyset of the last entry seen.
    ``visible``: the caller's condition on the entries' tickets (DESK-12)."""
    contact = await session.get(Contact, contact_id)
    if contact is None or contact.account_id != account_id:
        raise NotFound("No such contact", code="contact_not_found")
    feed = (
        ActivityEntry.account_id == account_id,
        ActivityEntry.contact_id == contact_id,
        true() if visible is None else visible,
    )
    query = select(ActivityEntry).where(*feed)
    if before_id is not None:
        last_time = await session.scalar(
            select(ActivityEntry.created_at).where(*feed, ActivityEntry.id == before_id)
        )
        if last_time is None:
            raise BadRequest("before_id is not an entry of this feed", code="invalid_cursor")
        query = query.where(
            or_(
                ActivityEntry.created_at < last_time,
                and_(ActivityEntry.created_at == last_time, ActivityEntry.id < before_id),
            )
        )
    return list(
        await session.scalars(
            query.order_by(ActivityEntry.created_at.desc(), ActivityEntry.id.desc()).limit(limit)
        )
    )


# --- rating ----------------------------------------------------------------------------------


async def rate_ticket(
    session: AsyncSession,
    account_id: int,
    ticket_id: int,
    actor: Actor,
    score: int,
    comment: str | None,
    *,
    now: datetime | None = None,
) -> Ticket:
    """A score 1..5 with an optional comment, once. Rating a resolved ticket closes it (DESK-4)."""
    now = now or utcnow()
    if not 1 <= score <= 5:
        raise Unprocessable("The score is 1 to 5", code="invalid_score")
    ticket = await get_ticket(session, account_id, ticket_id, for_update=True)
    if actor.kind == "employee" and await app_rules.app_raters(session, ticket):
        # MON-7: the author of an app ticket, or the object's admins, rate it in the app; an
        # employee's rating would lock them out.
        raise Forbidden("The client rates this ticket in the app", code="rating_in_app_only")
    if ticket.rating_score is not None:
        raise Conflict("The ticket is already rated", code="already_rated")
    if ticket.status not in ("resolved", "closed"):
        raise Conflict("Only a resolved ticket can be rated", code="ticket_not_resolved")
    if score < 3 and not (comment and comment.strip()):
        # MON-7, seed 002 §14: a low score says what went wrong.
        raise Unprocessable("A score below 3 needs a comment", code="rating_comment_required")
    ticket.rating_score = score
    ticket.rating_comment = comment
    ticket.rated_by_kind = actor.kind
    ticket.rated_by_id = actor.id
    ticket.rated_at = now
    ticket.updated_at = now
    await record_history(session, ticket, actor, "rated", {"score": score, "comment": comment}, now=now)
    if ticket.contact_id is not None:
        await add_activity(
            session,
            account_id,
            ticket.contact_id,
            "rating",
            ticket.id,
            f"Rated ticket #{ticket.number}: {score}/5",
            {"number": ticket.number, "score": score, "comment": comment},
            now=now,
            ticket_id=ticket.id,
        )
    await session.flush()
    await emit(session, TicketUpdated(ticket, actor, changes={"rating": (None, score)}))
    if ticket.status == "resolved":
        await _apply_transition(
            session, ticket, actor, "closed", comment=None, until=None, now=now, reason="rating"
        )
    return ticket


# --- DESK-9 list -----------------------------------------------------------------------------


@dataclass
class TicketFilters:
    status: list[str] | None = None
    view: str | None = None  # "new": open + reopened
    responsible_id: int | None = None
    object_id: int | None = None
    company_id: int | None = None
    contact_id: int | None = None
    source: list[str] | None = None
    priority: list[str] | None = None
    type: list[str] | None = None
    needs_reply: bool | None = None
    important: bool | None = None
    sla_breached: bool | None = None  # any clock: reaction, resolution or a client's reply (DESK-5)
    sla_reply_overdue: bool | None = None
    q: str | None = None
    # DESK-9 "my tickets" (view "mine"): where this employee is responsible or an executor.
    mine_of: int | None = None
    # DESK-9: the flags other domains own, as filters (PAY-8, EX-7).
    invoice: list[str] | None = None
    refund: list[str] | None = None
    payment_attention: bool | None = None
    partner: bool | None = None
    partner_status: list[str] | None = None
    # "newest" (id descending) or "important_first" (DESK-6: important comments on top).
    order: str = "newest"


def _present(path: Any, wanted: bool) -> Any:
    value = Ticket.ext_flags[path].as_string()
    return value.is_not(None) if wanted else value.is_(None)


def _ext_flag_conditions(filters: TicketFilters) -> list[Any]:
    """DESK-9: every flag shown per ticket is also a filter (the JSON flags other domains set)."""
    conditions: list[Any] = []
    for path, values in (
        (("payment", "invoice"), filters.invoice),
        (("payment", "refund"), filters.refund),
        (("partner", "status"), filters.partner_status),
    ):
        if values:
            conditions.append(Ticket.ext_flags[path].as_string().in_(values))
    if filters.payment_attention is not None:
        conditions.append(_present("payment_attention", filters.payment_attention))
    if filters.partner is not None:
        conditions.append(_present("partner", filters.partner))
    return conditions


def _mine(employee_id: int) -> Any:
    executes = select(TicketExecutor.ticket_id).where(TicketExecutor.employee_id == employee_id)
    return or_(Ticket.responsible_id == employee_id, Ticket.id.in_(executes))


async def _q_condition(session: AsyncSession, account_id: int, q: str) -> Any:
    """A bare number is a ticket number (or a phone suffix from 5 digits); a phone-looking string
    is a phone suffix; anything else is a substring of the search text."""
    text = q.strip().lower()
    conditions: list[Any] = []
    bare = text.lstrip("#")
    if bare.isdigit():
        if len(bare) <= 9:
            conditions.append(Ticket.number == int(bare))
    else:
        conditions.append(search.text_condition(account_id, text))
    if matching.looks_like_phone(text):
        matches = await matching.match_number(session, account_id, text, limit=200)
        contact_ids = [m.id for m in matches if m.kind == "contact"]
        company_ids = [m.id for m in matches if m.kind == "company"]
        if contact_ids:
            conditions.append(Ticket.contact_id.in_(contact_ids))
        if company_ids:
            conditions.append(Ticket.company_id.in_(company_ids))
    return or_(*conditions) if conditions else false()


async def list_tickets(
    session: AsyncSession,
    account_id: int,
    filters: TicketFilters,
    *,
    cursor: str | None = None,
    limit: int = 50,
    visible: Any = None,
    sort: str = "-created_at",
) -> tuple[list[Ticket], str | None]:
    """DESK-9: filtered, in ``sort`` order (newest first by default; ``filters.order`` may put
    tickets with an important comment first, DESK-6), keyset-paged. Returns (page, next cursor or
    None). ``visible``: the caller's visibility condition (:func:`hub.desk.visibility.ticket_clause`)."""
    query = select(Ticket).where(Ticket.account_id == account_id)
    if visible is not None:
        query = query.where(visible)
    statuses = list(filters.status or [])
    if filters.view == "new":
        statuses = (
            [s for s in statuses if s in workflow.OPEN_LIKE] if statuses else sorted(workflow.OPEN_LIKE)
        )
        if not statuses:
            return [], None
    if statuses:
        query = query.where(Ticket.status.in_(statuses))
    for column, value in (
        (Ticket.responsible_id, filters.responsible_id),
        (Ticket.object_id, filters.object_id),
        (Ticket.company_id, filters.company_id),
        (Ticket.contact_id, filters.contact_id),
    ):
        if value is not None:
            query = query.where(column == value)
    multi: list[tuple[Any, list[str] | None]] = [
        (Ticket.source, filters.source),
        (Ticket.priority, filters.priority),
        (Ticket.type, filters.type),
    ]
    for column, values in multi:
        if values:
            query = query.where(column.in_(values))
    if filters.needs_reply is not None:
        query = query.where(Ticket.needs_reply.is_(filters.needs_reply))
    if filters.important is not None:
        query = query.where(Ticket.important.is_(filters.important))
    if filters.sla_breached is not None:
        flags = (Ticket.sla_reaction_breached, Ticket.sla_resolution_breached, Ticket.sla_reply_overdue)
        breached = or_(*(flag.is_(True) for flag in flags))
        query = query.where(breached if filters.sla_breached else and_(*(~flag for flag in flags)))
    if filters.sla_reply_overdue is not None:
        query = query.where(Ticket.sla_reply_overdue.is_(filters.sla_reply_overdue))
    if filters.q and filters.q.strip():
        query = query.where(await _q_condition(session, account_id, filters.q))
    if filters.mine_of is not None:
        query = query.where(_mine(filters.mine_of))
    query = query.where(*_ext_flag_conditions(filters))
    order = search.TICKET_ORDERS["important_first" if filters.order == "important_first" else sort]
    return await fetch_page(session, query, order, cursor=cursor, limit=limit)
