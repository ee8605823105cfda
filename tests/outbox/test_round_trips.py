"""A worker round costs the same few statements whatever the number of messages it delivers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import respx
from litestar import Litestar
from sqlalchemy import event, select

from hub.db import Database
from hub.jobs import JobContext
from hub.outbox import Outgoing, enqueue_many
from hub.outbox.models import DeliveryAttempt, OutboxMessage
from hub.outbox.worker import deliver_due
from tests.conftest import Tenant
from tests.outbox.far_side import TOPIC

FAR = "https://far.example/hook"


@contextmanager
def _counting(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)


async def _round(jobs: JobContext, account_id: int, prefix: str, n: int) -> int:
    """Queue ``n`` messages, deliver them in one round; the number of statements that took."""
    async with jobs.db.sessionmaker() as session, session.begin():
        outgoing = [Outgoing(TOPIC, {"url": FAR, "body": {"n": i}}, f"{prefix}-{i}") for i in range(n)]
        await enqueue_many(session, account_id, outgoing)
    with respx.mock() as far, _counting(jobs.db) as statements:
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
