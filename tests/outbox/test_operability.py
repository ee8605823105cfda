"""What an operator watches of the outbox (issue 12): depth and dead letters per topic and
deliveries per outcome in /metrics; /ready says not ready while the outbox is stuck or a
background job hangs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import respx
from litestar import Litestar
from prometheus_client.parser import text_string_to_metric_families

from hub.app import create_app
from hub.db import Database
from hub.jobs import JobContext
from hub.outbox import enqueue
from hub.outbox.worker import drain_outbox
from hub.settings import Settings
from tests.conftest import Tenant, make_settings, make_tenant
from tests.outbox.far_side import TOPIC

FAR = "https://far.example/hook"


async def _queue(db: Database, account_id: int, key: str, timeout: float = 5.0) -> None:
    async with db.sessionmaker() as session, session.begin():
        await enqueue(
            session,
            account_id=account_id,
            topic=TOPIC,
            payload={"url": FAR, "body": {}, "timeout": timeout},
            idempotency_key=key,
        )


async def _metrics(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = (await client.get("/metrics")).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _outbox(status: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return "hub_outbox_messages", frozenset({("topic", TOPIC), ("status", status)})


DEAD_DELIVERIES = ("hub_outbox_deliveries_total", frozenset({("topic", TOPIC), ("outcome", "dead")}))


async def test_metrics_show_outbox_depth_dead_letters_and_deliveries(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Issue 12: /metrics shows how many messages wait and how many are dead, per topic (one
    topic per connector), and counts delivery attempts per topic and outcome."""
    jobs: JobContext = app.state.jobs
    before = await _metrics(client)
    await _queue(jobs.db, tenant.id, "one")
    await _queue(jobs.db, tenant.id, "two")
    waiting = await _metrics(client)
    assert waiting[_outbox("pending")] == 2 and _outbox("dead") not in waiting
    with respx.mock() as far:
        far.post(FAR).mock(return_value=httpx.Response(422))  # refused for good: dead at once
        await drain_outbox(jobs)
    after = await _metrics(client)
    assert after[_outbox("dead")] == 2 and _outbox("pending") not in after
    assert after[DEAD_DELIVERIES] - before.get(DEAD_DELIVERIES, 0) == 2


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        database_url, tmp_path / "data", ready_outbox_stuck_seconds=0.5, ready_job_stale_seconds=1.0
    )


async def test_ready_is_not_ready_while_the_outbox_is_stuck(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Issue 12: messages due longer than HUB_READY_OUTBOX_STUCK_SECONDS (no worker delivers)
    make /ready answer 503 with the reason; delivered, it is ready again."""
    await _queue(app.state.db, tenant.id, "waits")
    assert (await client.get("/ready")).status_code == 200
    await asyncio.sleep(0.7)
    stuck = await client.get("/ready")
    assert stuck.status_code == 503 and stuck.json()["code"] == "not_ready"
    assert "outbox stuck: 1 message(s)" in stuck.json()["detail"]
    with respx.mock() as far:
        far.post(FAR).mock(return_value=httpx.Response(204))
        await drain_outbox(app.state.jobs)
    assert (await client.get("/ready")).status_code == 200


async def test_ready_is_not_ready_while_a_background_job_hangs(settings: Settings) -> None:
    """Issue 12: the background jobs run in this process; a round that takes longer than
    HUB_READY_JOB_STALE_SECONDS (a far side that holds the outbox delivery) makes /ready 503
    naming the job; when the round ends, it is ready again."""
    app = create_app(settings, run_background_jobs=True)
    released = asyncio.Event()

    async def held(_: httpx.Request) -> httpx.Response:
        await released.wait()
        return httpx.Response(204)

    with respx.mock() as far:
        route = far.post(FAR).mock(side_effect=held)
        transport = httpx.ASGITransport(app=app)
        async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            assert (await client.get("/ready")).status_code == 200
            tenant = await make_tenant(app.state.db, settings)
            await _queue(app.state.db, tenant.id, "held", timeout=30)
            app.state.jobs.wake("outbox")
            for _ in range(100):
                if route.called:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.3)
            hung = await client.get("/ready")
            assert hung.status_code == 503, hung.text
            assert "background job outbox is late" in hung.json()["detail"]
            released.set()
            for _ in range(100):
                if (await client.get("/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            assert (await client.get("/ready")).status_code == 200
