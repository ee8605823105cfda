"""The door of the intake pipeline: store what a verified sender sent in one statement, record
what was refused, and the administrators' view (list, retry).

    outcome = await accept(db, Received(source="payments.stripe", account_id=..., dedupe_key=...))

The request answers its sender as soon as :func:`accept` returns; the worker
(:mod:`hub.intake.worker`) applies the event moments later, woken in this process at once and in
other processes by PostgreSQL NOTIFY.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from hub.db import Database, after_commit, dialect_insert, utcnow
from hub.errors import Conflict, NotFound
from hub.intake.models import IntakeEvent, IntakeState
from hub.jobs import WAKE_CHANNEL, notify_job, wake_job
from hub.metrics import INTAKE_EVENTS
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
    "store_many",
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
    outcome = "stored" if event_id is not None else "duplicate"  # a replay is counted a duplicate
    INTAKE_EVENTS.labels(source=event.source, outcome=outcome).inc()
    if event_id is not None and values.get("state", IntakeState.PENDING) == IntakeState.PENDING:
        await notify_job(session, INTAKE_JOB)
        after_commit(session, lambda: wake_job(INTAKE_JOB))
    return event_id


_COLUMNS = tuple(_row(Received(source="", body="")))


def _store_and_wake_sql() -> str:
    """PostgreSQL: the INSERT ... ON CONFLICT DO NOTHING and the NOTIFY that wakes the other
    processes' workers, in ONE statement (the notify runs only when a row was stored). Atomic by
    itself, it needs no transaction around it: the acknowledgement costs one round trip."""
    values = ", ".join(f"${i}::text::json" if c == "headers" else f"${i}" for i, c in enumerate(_COLUMNS, 1))
    return (
        f"WITH stored AS (INSERT INTO {_TABLE.name} ({', '.join(_COLUMNS)}) VALUES ({values}) "
        "ON CONFLICT (source, dedupe_key) DO NOTHING RETURNING id) "
        f"SELECT id, pg_notify('{WAKE_CHANNEL}', '{INTAKE_JOB}') FROM stored"
    )


_STORE_AND_WAKE = _store_and_wake_sql()

# The same without RETURNING, for many events in one executemany (a receiver's group commit).
_STORE_MANY = {
    dialect: dialect_insert(dialect, _TABLE).on_conflict_do_nothing(index_elements=["source", "dedupe_key"])
    for dialect in ("postgresql", "sqlite")
}


async def store_many(session: AsyncSession, events: list[Received]) -> None:
    """Store many verified events in the caller's transaction with one statement (duplicates of
    stored ones are skipped, as by :func:`store`); the worker is woken once after commit."""
    if not events:
        return
    dialect = session.get_bind().dialect.name
    await session.execute(_STORE_MANY[dialect], [_row(event) for event in events])
    await notify_job(session, INTAKE_JOB)
    after_commit(session, lambda: wake_job(INTAKE_JOB))


async def accept(db: Database, event: Received) -> Accepted:
    """Store a verified event for the worker: ``stored``, ``duplicate`` (the sender delivered it
    before: answer as received, apply nothing) or ``replayed`` (the same signed request again)."""
    if db.engine.dialect.name != "postgresql":
        async with db.sessionmaker() as session, session.begin():
            if await store(session, event) is not None:
                return "stored"
            return await known(session, event)
    row = _row(event)
    row["headers"] = json.dumps(row["headers"])
    async with db.engine.connect() as connection:
        # Straight to the driver on the hottest path of the hub (every callback, every PBX
        # event): one prepared statement, without SQLAlchemy's per-execution work.
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        if await driver.fetchval(_STORE_AND_WAKE, *(row[c] for c in _COLUMNS)) is None:
            INTAKE_EVENTS.labels(source=event.source, outcome="duplicate").inc()
            return await known(connection, event)
    INTAKE_EVENTS.labels(source=event.source, outcome="stored").inc()
    wake_job(INTAKE_JOB)
    return "stored"


async def known(session: AsyncSession | AsyncConnection, event: Received) -> Accepted:
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
    INTAKE_EVENTS.labels(source=event.source, outcome="rejected").inc()


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
