"""The intake worker: claim due events in batches, apply them in order per key, record outcomes.

A round claims up to ``BATCH`` due events in one short transaction (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, read in id order through a partial index), takes only those whose earlier events of
the same ``order_key`` are done or taken in the same round, prepares them with no session open
(a source may call a provider's API), then applies them all in ONE transaction, a savepoint per
event, and records every outcome in one executemany UPDATE guarded by the round's claim token.
Applying and recording commit together: an event is applied exactly once, and a worker killed
mid-batch leaves its events claimed until the lease passes, then another worker applies them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import Table, and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import utcnow
from hub.intake.models import IntakeEvent, IntakeState
from hub.intake.service import INTAKE_JOB, Accepted, Received, known, store
from hub.intake.sources import Applied, EventView, TransientApplyError, source_for
from hub.jobs import JobContext, periodic_job
from hub.metrics import INTAKE_EVENTS

__all__ = ["BATCH", "LEASE", "apply_due", "apply_inline", "drain_intake", "intake_job"]

log = structlog.get_logger("hub.intake")
BATCH = 200
# A claimed event whose worker died is claimed again after this (a batch applies in well under it).
LEASE = timedelta(seconds=30)
MAX_ATTEMPTS = 10
_TABLE = cast(Table, IntakeEvent.__table__)
_C = _TABLE.c
_VIEW_COLUMNS = (
    _C.id,
    _C.source,
    _C.account_id,
    _C.endpoint_id,
    _C.dedupe_key,
    _C.replay_key,
    _C.order_key,
    _C.headers,
    _C.body,
    _C.remote_addr,
    _C.received_at,
    _C.attempts,
)


def _due(now: datetime) -> Any:
    return or_(
        and_(_C.state == IntakeState.PENDING, _C.next_attempt_at <= now),
        and_(_C.state == IntakeState.APPLYING, _C.locked_until < now),
    )


async def _claim(session: AsyncSession, now: datetime, token: str) -> list[EventView]:
    unfinished = _C.state.in_((IntakeState.PENDING, IntakeState.APPLYING))
    due = select(_C.id, _C.order_key).where(unfinished, _due(now)).order_by(_C.id).limit(BATCH)
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    rows = (await session.execute(due)).all()
    if not rows:
        return []
    keys = {key for _, key in rows if key is not None}
    earlier: dict[str, set[int]] = {}
    if keys:  # unfinished events of the same keys that came before the newest candidate
        found = await session.execute(
            select(_C.order_key, _C.id).where(unfinished, _C.order_key.in_(keys), _C.id <= rows[-1].id)
        )
        for key, event_id in found:
            earlier.setdefault(key, set()).add(event_id)
    taken = _in_order(rows, earlier)
    claimed = await session.execute(
        update(_TABLE)
        .where(_C.id.in_(taken))
        .values(
            state=IntakeState.APPLYING,
            attempts=_C.attempts + 1,
            locked_until=now + LEASE,
            claim_token=token,
        )
        .returning(*_VIEW_COLUMNS)
    )
    return sorted((EventView(*row) for row in claimed), key=lambda e: e.id)


def _in_order(rows: Sequence[Any], earlier: dict[str, set[int]]) -> list[int]:
    """The candidates every earlier unfinished event of whose key is taken in this round too (one
    behind a locked, failing or not-yet-due event waits for it)."""
    taken: set[int] = set()
    for event_id, key in rows:
        if key is None or all(e in taken for e in earlier.get(key, ()) if e < event_id):
            taken.add(event_id)
    return sorted(taken)


async def _prepare(ctx: JobContext, event: EventView) -> tuple[EventView, Any, Exception | None]:
    source = source_for(event.source)
    if source is None:
        return event, None, LookupError(f"no intake source applies {event.source!r}")
    try:
        return event, await source.prepare(ctx, event), None
    except Exception as exc:  # recorded on the event (retried if transient), never lost
        return event, None, exc


async def _apply_one(
    session: AsyncSession, ctx: JobContext, event: EventView, prepared: Any, error: Exception | None
) -> Applied | Exception:
    source = source_for(event.source)
    if source is None:
        return error or LookupError(f"no intake source applies {event.source!r}")
    if error is None:
        try:
            async with session.begin_nested():
                return await source.apply(session, ctx, event, prepared)
        except Exception as exc:  # the savepoint undid it; the outcome says why
            error = exc
    if isinstance(error, TransientApplyError):
        return error
    return await source.refused(session, ctx, event, error) or error


def _outcome(event: EventView, result: Applied | Exception, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {"b_id": event.id, "locked_until": None, "claim_token": None}
    if isinstance(result, Applied):
        return values | {
            "state": IntakeState.DONE,
            "outcome": result.outcome,
            "error_code": result.code,
            "error_detail": result.detail,
            "applied_at": now,
            "result": result.result,
            "next_attempt_at": now,
        }
    transient = isinstance(result, TransientApplyError)
    if not transient:
        log.error("intake_apply_failed", event_id=event.id, source=event.source, error=repr(result))
    failed = event.attempts >= MAX_ATTEMPTS
    delay = min(600.0, 2.0 * 2 ** (event.attempts - 1))
    return values | {
        "state": IntakeState.FAILED if failed else IntakeState.PENDING,
        "outcome": None,
        "error_code": "apply_unavailable" if transient else "apply_error",
        "error_detail": repr(result)[:2000],
        "applied_at": None,
        "result": None,
        "next_attempt_at": now + timedelta(seconds=delay),
    }


_RECORD = (
    update(_TABLE)
    .where(_C.id == bindparam("b_id"), _C.claim_token.is_not_distinct_from(bindparam("b_token")))
    .values(
        state=bindparam("state"),
        outcome=bindparam("outcome"),
        error_code=bindparam("error_code"),
        error_detail=bindparam("error_detail"),
        applied_at=bindparam("applied_at"),
        result=bindparam("result"),
        next_attempt_at=bindparam("next_attempt_at"),
        locked_until=bindparam("locked_until"),
        claim_token=bindparam("claim_token"),
    )
)


async def _apply_sets(
    session: AsyncSession, ctx: JobContext, prepared: list[tuple[EventView, Any, Exception | None]]
) -> dict[int, Applied]:
    """What the sources that apply in sets (``apply_many``) take of the batch, before the rest.
    A set that fails is undone by its savepoint and its events go one by one: slower, same result."""
    groups: dict[str, list[tuple[EventView, Any]]] = {}
    for event, value, error in prepared:
        if error is None:
            groups.setdefault(event.source.split(".", 1)[0], []).append((event, value))
    applied: dict[int, Applied] = {}
    for items in groups.values():
        apply_many = getattr(source_for(items[0][0].source), "apply_many", None)
        if apply_many is None:
            continue
        try:
            async with session.begin_nested():
                applied |= await apply_many(session, ctx, items)
        except Exception as exc:  # e.g. a deadlock with a staff action: one by one will do
            log.warning("intake_set_apply_failed", source=items[0][0].source, error=repr(exc))
    return applied


async def _apply_batch(
    ctx: JobContext, token: str, prepared: list[tuple[EventView, Any, Exception | None]]
) -> None:
    async with ctx.db.sessionmaker() as session, session.begin():
        # Still ours? A worker whose lease ran out must not apply what its successor took over.
        mine = set(
            await session.scalars(
                update(_TABLE)
                .where(_C.id.in_([e.id for e, _, _ in prepared]), _C.claim_token == token)
                .values(locked_until=utcnow() + LEASE)
                .returning(_C.id)
            )
        )
        ours = [item for item in prepared if item[0].id in mine]
        in_sets = await _apply_sets(session, ctx, ours)
        outcomes = []
        for event, value, error in ours:
            result = in_sets.get(event.id) or await _apply_one(session, ctx, event, value, error)
            outcomes.append(_outcome(event, result, utcnow()) | {"b_token": token})
        if outcomes:
            await session.execute(_RECORD.execution_options(synchronize_session=False), outcomes)
    _count(prepared, outcomes)


def _count(prepared: list[tuple[EventView, Any, Exception | None]], outcomes: list[dict[str, Any]]) -> None:
    """What the worker made of each event it recorded: its outcome, or ``failed`` (retried later)."""
    sources = {event.id: event.source for event, _, _ in prepared}
    for recorded in outcomes:
        outcome = recorded["outcome"] or "failed"
        INTAKE_EVENTS.labels(source=sources[recorded["b_id"]], outcome=outcome).inc()


async def apply_due(ctx: JobContext, *, now: datetime | None = None) -> int:
    """One round: claim, prepare, apply and record. Returns how many events it took."""
    token = secrets.token_hex(16)
    async with ctx.db.sessionmaker() as session, session.begin():
        events = await _claim(session, now or utcnow(), token)
    if not events:
        return 0
    prepared = await asyncio.gather(*(_prepare(ctx, event) for event in events))
    await _apply_batch(ctx, token, list(prepared))
    return len(events)


async def apply_inline(ctx: JobContext, received: Received) -> Applied | Accepted:
    """Store and apply at once, for a sender that needs the decision in its answer (CloudPayments
    ``check``): the same source and outcome record as the worker's, in the request. A re-delivery
    is answered ``duplicate`` / ``replayed`` like :func:`hub.intake.accept`."""
    view = EventView(
        0,
        received.source,
        received.account_id,
        received.endpoint_id,
        received.dedupe_key,
        received.replay_key,
        received.order_key,
        received.headers,
        received.body,
        received.remote_addr,
        utcnow(),
        1,
    )
    _, prepared, error = await _prepare(ctx, view)
    async with ctx.db.sessionmaker() as session, session.begin():
        event_id = await store(session, received, state=IntakeState.APPLYING, attempts=1)
        if event_id is None:
            return await known(session, received)
        view = dataclasses.replace(view, id=event_id)
        result = await _apply_one(session, ctx, view, prepared, error)
        await session.execute(
            _RECORD.execution_options(synchronize_session=False),
            [_outcome(view, result, utcnow()) | {"b_token": None}],
        )
    if isinstance(result, Exception):
        raise result
    INTAKE_EVENTS.labels(source=received.source, outcome=result.outcome).inc()
    return result


async def drain_intake(ctx: JobContext, *, now: datetime | None = None, max_rounds: int = 100) -> int:
    """Apply until nothing is due (tests and the CLI). ``now`` lets a caller look ahead in time."""
    total = 0
    for _ in range(max_rounds):
        taken = await apply_due(ctx, now=now)
        if taken == 0:
            break
        total += taken
    return total


@periodic_job(INTAKE_JOB, interval=lambda settings: settings.outbox.poll_seconds)
async def intake_job(ctx: JobContext) -> None:
    # Keep going while there is work: a burst is applied batch after batch, not one per poll.
    while await apply_due(ctx) > 0:
        pass
