"""A worker round costs the same few statements whatever the number of messages it delivers."""

from __future__ import annotations

import re

import httpx
import pytest
import respx
from litestar import Litestar
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql

from hub.db import utcnow
from hub.jobs import JobContext
from hub.outbox import Outgoing, enqueue_many
from hub.outbox.models import DeliveryAttempt, OutboxMessage
from hub.outbox.worker import _candidates, deliver_due, read_in_index_order
from tests.conftest import PG_URL, Tenant
from tests.outbox.far_side import TOPIC
from tests.statements import counting_statements

FAR = "https://far.example/hook"


async def _round(jobs: JobContext, account_id: int, prefix: str, n: int) -> int:
    """Queue ``n`` messages, deliver them in one round; the number of statements that took."""
    async with jobs.db.sessionmaker() as session, session.begin():
        outgoing = [Outgoing(TOPIC, {"url": FAR, "body": {"n": i}}, f"{prefix}-{i}") for i in range(n)]
        await enqueue_many(session, account_id, outgoing)
    with respx.mock() as far, counting_statements(jobs.db) as statements:
        far.post(FAR).mock(return_value=httpx.Response(200))
        assert await deliver_due(jobs) == n
    return len(statements)


async def test_recording_a_round_does_not_cost_statements_per_message(app: Litestar, tenant: Tenant) -> None:
    """DESK-10 (fan-out throughput): a round of 40 delivered messages takes as many statements as
    a round of 4 (one claim, one UPDATE of the outcomes, one INSERT of the attempt rows), and each
    message still gets its own attempt row."""
    jobs: JobContext = app.state.jobs
    assert jobs.settings.outbox.batch_size >= 40
    small = await _round(jobs, tenant.id, "small", 4)
    large = await _round(jobs, tenant.id, "large", 40)
    assert large == small
    async with jobs.db.sessionmaker() as session:
        statuses = set(await session.scalars(select(OutboxMessage.status)))
        attempts = list(await session.scalars(select(DeliveryAttempt.message_id)))
    assert statuses == {"delivered"}
    assert len(attempts) == len(set(attempts)) == 44


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL's planner")
async def test_a_claim_does_not_sort_the_backlog(app: Litestar, tenant: Tenant) -> None:
    """Issue 11 (outbox claim by index): with 3,000 messages due, a fifth of them sharing ordering
    keys, the claim reads them in id order through an index and stops at its batch: its plan has
    no Sort node (sorting every due row was 42% of the worker's time at a backlog of 1,500)."""
    jobs: JobContext = app.state.jobs
    async with jobs.db.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO outbox_messages (account_id, topic, payload, idempotency_key, ordering_key,"
                " status, attempts, next_attempt_at, created_at)"
                " SELECT :account, :topic, '{}'::json, 'backlog-' || n,"
                " CASE WHEN n % 5 = 0 THEN 'key-' || (n % 40) END, 'pending', 0, now(), now()"
                " FROM generate_series(1, 3000) AS n"
            ),
            {"account": tenant.id, "topic": TOPIC},
        )
    query = _candidates(utcnow(), jobs.settings.outbox.batch_size).with_for_update(
        skip_locked=True, of=OutboxMessage
    )
    compiled = query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    async with jobs.db.sessionmaker() as session, session.begin():
        await read_in_index_order(session)  # as the claim does
        plan = [row[0] for row in await session.execute(text(f"EXPLAIN {compiled}"))]
    assert not [line for line in plan if re.search(r"(^|->\s+)Sort\s+\(", line.strip())], "\n".join(plan)
    assert "ix_outbox_messages_unfinished " in "\n".join(plan)
