"""The door of the intake pipeline: store what a verified sender sent in one statement, record
what was refused, and the administrators' view (list, retry).

    outcome = await accept(db, Received(source="payments.stripe", account_id=..., dedupe_key=...))

The request answers its sender as soon as :func:`accept` returns; the worker
(:mod:`hub.intake.worker`) applies the event moments later, woken in this process at once and in
other processes by PostgreSQL NOTIFY.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import Database, after_commit, dialect_insert, utcnow
from hub.errors import Conflict, NotFound
from hub.intake.models import IntakeEvent, IntakeState
from hub.jobs import notify_job, wake_job
from hub.paging import Rows, by_id, fetch_page

__all__ = [
    "INTAKE_JOB",
    "Accepted",
    "Received",
    "accept",
    "get_event",
    "known",
    "list_events",
    "reject",
    "retry_failed",
    "store",
]

INTAKE_JOB = "intake.apply"
_TABLE = cast(Table, IntakeEvent.__table__)


@dataclass(frozen=True, slots=True)
class Received:
    """One event as it reached the door, after its sender was verified."""

    source: str
    body: str
    account_id: int | None = None
    endpoint_id: int | None = None
    dedupe_key: str | None = None
    replay_key: str | None = None
    order_key: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    remote_addr: str | None = None


Accepted = Literal["stored", "duplicate", "replayed"]


def _row(event: Received, **values: Any) -> dict[str, Any]:
    now = utcnow()
    return {
        "source": event.source,
        "account_id": event.account_id,
        "endpoint_id": event.endpoint_id,
        "dedupe_key": event.dedupe_key[:300] if event.dedupe_key else None,
        "replay_key": event.replay_key,
        "order_key": event.order_key[:200] if event.order_key else None,
        "headers": event.headers,
        "body": event.body,
        "remote_addr": event.remote_addr,
        "received_at": now,
        "state": IntakeState.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        **values,
    }


# Built once per dialect: statement construction cost more than running it on the hot path.
_STORE = {
    dialect: dialect_insert(dialect, _TABLE)
    .on_conflict_do_nothing(index_elements=["source", "dedupe_key"])
    .returning(_TABLE.c.id)
    for dialect in ("postgresql", "sqlite")
}


async def store(session: AsyncSession, event: Received, **values: Any) -> int | None:
    """INSERT ... ON CONFLICT DO NOTHING in the caller's transaction: the new row's id, or None
    when the source already has this dedupe key. Wakes the worker after commit."""
    dialect = session.get_bind().dialect.name
    event_id = await session.scalar(_STORE[dialect], _row(event, **values))
    if event_id is not None and values.get("state", IntakeState.PENDING) == IntakeState.PENDING:
        await notify_job(session, INTAKE_JOB)
        after_commit(session, lambda: wake_job(INTAKE_JOB))
    return event_id


async def accept(db: Database, event: Received) -> Accepted:
    """Store a verified event for the worker: ``stored``, ``duplicate`` (the sender delivered it
    before: answer as received, apply nothing) or ``replayed`` (the same signed request again)."""
    async with db.sessionmaker() as session, session.begin():
        if await store(session, event) is not None:
            return "stored"
        return await known(session, event)


async def known(session: AsyncSession, event: Received) -> Accepted:
    """An event whose dedupe key is stored already: the sender's redelivery (``duplicate``), or
    the very same signed request again (``replayed``: its replay key matches too)."""
    if event.replay_key is None:
        return "duplicate"
    earlier = await session.scalar(
        select(_TABLE.c.replay_key).where(
            _TABLE.c.source == event.source, _TABLE.c.dedupe_key == event.dedupe_key
        )
    )
    return "replayed" if earlier == event.replay_key else "duplicate"


async def reject(db: Database, event: Received, code: str, detail: str) -> None:
    """A request refused at the door (bad signature, unknown endpoint, malformed): recorded the
    same way for every source, never applied. No dedupe key: each refusal is its own row."""
    values = {"state": IntakeState.REJECTED, "outcome": "rejected", "error_code": code[:100]}
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            _TABLE.insert().values(
                _row(event, dedupe_key=None, replay_key=None, error_detail=detail, **values)
            )
        )


async def list_events(
    session: AsyncSession,
    account_id: int,
    *,
    source: str | None = None,
    state: str | None = None,
    outcome: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Rows:
    """The account's inbound events, newest first."""
    query = select(IntakeEvent).where(IntakeEvent.account_id == account_id)
    if source:
        query = query.where(
            (IntakeEvent.source == source) | IntakeEvent.source.startswith(source + ".", autoescape=True)
        )
    if state:
        query = query.where(IntakeEvent.state == state)
    if outcome:
        query = query.where(IntakeEvent.outcome == outcome)
    order = by_id(IntakeEvent.id, newest_first=True)
    return await fetch_page(session, query, order, cursor=cursor, limit=limit)


async def get_event(session: AsyncSession, account_id: int, event_id: int) -> IntakeEvent:
    event = await session.get(IntakeEvent, event_id)
    if event is None or event.account_id != account_id:
        raise NotFound("No such inbound event", code="intake_event_not_found")
    return event


async def retry_failed(session: AsyncSession, account_id: int, event_id: int) -> IntakeEvent:
    """Give an event whose apply failed a fresh set of attempts."""
    event = await get_event(session, account_id, event_id)
    result = await session.execute(
        update(IntakeEvent)
        .where(IntakeEvent.id == event.id, IntakeEvent.state == IntakeState.FAILED)
        .values(
            state=IntakeState.PENDING,
            attempts=0,
            next_attempt_at=utcnow(),
            error_code=None,
            error_detail=None,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise Conflict("Only an event whose apply failed can be retried", code="intake_not_failed")
    await session.refresh(event)
    await notify_job(session, INTAKE_JOB)
    after_commit(session, lambda: wake_job(INTAKE_JOB))
    return event
