"""A worker round costs the same few statements whatever the number of messages it delivers."""

from __future__ import annotations

import httpx
import respx
from litestar import Litestar
from sqlalchemy import select

from hub.jobs import JobContext
from hub.outbox import Outgoing, enqueue_many
from hub.outbox.models import DeliveryAttempt, OutboxMessage
from hub.outbox.worker import deliver_due
from tests.conftest import Tenant
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
