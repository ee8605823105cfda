"""Telephony rules: settings (TEL-1), event intake (TEL-2), caller match (TEL-3), pop-ups (TEL-4),
binding (TEL-5), call list (TEL-6), click-to-call (TEL-7), activity (TEL-8). No commits here.

How a call record stays correct whatever the PBX sends:

* Each (account, call id, event) is logged once in ``call_events`` (unique key, inserted in a
  savepoint): a repeat answers ``duplicate`` and changes nothing, also when two hub processes get
  it at the same moment.
* The call row is created by whichever event comes first (a hangup for a call never seen ringing
  creates an ended call) and locked (``FOR UPDATE`` on PostgreSQL) while an event is applied.
* Status only moves forward: requested → ringing → answered → ended. An event for an ended call
  is ``late``: it fills in what is missing (who answered, the numbers) and changes no status.
* A hangup with talk time (``duration`` > 0, cause normal clearing) marks the call answered even
  when the answer event is late or lost, so "missed" is right.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Select,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.telephony import PbxEventResult
from hub.accounts.models import Account, Employee
from hub.cache import TTLCache
from hub.db import Database, after_commit, dialect_insert, utcnow
from hub.desk import visibility
from hub.desk.actors import Actor
from hub.desk.models import Ticket
from hub.desk.service import add_activity, get_ticket, record_history
from hub.desk.visibility import Viewer
from hub.errors import BadRequest, Conflict, NotFound, Unauthorized, Unprocessable
from hub.live import channel_name, publish_after_commit
from hub.outbox import enqueue
from hub.paging import Page, Rows, by_id, fetch_page
from hub.people.matching import matches_for
from hub.people.models import Company, Contact
from hub.people.phones import digits_of, normalise
from hub.telephony.adapters import CanonicalEvent
from hub.telephony.models import Call, CallEventLog, CallTicket, TelephonySettings
from hub.telephony.schemas import (
    CallRead,
    MatchRead,
    OriginateRequest,
    TicketRef,
    jsonable,
)

__all__ = [
    "ORIGINATE_TOPIC",
    "CallFilters",
    "TelephonyDisabled",
    "apply_event",
    "authenticate_pbx",
    "bind_ticket",
    "calls_of_ticket",
    "close_stale_calls",
    "employee_channel",
    "event_party",
    "get_call",
    "get_or_create_settings",
    "issue_token",
    "list_calls",
    "match_caller",
    "originate",
    "read_calls",
    "ticket_to_bind",
    "unbind_ticket",
    "update_settings",
]

ORIGINATE_TOPIC = "telephony.originate"
OPEN_STATUSES = ("open", "in_progress", "pending", "reopened")
# A pop-up offers at most this many clients: a number shared by more (a business centre's
# switchboard) identifies nobody in particular, and the dispatcher asks instead.
MAX_MATCHES = 20
OPEN_CALL_STATUSES = ("requested", "ringing", "answered")
DEFAULT_STALE_MINUTES = 240
# Hangup causes by which the PBX says the call was never picked up.
UNANSWERED_CAUSES = frozenset({"busy", "cancel", "noAnswer", "congestion", "notFound", "failed"})
_STATUS_ORDER = {"requested": 0, "ringing": 1, "answered": 2, "ended": 3}
# An id whose call ended longer ago than this names a new call when it rings again.
CALL_ID_REUSE_AFTER = timedelta(hours=1)


def employee_channel(account_id: int, employee_id: int) -> str:
    """The live channel of one employee's console (pop-ups)."""
    return channel_name(account_id, "emp", employee_id)


def calls_channel(account_id: int) -> str:
    """The account-wide live channel of the call list."""
    return channel_name(account_id, "calls")


# --- settings (TEL-1) ------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def get_or_create_settings(session: AsyncSession, account_id: int) -> TelephonySettings:
    row = await session.scalar(select(TelephonySettings).where(TelephonySettings.account_id == account_id))
    if row is None:
        account = await session.get_one(Account, account_id)
        row = TelephonySettings(
            account_id=account_id,
            enabled=True,
            originate_auth="none",
            match_digits=account.phone_match_digits,
            region=account.default_region,
            stale_call_minutes=DEFAULT_STALE_MINUTES,
        )
        session.add(row)
        await session.flush()
    return row


async def update_settings(
    session: AsyncSession, account_id: int, changes: dict[str, Any]
) -> TelephonySettings:
    row = await get_or_create_settings(session, account_id)
    for key, value in changes.items():
        setattr(row, key, value.upper() if key == "region" else value)
    row.updated_at = utcnow()
    _forget_tokens_after_commit(session)
    return row


async def issue_token(session: AsyncSession, account_id: int, token: str | None = None) -> str:
    """A new PBX token (the old one stops working at once). Only its hash is stored. ``token``:
    a given one (the demo's fixed token); else a random one."""
    row = await get_or_create_settings(session, account_id)
    token = token or "pbx_" + secrets.token_urlsafe(32)
    row.token_hash = _token_hash(token)
    row.token_hint = token[:10]
    row.updated_at = utcnow()
    _forget_tokens_after_commit(session)
    return token


# Statements of the intake path, built once (constructing them per event costs more CPU than
# running them).
_SETTINGS_BY_TOKEN = select(TelephonySettings).where(TelephonySettings.token_hash == bindparam("digest"))


class TelephonyDisabled(Unauthorized):
    """A known PBX token of an account that switched telephony off: the refusal says whose it is
    (so it can be recorded for that account's administrators)."""

    def __init__(self, settings: TelephonySettings) -> None:
        super().__init__("Telephony is switched off for this account", code="telephony_disabled")
        self.settings = settings


# A PBX's events come in bursts: its token is looked up once per few seconds. A new token or a
# change of settings takes effect at once in the process that made it (forget after commit) and
# within PBX_TOKEN_TTL seconds in the others.
PBX_TOKEN_TTL = 5.0
_PBX_BY_TOKEN: TTLCache[str, TelephonySettings | None] = TTLCache(ttl=PBX_TOKEN_TTL)


async def authenticate_pbx(db: Database, token: str | None) -> TelephonySettings:
    """The settings whose token this is, or 401 ``invalid_pbx_token``; through the short cache
    (the intake door's hot path)."""
    digest = _presented_digest(token)
    return _checked(await _PBX_BY_TOKEN.get(digest, lambda: _settings_by_digest(db, digest)), digest)


async def _settings_by_digest(db: Database, digest: str) -> TelephonySettings | None:
    async with db.sessionmaker() as session:
        row = await session.scalar(_SETTINGS_BY_TOKEN, {"digest": digest})
        if row is not None:
            session.expunge(row)
        return row


def _forget_tokens_after_commit(session: AsyncSession) -> None:
    after_commit(session, lambda: _PBX_BY_TOKEN.forget())


def _presented_digest(token: str | None) -> str:
    if not token or len(token) > 200:
        raise Unauthorized("Unknown PBX token", code="invalid_pbx_token", error="Invalid token")
    return _token_hash(token)


def _checked(row: TelephonySettings | None, digest: str) -> TelephonySettings:
    if row is None or not row.token_hash or not hmac.compare_digest(row.token_hash, digest):
        raise Unauthorized("Unknown PBX token", code="invalid_pbx_token", error="Invalid token")
    if not row.enabled:
        raise TelephonyDisabled(row)
    return row


# --- caller match (TEL-3) ----------------------------------------------------------------------------


async def match_caller(
    session: AsyncSession, settings: TelephonySettings, number: str | None
) -> list[MatchRead]:
    """Every company (phones) and contact (phone, mobile) whose number ends in the same N digits:
    the API's one phone search (hub/people/matching.py) with these settings' digits and region."""
    return await matches_for(session, settings.account_id, number, settings.match_digits, settings.region)


# --- event intake (TEL-2) ----------------------------------------------------------------------------


async def _employees_for(session: AsyncSession, account_id: int, values: Iterable[str]) -> list[Employee]:
    """Active employees named by any of ``values`` (extension, e-mail or name): one query."""
    wanted = sorted({v.strip() for v in values if v and v.strip()})
    if not wanted:
        return []
    params = {"account_id": account_id, "wanted": wanted, "lowered": [v.lower() for v in wanted]}
    return list(await session.scalars(_EMPLOYEES_NAMED, params))


_EMPLOYEES_NAMED = select(Employee).where(
    Employee.account_id == bindparam("account_id"),
    Employee.active.is_(True),
    or_(
        Employee.extension.in_(bindparam("wanted", expanding=True)),
        func.lower(Employee.email).in_(bindparam("lowered", expanding=True)),
        Employee.name.in_(bindparam("wanted", expanding=True)),
    ),
)


def _resolve(employees: Sequence[Employee], values: Iterable[str | None]) -> list[Employee]:
    """The employees ``values`` name, in order: by extension, else e-mail, else name (CTI ``user[]``
    carries names, ``answeringNumber`` an extension, login or e-mail)."""
    ordered: list[Employee] = []
    for raw in values:
        value = (raw or "").strip().lower()
        if not value:
            continue
        for attr in ("extension", "email", "name"):
            hit = next((e for e in employees if (getattr(e, attr) or "").lower() == value), None)
            if hit is not None:
                if hit not in ordered:
                    ordered.append(hit)
                break
    return ordered


_CALL_BY_EXTERNAL_ID = (
    select(Call)
    .where(Call.account_id == bindparam("account_id"), Call.external_id == bindparam("external_id"))
    .order_by(Call.generation.desc())
    .limit(1)
    .execution_options(populate_existing=True)
)
_CALL_BY_EXTERNAL_ID_LOCKED = _CALL_BY_EXTERNAL_ID.with_for_update()


async def _lock_call(session: AsyncSession, account_id: int, external_id: str) -> Call | None:
    locked = session.get_bind().dialect.name == "postgresql"
    query = _CALL_BY_EXTERNAL_ID_LOCKED if locked else _CALL_BY_EXTERNAL_ID
    return await session.scalar(query, {"account_id": account_id, "external_id": external_id})


def _insert_ignoring_conflict(dialect: str, table: Any, unique: list[str], returning: Any) -> Any:
    return dialect_insert(dialect, table).on_conflict_do_nothing(index_elements=unique).returning(returning)


# INSERT … ON CONFLICT DO NOTHING RETURNING id, per dialect: one round trip, no savepoint.
_INSERT_CALL = {
    d: _insert_ignoring_conflict(
        d, Call.__table__, ["account_id", "external_id", "generation"], Call.__table__.c.id
    )
    for d in ("postgresql", "sqlite")
}
_INSERT_EVENT = {
    d: _insert_ignoring_conflict(
        d, CallEventLog.__table__, ["call_id", "event", "party"], CallEventLog.__table__.c.id
    )
    for d in ("postgresql", "sqlite")
}
_CALL_COLUMNS = [c.key for c in Call.__table__.columns if c.key != "id"]


async def _insert_call(session: AsyncSession, call: Call) -> int | None:
    """Store a new call; ``None`` when another request created the same call id first."""
    values = {key: getattr(call, key) for key in _CALL_COLUMNS}
    return await session.scalar(_INSERT_CALL[session.get_bind().dialect.name], values)


async def _log_event(
    session: AsyncSession, call_id: int, account_id: int, ev: CanonicalEvent, outcome: str
) -> bool:
    """Record the event once; False when this (call id, event) was seen before."""
    values = {
        "account_id": account_id,
        "call_id": call_id,
        "external_call_id": ev.call_id,
        "event": ev.kind,
        "party": event_party(ev),
        "dialect": ev.dialect,
        "payload": jsonable(ev.raw),
        "outcome": outcome,
        "received_at": utcnow(),
    }
    return await session.scalar(_INSERT_EVENT[session.get_bind().dialect.name], values) is not None


def event_party(ev: CanonicalEvent) -> str:
    """What tells one event of a call from another of the same kind: the parties a ``ringing``
    rings (a hunt group rings its extensions one after another, one event each); nothing else."""
    if ev.kind != "ringing":
        return ""
    return ",".join(sorted({p.strip().lower() for p in ev.parties if p.strip()}))[:100]


def _is_next_call(call: Call, ev: CanonicalEvent, now: datetime) -> bool:
    """Whether ``ev`` starts a new call under an id its ended ``call`` had (a PBX that restarted
    its call-id counter). Events that come late for a call arrive within minutes; so does the
    real hangup of a call the sweeper closed, which belongs to it."""
    if call.status != "ended":
        return False
    if call.closed_by_sweeper and ev.kind in ("answered", "hangup"):
        return False
    return now - (call.ended_at or call.started_at) > CALL_ID_REUSE_AFTER


def _new_call(settings: TelephonySettings, ev: CanonicalEvent, generation: int = 0) -> Call:
    now = utcnow()
    return Call(
        account_id=settings.account_id,
        external_id=ev.call_id,
        generation=generation,
        direction=ev.direction,
        status="ringing",
        ringing_extensions=[],
        matches=[],
        answered=False,
        closed_by_sweeper=False,
        started_at=ev.occurred_at or now,
        created_at=now,
        updated_at=now,
    )


def _client_number(call: Call, settings: TelephonySettings) -> str | None:
    raw = call.from_number if call.direction == "in" else call.to_number
    if not raw or not digits_of(raw):
        return None
    return normalise(raw, settings.region)


async def _fill_client(session: AsyncSession, settings: TelephonySettings, call: Call) -> None:
    if call.client_number is None:
        call.client_number = _client_number(call, settings)
    if call.client_number and not call.matches:
        matches = await match_caller(session, settings, call.client_number)
        call.matches = [jsonable(m) for m in matches]
        call.contact_id = next((m.id for m in matches if m.kind == "contact"), None)
        call.company_id = next((m.company_id for m in matches if m.company_id), None)


def _advance(call: Call, status: str) -> bool:
    if _STATUS_ORDER[status] > _STATUS_ORDER[call.status]:
        call.status = status
        return True
    return False


@dataclass
class _Effects:
    popup_to: list[int]  # employees who get this event's pop-up frame
    ended_now: bool = False


async def apply_event(
    session: AsyncSession, settings: TelephonySettings, ev: CanonicalEvent, *, _retry: bool = True
) -> PbxEventResult:
    """Apply one PBX event to its call, exactly once. See the module docstring for the rules.

    A handful of round trips: the call (locked), the employees involved, the caller match and
    the client's tickets for a new call, one INSERT … ON CONFLICT each for the call and the event
    log, and the changes flushed once at commit (no autoflush in between). A repeated event is
    found by its second statement, before any matching: a PBX that retries a burst costs little.
    """
    with session.no_autoflush:
        # The call first, also for a ringing event (nearly always a call's first): without a call
        # the event cannot be a repeat; with one, its log entry says so before the caller match.
        found = await _lock_call(session, settings.account_id, ev.call_id)
        generation = 0
        if found is not None and _is_next_call(found, ev, utcnow()):
            generation, found = found.generation + 1, None
        created = found is None
        # An event for an ended call only fills in what is missing.
        late = found is not None and found.status == "ended"
        outcome = "late" if late else "applied"
        call = found or _new_call(settings, ev, generation)
        if not created and not await _log_event(session, call.id, call.account_id, ev, outcome):
            return PbxEventResult(ev.call_id, ev.kind, "duplicate", call.id, call.status)  # type: ignore[arg-type]
        staff = await _employees_for(
            session,
            settings.account_id,
            [*ev.parties, ev.answered_by or "", *(call.ringing_extensions or [])],
        )
        now = ev.occurred_at or utcnow()
        call.from_number = call.from_number or ev.from_number
        call.to_number = call.to_number or ev.to_number
        call.queue = call.queue or ev.queue
        if ev.kind == "outgoing":
            call.direction = "out"
        effects = _Effects(popup_to=[])
        if ev.kind in ("ringing", "outgoing"):
            _on_ringing(call, ev, _resolve(staff, ev.parties), effects, late)
        elif ev.kind == "answered":
            _on_answered(call, ev, _resolve(staff, [ev.answered_by]), now, staff, effects)
        elif ev.kind == "hangup":
            _on_hangup(call, ev, now, staff, effects)
        await _fill_client(session, settings, call)
        call.updated_at = utcnow()
        if created:
            new_id = await _insert_call(session, call)
            if new_id is None:
                if not _retry:
                    raise Conflict("The call changed while this event was applied", code="call_conflict")
                # Another process created this call a moment ago: apply to its record instead.
                return await apply_event(session, settings, ev, _retry=False)
            call.id = new_id
            await _log_event(session, new_id, call.account_id, ev, outcome)
        await _publish(session, call, ev.kind, effects)
        if effects.ended_now:
            await _record_activity(session, call)
    return PbxEventResult(ev.call_id, ev.kind, outcome, call.id, call.status)  # type: ignore[arg-type]


def _on_ringing(
    call: Call, ev: CanonicalEvent, employees: list[Employee], effects: _Effects, late: bool
) -> None:
    extensions = list(call.ringing_extensions or [])
    for value in [e.extension for e in employees if e.extension] or ev.parties:
        if value and value[:20] not in extensions:
            extensions.append(value[:20])
    call.ringing_extensions = extensions
    if ev.kind == "outgoing" and employees and call.employee_id is None:
        call.employee_id = employees[0].id
    if late:
        return
    _advance(call, "ringing")
    # A pop-up only while the call still rings (an answer may have overtaken this event).
    if call.status == "ringing":
        effects.popup_to = [e.id for e in employees]


def _on_answered(
    call: Call,
    ev: CanonicalEvent,
    answering: list[Employee],
    now: datetime,
    staff: list[Employee],
    effects: _Effects,
) -> None:
    if call.cause in UNANSWERED_CAUSES:
        return  # the PBX already said nobody picked up; a stray answer after it changes nothing
    if ev.answered_by and not answering:
        # Voicemail, an IVR or someone who is not one of our employees took it: for the desk the
        # call stays missed. The ringing pop-ups close.
        call.answered_extension = call.answered_extension or ev.answered_by[:20]
        effects.popup_to = _ringing_employee_ids(call, staff)
        return
    if not ev.answered_by:
        rang = _resolve(staff, call.ringing_extensions or [])
        answering = rang if len(rang) == 1 else []  # the only employee it rang took it
    if not call.answered:
        call.answered = True
        # An answer told after the hangup happened before it.
        call.answered_at = min(now, call.ended_at) if call.ended_at else now
    if answering and (call.employee_id is None or call.direction == "in"):
        call.employee_id = answering[0].id
    if not call.answered_extension and (answering or ev.answered_by):
        call.answered_extension = (answering[0].extension if answering else None) or (ev.answered_by or "")[
            :20
        ]
    if _advance(call, "answered"):
        effects.popup_to = _ringing_employee_ids(call, staff)


def _on_hangup(
    call: Call, ev: CanonicalEvent, now: datetime, staff: list[Employee], effects: _Effects
) -> None:
    # The real hangup of a call the sweeper closed replaces the sweeper's guess (cause "stale").
    swept = call.status == "ended" and call.closed_by_sweeper
    if swept:
        call.closed_by_sweeper = False
        call.cause = None
        call.duration_seconds = None
    call.cause = call.cause or ev.cause
    call.recording_url = call.recording_url or ev.recording_url
    if ev.duration is not None and call.duration_seconds is None:
        call.duration_seconds = ev.duration
    talked = bool(ev.duration) and ev.cause in (None, "normalClearing")
    # Not when voicemail or someone outside the staff took it (answered_extension without answer).
    if not call.answered and call.answered_extension is None and (talked or ev.recording_url):
        call.answered = True
        call.answered_at = now - timedelta(seconds=ev.duration or 0)
    if call.status != "ended" or swept:
        call.ended_at = now
        if call.duration_seconds is None and call.answered_at is not None:
            call.duration_seconds = max(int((now - call.answered_at).total_seconds()), 0)
    if call.status != "ended":
        _advance(call, "ended")
        effects.ended_now = True
        effects.popup_to = _ringing_employee_ids(call, staff)


def _ringing_employee_ids(call: Call, staff: Sequence[Employee]) -> list[int]:
    ids = [e.id for e in _resolve(staff, call.ringing_extensions or [])]
    if call.employee_id and call.employee_id not in ids:
        ids.append(call.employee_id)
    return ids


# --- pop-ups (TEL-4) ---------------------------------------------------------------------------------


def _brief(call: Call) -> dict[str, Any]:
    return {
        "id": call.id,
        "external_id": call.external_id,
        "direction": call.direction,
        "status": call.status,
        "from_number": call.from_number,
        "to_number": call.to_number,
        "client_number": call.client_number,
        "ringing_extensions": list(call.ringing_extensions or []),
        "answered": call.answered,
        "answered_extension": call.answered_extension,
        "employee_id": call.employee_id,
        "started_at": jsonable(call.started_at),
        "ended_at": jsonable(call.ended_at),
        "duration_seconds": call.duration_seconds,
        "cause": call.cause,
    }


def _ticket_lists_statement() -> Any:
    """Open tickets (10) and recent ones (5) of the matched clients, in one round trip."""
    whose = or_(
        Ticket.contact_id.in_(bindparam("contact_ids", expanding=True)),
        Ticket.company_id.in_(bindparam("company_ids", expanding=True)),
    )
    columns = (Ticket.id, Ticket.number, Ticket.title, Ticket.status, Ticket.priority, Ticket.created_at)
    base = [Ticket.account_id == bindparam("account_id"), Ticket.type != "internal", whose]
    open_ = (
        select(literal("open").label("list"), *columns)
        .where(*base, Ticket.status.in_(OPEN_STATUSES))
        .order_by(Ticket.id.desc())
        .limit(10)
        .subquery()
    )
    recent = (
        select(literal("recent").label("list"), *columns).where(*base).order_by(Ticket.id.desc()).limit(5)
    )
    return union_all(select(open_), select(recent.subquery()))


# Built once: constructing it per pop-up costs more CPU than running it.
_TICKET_LISTS = _ticket_lists_statement()


async def _client_tickets(session: AsyncSession, call: Call) -> dict[str, list[dict[str, Any]]]:
    """The matched clients' open tickets and their most recent ones (any status)."""
    lists: dict[str, list[dict[str, Any]]] = {"open": [], "recent": []}
    contact_ids = [m["id"] for m in call.matches or [] if m["kind"] == "contact"]
    company_ids = [m["company_id"] for m in call.matches or [] if m.get("company_id")]
    if not contact_ids and not company_ids:
        return lists
    params = {"account_id": call.account_id, "contact_ids": contact_ids, "company_ids": company_ids}
    for row in await session.execute(_TICKET_LISTS, params):
        lists[row.list].append(
            {
                "id": row.id,
                "number": row.number,
                "title": row.title,
                "status": row.status,
                "priority": row.priority,
                "created_at": jsonable(row.created_at),
            }
        )
    for rows in lists.values():
        rows.sort(key=lambda t: -int(t["id"]))
    return lists


async def _popups_by_viewer(
    session: AsyncSession, account_id: int, data: dict[str, Any], employee_ids: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """Each ringing employee's pop-up lists only the tickets they may see (DESK-12). Costs a
    statement only when the pop-up lists tickets."""
    frames = {employee_id: data for employee_id in employee_ids}
    listed = {t["id"] for rows in data["tickets"].values() for t in rows}
    if not listed:
        return frames
    for employee_id, viewer in (
        await visibility.viewers_of_employees(session, account_id, employee_ids)
    ).items():
        if viewer.sees_all:
            continue
        shown = await visibility.visible_ticket_ids(session, viewer, listed)
        tickets = {name: [t for t in rows if t["id"] in shown] for name, rows in data["tickets"].items()}
        frames[employee_id] = {**data, "tickets": tickets}
    return frames


async def _publish(session: AsyncSession, call: Call, kind: str, effects: _Effects) -> None:
    frame_type = {
        "ringing": "call.ringing",
        "outgoing": "call.outgoing",
        "answered": "call.answered",
        "hangup": "call.ended",
    }[kind]
    data: dict[str, Any] = {"call": _brief(call)}
    frames = {employee_id: data for employee_id in effects.popup_to}
    if kind in ("ringing", "outgoing") and effects.popup_to:
        data["matches"] = list(call.matches or [])
        data["tickets"] = await _client_tickets(session, call)
        frames = await _popups_by_viewer(session, call.account_id, data, effects.popup_to)
    for employee_id, frame in frames.items():
        publish_after_commit(session, employee_channel(call.account_id, employee_id), frame_type, frame)
    publish_after_commit(session, calls_channel(call.account_id), "call.updated", {"call": _brief(call)})


# --- activity (TEL-8) --------------------------------------------------------------------------------


def _summary(call: Call) -> str:
    if call.direction == "in":
        head = "Incoming call" if call.answered else "Missed incoming call"
    else:
        head = "Outgoing call" if call.answered else "Unanswered outgoing call"
    if call.answered and call.duration_seconds:
        minutes, seconds = divmod(call.duration_seconds, 60)
        head += f", {minutes}:{seconds:02d}"
    return head


async def _record_activity(session: AsyncSession, call: Call) -> None:
    """The ended call goes into the activity feed of every contact it matched (DESK-8)."""
    contact_ids = [m["id"] for m in call.matches or [] if m["kind"] == "contact"][:5]
    for contact_id in contact_ids:
        await add_activity(
            session,
            call.account_id,
            contact_id,
            "call",
            call.id,
            _summary(call),
            {
                "direction": call.direction,
                "number": call.client_number,
                "answered": call.answered,
                "duration_seconds": call.duration_seconds,
                "recording_url": call.recording_url,
            },
        )


# --- stale calls -------------------------------------------------------------------------------------


async def close_stale_calls(session: AsyncSession, now: datetime | None = None, limit: int = 200) -> int:
    """Close calls whose hangup never came (per account's ``stale_call_minutes``). Safe in several
    processes: each call is closed by a conditional update that only one of them wins."""
    now = now or utcnow()
    minutes = func.coalesce(TelephonySettings.stale_call_minutes, DEFAULT_STALE_MINUTES)
    # Each account's own cutoff is in the WHERE clause, so accounts that keep calls open for long
    # cannot fill the batch and starve the others. Datetime arithmetic differs per database: one
    # condition per distinct setting (there are few) keeps it portable.
    settings_used = set(await session.scalars(select(TelephonySettings.stale_call_minutes).distinct()))
    overdue = or_(
        *(
            and_(minutes == value, Call.started_at < now - timedelta(minutes=value))
            for value in sorted(settings_used | {DEFAULT_STALE_MINUTES})
        )
    )
    candidates = (
        await session.execute(
            select(Call.id, minutes)
            .join(TelephonySettings, TelephonySettings.account_id == Call.account_id, isouter=True)
            .where(Call.status.in_(OPEN_CALL_STATUSES), overdue)
            .order_by(Call.started_at)
            .limit(limit)
        )
    ).all()
    closed = 0
    for call_id, stale_minutes in candidates:
        cutoff = now - timedelta(minutes=stale_minutes)
        result = await session.execute(
            update(Call)
            .where(
                Call.id == call_id,
                Call.status.in_(OPEN_CALL_STATUSES),
                Call.started_at < cutoff,
            )
            .values(
                status="ended",
                ended_at=now,
                closed_by_sweeper=True,
                cause=func.coalesce(Call.cause, "stale"),
                updated_at=now,
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            continue
        closed += 1
        call = await session.get_one(Call, call_id, populate_existing=True)
        staff = await _employees_for(session, call.account_id, call.ringing_extensions or [])
        effects = _Effects(popup_to=_ringing_employee_ids(call, staff), ended_now=True)
        await _publish(session, call, "hangup", effects)
        await _record_activity(session, call)
    return closed


# --- call list (TEL-6) and binding (TEL-5) --------------------------------------------------------


@dataclass
class CallFilters:
    date_from: datetime | None = None
    date_to: datetime | None = None
    direction: str | None = None
    employee_id: int | None = None
    missed: bool | None = None
    contact_id: int | None = None
    company_id: int | None = None
    ticket_id: int | None = None


# Missed: an incoming call that ended unanswered. An outgoing call nobody picked up (or a
# click-to-call the PBX refused) is not a call the team missed.
_MISSED = and_(Call.direction == "in", Call.status == "ended", Call.answered.is_(False))


def is_missed(call: Call) -> bool:
    return call.direction == "in" and call.status == "ended" and not call.answered


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise Unprocessable(f"{name} needs a time zone (Z or +hh:mm)", code="naive_datetime", field=name)
    return value


def _rang_on(extension: str) -> Any:
    """Calls whose ringing extensions include ``extension`` (the JSON list, read as its text)."""
    return cast(Call.ringing_extensions, Text).contains(f'"{extension}"', autoescape=True)


async def _filtered(session: AsyncSession, account_id: int, f: CallFilters) -> Select[Any]:
    query = select(Call).where(Call.account_id == account_id)
    if _aware("date_from", f.date_from):
        query = query.where(Call.started_at >= f.date_from)
    if _aware("date_to", f.date_to):
        query = query.where(Call.started_at < f.date_to)
    if f.direction:
        query = query.where(Call.direction == f.direction)
    if f.employee_id:
        query = query.where(await _employee_condition(session, account_id, f.employee_id))
    if f.missed is True:
        query = query.where(_MISSED)
    elif f.missed is False:
        query = query.where(~_MISSED)
    if f.contact_id:
        query = query.where(Call.contact_id == f.contact_id)
    if f.company_id:
        query = query.where(Call.company_id == f.company_id)
    if f.ticket_id:
        query = query.where(
            Call.id.in_(
                select(CallTicket.call_id).where(
                    CallTicket.account_id == account_id, CallTicket.ticket_id == f.ticket_id
                )
            )
        )
    return query


async def _employee_condition(session: AsyncSession, account_id: int, employee_id: int) -> Any:
    """An employee's calls: those they answered or placed, and the unanswered ones that rang on
    their extension (so "mine and missed" lists the calls they missed)."""
    extension = await session.scalar(
        select(Employee.extension).where(Employee.account_id == account_id, Employee.id == employee_id)
    )
    if not extension:
        return Call.employee_id == employee_id
    return or_(Call.employee_id == employee_id, and_(Call.answered.is_(False), _rang_on(extension)))


async def list_calls(
    session: AsyncSession, account_id: int, filters: CallFilters, *, cursor: str | None, limit: int
) -> Rows:
    """Newest first, keyset-paged."""
    query = await _filtered(session, account_id, filters)
    return await fetch_page(session, query, by_id(Call.id, newest_first=True), cursor=cursor, limit=limit)


async def get_call(session: AsyncSession, account_id: int, call_id: int) -> Call:
    call = await session.scalar(select(Call).where(Call.account_id == account_id, Call.id == call_id))
    if call is None:
        raise NotFound("No such call", code="call_not_found")
    return call


async def _ticket_refs(
    session: AsyncSession, account_id: int, call_ids: list[int], viewer: Viewer | None
) -> dict[int, list[TicketRef]]:
    if not call_ids:
        return {}
    visible = visibility.ticket_id_clause(viewer or Viewer(account_id), CallTicket.ticket_id)
    bindings = list(
        await session.scalars(
            select(CallTicket)
            .where(CallTicket.account_id == account_id, CallTicket.call_id.in_(call_ids), visible)
            .order_by(CallTicket.id)
        )
    )
    info: dict[int, Any] = {}
    if bindings:
        rows = await session.execute(
            select(Ticket.id, Ticket.number, Ticket.title, Ticket.status).where(
                Ticket.account_id == account_id, Ticket.id.in_({b.ticket_id for b in bindings})
            )
        )
        info = {r.id: r for r in rows}
    refs: dict[int, list[TicketRef]] = {}
    for b in bindings:
        row = info.get(b.ticket_id)
        refs.setdefault(b.call_id, []).append(
            TicketRef(
                b.ticket_id,
                row.number if row else None,
                row.title if row else None,
                row.status if row else None,
                b.automatic,
            )
        )
    return refs


async def read_calls(
    session: AsyncSession, account_id: int, calls: Sequence[Call], *, viewer: Viewer | None = None
) -> list[CallRead]:
    """The calls as the API shows them, with the tickets they are bound to that ``viewer`` may see
    (DESK-12; everyone's when no viewer is given)."""
    refs = await _ticket_refs(session, account_id, [c.id for c in calls], viewer)
    employee_ids = {c.employee_id for c in calls if c.employee_id}
    names: dict[int, str] = {}
    if employee_ids:
        rows = await session.execute(
            select(Employee.id, Employee.name).where(
                Employee.account_id == account_id, Employee.id.in_(employee_ids)
            )
        )
        names = {employee_id: name for employee_id, name in rows.tuples()}
    result = []
    for c in calls:
        matches = [MatchRead(**m) for m in c.matches or []]
        result.append(
            CallRead(
                id=c.id,
                external_id=c.external_id,
                direction=c.direction,
                status=c.status,
                from_number=c.from_number,
                to_number=c.to_number,
                client_number=c.client_number,
                client=matches[0] if matches else None,
                matches=matches,
                employee_id=c.employee_id,
                employee_name=names.get(c.employee_id) if c.employee_id else None,
                answered=c.answered,
                missed=is_missed(c),
                started_at=c.started_at,
                answered_at=c.answered_at,
                ended_at=c.ended_at,
                duration_seconds=c.duration_seconds,
                cause=c.cause,
                recording_url=c.recording_url,
                ringing_extensions=list(c.ringing_extensions or []),
                answered_extension=c.answered_extension,
                closed_by_sweeper=c.closed_by_sweeper,
                originate_state=c.originate_state,
                tickets=refs.get(c.id, []),
            )
        )
    return result


async def _history(
    session: AsyncSession, ticket: Any, actor: Actor, kind: str, call: Call, **extra: Any
) -> None:
    await record_history(
        session,
        ticket,
        actor,
        kind,
        {
            "call_id": call.id,
            "direction": call.direction,
            "number": call.client_number,
            "started_at": jsonable(call.started_at),
            **extra,
        },
    )


async def ticket_to_bind(
    session: AsyncSession, account_id: int, ticket_id: int | None, ticket_number: int | None
) -> int:
    """The id of the ticket named by its id or by its visible number (exactly one of them)."""
    if (ticket_id is None) == (ticket_number is None):
        raise BadRequest("Give ticket_id or ticket_number", code="ticket_required")
    if ticket_id is not None:
        return ticket_id
    found = await session.scalar(
        select(Ticket.id).where(Ticket.account_id == account_id, Ticket.number == ticket_number)
    )
    if found is None:
        raise NotFound(f"No ticket #{ticket_number}", code="ticket_not_found")
    return int(found)


async def bind_ticket(
    session: AsyncSession,
    account_id: int,
    call_id: int,
    ticket_id: int,
    actor: Actor,
    *,
    automatic: bool = False,
) -> CallTicket:
    """Bind a call to a ticket (TEL-5); both must be in the account. History records it."""
    call = await get_call(session, account_id, call_id)
    ticket = await get_ticket(session, account_id, ticket_id)
    existing = await session.scalar(
        select(CallTicket).where(CallTicket.call_id == call.id, CallTicket.ticket_id == ticket.id)
    )
    if existing is not None:
        raise Conflict("The call is already bound to this ticket", code="call_already_bound")
    binding = CallTicket(
        account_id=account_id,
        call_id=call.id,
        ticket_id=ticket.id,
        bound_by_kind=actor.kind,
        bound_by_id=actor.id,
        automatic=automatic,
        created_at=utcnow(),
    )
    try:
        # A savepoint: when two requests bind the same pair at once, the loser gets a clear 409
        # and the rest of its transaction stays usable.
        async with session.begin_nested():
            session.add(binding)
    except IntegrityError as exc:
        raise Conflict("The call is already bound to this ticket", code="call_already_bound") from exc
    await _history(session, ticket, actor, "call_bound", call, automatic=automatic)
    publish_after_commit(session, calls_channel(account_id), "call.updated", {"call": _brief(call)})
    return binding


async def unbind_ticket(
    session: AsyncSession, account_id: int, call_id: int, ticket_id: int, actor: Actor
) -> None:
    call = await get_call(session, account_id, call_id)
    ticket = await get_ticket(session, account_id, ticket_id)
    result = await session.execute(
        delete(CallTicket).where(
            CallTicket.account_id == account_id,
            CallTicket.call_id == call.id,
            CallTicket.ticket_id == ticket.id,
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound("The call is not bound to this ticket", code="binding_not_found")
    await _history(session, ticket, actor, "call_unbound", call)
    publish_after_commit(session, calls_channel(account_id), "call.updated", {"call": _brief(call)})


async def calls_of_ticket(
    session: AsyncSession,
    account_id: int,
    ticket_id: int,
    *,
    viewer: Viewer | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[CallRead]:
    """The ticket's calls, newest first."""
    ticket = await get_ticket(session, account_id, ticket_id)
    query = (
        select(Call)
        .join(CallTicket, and_(CallTicket.call_id == Call.id, CallTicket.ticket_id == ticket.id))
        .where(Call.account_id == account_id)
    )
    order = by_id(Call.id, newest_first=True)
    calls, next_cursor = await fetch_page(session, query, order, cursor=cursor, limit=limit)
    return Page(await read_calls(session, account_id, calls, viewer=viewer), next_cursor)


# --- click-to-call (TEL-7) ---------------------------------------------------------------------------


async def originate(session: AsyncSession, account_id: int, employee_id: int, data: OriginateRequest) -> Call:
    """Record an outgoing call and queue the PBX's originate request (delivered after commit)."""
    settings = await get_or_create_settings(session, account_id)
    if not settings.enabled or not settings.originate_url:
        raise Conflict("Click-to-call is not set up for this account", code="originate_not_configured")
    employee = await session.scalar(
        select(Employee).where(Employee.account_id == account_id, Employee.id == employee_id)
    )
    if employee is None or not employee.extension:
        raise Conflict("Your employee card has no extension number", code="extension_required")
    if not digits_of(data.number):
        raise BadRequest("The number has no digits", code="invalid_number")
    matches: list[MatchRead] = []
    if data.contact_id:
        contact = await session.scalar(
            select(Contact).where(Contact.account_id == account_id, Contact.id == data.contact_id)
        )
        if contact is None:
            raise NotFound("No such contact", code="contact_not_found")
        matches.append(
            MatchRead("contact", contact.id, contact.name, "phone", data.number, contact.company_id)
        )
    if data.company_id:
        company = await session.scalar(
            select(Company).where(Company.account_id == account_id, Company.id == data.company_id)
        )
        if company is None:
            raise NotFound("No such company", code="company_not_found")
        matches.append(
            MatchRead("company", company.id, company.name, "phone", data.number, company.id, company.name)
        )
    if not matches:
        matches = await match_caller(session, settings, data.number)
    now = utcnow()
    call = Call(
        account_id=account_id,
        external_id=f"hub-{uuid.uuid4().hex}",
        direction="out",
        status="requested",
        from_number=employee.extension,
        to_number=data.number,
        client_number=normalise(data.number, settings.region),
        ringing_extensions=[employee.extension],
        employee_id=employee.id,
        matches=[jsonable(m) for m in matches],
        contact_id=next((m.id for m in matches if m.kind == "contact"), None),
        company_id=next((m.company_id for m in matches if m.company_id), None),
        answered=False,
        closed_by_sweeper=False,
        originate_state="pending",
        started_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(call)
    await session.flush()
    await enqueue(
        session,
        account_id=account_id,
        topic=ORIGINATE_TOPIC,
        payload={"call_id": call.id},
        idempotency_key=f"{ORIGINATE_TOPIC}:{call.id}",
        max_attempts=5,
    )
    publish_after_commit(session, calls_channel(account_id), "call.updated", {"call": _brief(call)})
    return call
