"""The desk sweeper (DESK-4 pending return and auto-close, DESK-5 SLA flags), driven with explicit
times: no sleeping."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import Account
from hub.db import Database, utcnow
from hub.desk import service
from hub.desk.actors import Actor
from hub.desk.jobs import desk_sweeper, sweep
from hub.desk.models import Ticket
from hub.desk.schemas import TicketCreate
from tests.conftest import Tenant


def employee(tenant: Tenant) -> Actor:
    return Actor("employee", tenant.dispatcher.id, tenant.dispatcher.name)


async def make(db: Database, tenant: Tenant, at: datetime, **fields: object) -> int:
    async with db.sessionmaker() as session, session.begin():
        data = TicketCreate(title="Sweeper", responsible_id=tenant.engineer.id, **fields)  # type: ignore[arg-type]
        return (await service.create_ticket(session, tenant.id, employee(tenant), data, now=at)).id


async def to_pending(
    session: AsyncSession, tenant: Tenant, ticket_id: int, comment: str, until: datetime, now: datetime
) -> None:
    await service.change_status(
        session, tenant.id, ticket_id, employee(tenant), "pending", comment=comment, until=until, now=now
    )


async def state(db: Database, tenant: Tenant, ticket_id: int) -> Ticket:
    async with db.sessionmaker() as session:
        return await service.get_ticket(session, tenant.id, ticket_id)


async def history(db: Database, tenant: Tenant, ticket_id: int) -> list[tuple[str, dict[str, object]]]:
    async with db.sessionmaker() as session:
        return [(e.kind, e.data) for e in await service.list_history(session, tenant.id, ticket_id)]


async def test_pending_returns_to_previous_state_when_until_passes(
    db: Database, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    """DESK-4: pending goes back by itself to the status it had (in_progress here, reopened for
    another ticket) once until passes; not before; and only once with two sweepers."""
    t0 = utcnow()
    a = await make(db, tenant, t0)
    b = await make(db, tenant, t0)
    async with db.sessionmaker() as session, session.begin():
        await service.change_status(session, tenant.id, a, employee(tenant), "in_progress", now=t0)
        await to_pending(session, tenant, a, "parts", t0 + timedelta(hours=2), t0)
        await service.change_status(session, tenant.id, b, employee(tenant), "resolved", now=t0)
        await service.change_status(session, tenant.id, b, employee(tenant), "reopened", now=t0)
        await to_pending(session, tenant, b, "client away", t0 + timedelta(hours=1), t0)
    async with db.sessionmaker() as session, session.begin():
        assert (await sweep(session, t0 + timedelta(minutes=59))).returned == 0
    async with db.sessionmaker() as session, session.begin():
        assert (await sweep(session, t0 + timedelta(hours=1, minutes=30))).returned == 1
    assert (await state(db, tenant, b)).status == "reopened"
    assert (await state(db, tenant, a)).status == "pending"
    async with db.sessionmaker() as session, session.begin():
        assert (await sweep(session, t0 + timedelta(hours=3))).returned == 1
    async with db.sessionmaker() as session, session.begin():
        assert (await sweep(session, t0 + timedelta(hours=3))).returned == 0  # a second sweeper: nothing left
    ticket = await state(db, tenant, a)
    assert ticket.status == "in_progress" and ticket.pending_until is None
    assert ticket.pending_seconds == 3 * 3600
    last = (await history(db, tenant, a))[-1]
    assert last == (
        "status_changed",
        {"from": "pending", "to": "in_progress", "reason": "pending_until_passed"},
    )


async def test_sla_breach_flags_and_history(db: Database, tenant: Tenant, client: httpx.AsyncClient) -> None:
    """DESK-5: breaches are flags on the ticket and events in its history, flagged once by the
    sweeper while the clock runs; a clock that stops in time is recorded as met."""
    t0 = utcnow()
    late = await make(
        db, tenant, t0, reaction_due_at=t0 + timedelta(minutes=30), resolution_due_at=t0 + timedelta(hours=4)
    )
    on_time = await make(db, tenant, t0, reaction_due_at=t0 + timedelta(minutes=30))
    async with db.sessionmaker() as session, session.begin():
        await service.change_status(
            session, tenant.id, on_time, employee(tenant), "in_progress", now=t0 + timedelta(minutes=10)
        )
    for _ in range(2):
        async with db.sessionmaker() as session, session.begin():
            await sweep(session, t0 + timedelta(hours=1))
    ticket = await state(db, tenant, late)
    assert ticket.sla_reaction_breached and not ticket.sla_resolution_breached
    async with db.sessionmaker() as session, session.begin():
        result = await sweep(session, t0 + timedelta(hours=5))
    assert result.resolution_breached == 1
    assert (await state(db, tenant, late)).sla_resolution_breached
    # Reacting late afterwards adds no second breach event.
    async with db.sessionmaker() as session, session.begin():
        await service.change_status(
            session, tenant.id, late, employee(tenant), "in_progress", now=t0 + timedelta(hours=6)
        )
    events = [(k, d["clock"]) for k, d in await history(db, tenant, late) if k.startswith("sla")]
    assert events == [("sla_breached", "reaction"), ("sla_breached", "resolution")]
    assert [(k, d["clock"]) for k, d in await history(db, tenant, on_time) if k.startswith("sla")] == [
        ("sla_met", "reaction")
    ]
    assert not (await state(db, tenant, on_time)).sla_reaction_breached


async def test_pending_time_moves_the_resolution_deadline(
    db: Database, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    """DESK-5: time in pending does not count: 3 h of work + 5 h pending against a 4 h deadline is met."""
    t0 = utcnow()
    tid = await make(db, tenant, t0, resolution_due_at=t0 + timedelta(hours=4))
    async with db.sessionmaker() as session, session.begin():
        await to_pending(session, tenant, tid, "wait", t0 + timedelta(hours=7), t0 + timedelta(hours=1))
    async with db.sessionmaker() as session, session.begin():
        assert (await sweep(session, t0 + timedelta(hours=5))).resolution_breached == 0  # paused
    async with db.sessionmaker() as session, session.begin():
        await service.change_status(
            session, tenant.id, tid, employee(tenant), "open", now=t0 + timedelta(hours=6)
        )
        await service.change_status(
            session, tenant.id, tid, employee(tenant), "resolved", now=t0 + timedelta(hours=8)
        )
    ticket = await state(db, tenant, tid)
    assert ticket.pending_seconds == 5 * 3600
    assert ticket.resolution_seconds == 3 * 3600
    assert not ticket.sla_resolution_breached
    assert [k for k, _ in await history(db, tenant, tid) if k.startswith("sla")] == ["sla_met"]


async def test_resolved_tickets_close_after_the_account_timeout(
    db: Database, tenant: Tenant, other_tenant: Tenant, client: httpx.AsyncClient
) -> None:
    """DESK-4: a resolved ticket closes by itself after account.auto_close_hours (per account)."""
    async with db.sessionmaker() as session, session.begin():
        await session.execute(
            update(Account).where(Account.id == other_tenant.id).values(auto_close_hours=24)
        )
    t0 = utcnow()
    mine = await make(db, tenant, t0)  # default 72 h
    theirs = await make(db, other_tenant, t0)
    async with db.sessionmaker() as session, session.begin():
        await service.change_status(session, tenant.id, mine, employee(tenant), "resolved", now=t0)
        await service.change_status(
            session, other_tenant.id, theirs, employee(other_tenant), "resolved", now=t0
        )
    async with db.sessionmaker() as session, session.begin():
        assert (await sweep(session, t0 + timedelta(hours=25))).closed == 1
    assert (await state(db, other_tenant, theirs)).status == "closed"
    assert (await state(db, tenant, mine)).status == "resolved"
    async with db.sessionmaker() as session, session.begin():
        assert (await sweep(session, t0 + timedelta(hours=73))).closed == 1
    closed = await state(db, tenant, mine)
    assert closed.status == "closed" and closed.closed_at == t0 + timedelta(hours=73)
    assert (await history(db, tenant, mine))[-1][1]["reason"] == "auto_close"


async def test_registered_job_runs_a_round(
    db: Database, tenant: Tenant, client: httpx.AsyncClient, app: object
) -> None:
    """The sweeper is a registered periodic job (hub worker and serve run it)."""
    from hub.jobs import registered_jobs

    assert "desk.sweeper" in {job.name for job in registered_jobs()}
    t0 = utcnow() - timedelta(days=10)
    tid = await make(db, tenant, t0)
    async with db.sessionmaker() as session, session.begin():
        await service.change_status(session, tenant.id, tid, employee(tenant), "resolved", now=t0)
    await desk_sweeper(app.state.jobs)  # type: ignore[attr-defined]
    assert (await state(db, tenant, tid)).status == "closed"


async def test_one_poisoned_ticket_does_not_stop_the_round(
    db: Database, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    """DESK-4: a pending ticket that cannot go back (bad old data: its previous status is final)
    is skipped in its own savepoint; the other pending ticket still returns in the same round."""
    t0 = utcnow()
    poisoned, good = await make(db, tenant, t0), await make(db, tenant, t0)
    async with db.sessionmaker() as session, session.begin():
        for tid in (poisoned, good):
            await to_pending(session, tenant, tid, "wait", t0 + timedelta(hours=1), t0)
        await session.execute(
            update(Ticket).where(Ticket.id == poisoned).values(status_before_pending="closed")
        )
    async with db.sessionmaker() as session, session.begin():
        assert (await sweep(session, t0 + timedelta(hours=2))).returned == 1
    assert (await state(db, tenant, good)).status == "open"
    assert (await state(db, tenant, poisoned)).status == "pending"


async def test_real_breach_behind_a_backlog_of_paused_tickets_is_flagged(
    db: Database, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    """DESK-5: more than one batch of tickets past their nominal deadline but not late (pending
    time moved it) must not hide a ticket that really is late: it is flagged in the same round."""
    t0 = utcnow()
    async with db.sessionmaker() as session, session.begin():
        actor = employee(tenant)
        decoys = [
            (
                await service.create_ticket(
                    session,
                    tenant.id,
                    actor,
                    TicketCreate(title="Paused", resolution_due_at=t0 + timedelta(minutes=1)),
                    now=t0,
                )
            ).id
            for _ in range(210)
        ]
        late = await service.create_ticket(
            session,
            tenant.id,
            actor,
            TicketCreate(title="Late", resolution_due_at=t0 + timedelta(hours=1)),
            now=t0,
        )
        # The decoys spent a day in pending: their clock stands far before the deadline.
        await session.execute(update(Ticket).where(Ticket.id.in_(decoys)).values(pending_seconds=86400))
    async with db.sessionmaker() as session, session.begin():
        assert (await sweep(session, t0 + timedelta(hours=2))).resolution_breached == 1
    assert (await state(db, tenant, late.id)).sla_resolution_breached
    assert not (await state(db, tenant, decoys[0])).sla_resolution_breached
