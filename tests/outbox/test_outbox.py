"""The durable outbox: delivered once after commit, retried with backoff, dead-lettered visibly,
shared safely between workers, and nothing lost when a worker dies mid-delivery."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import msgspec
import pytest
import respx
from litestar import Litestar
from sqlalchemy import func, select

from hub.db import Database, utcnow
from hub.jobs import JobContext
from hub.outbox import enqueue
from hub.outbox.models import OutboxMessage
from hub.outbox.worker import backoff_seconds, deliver_due, drain_outbox
from hub.settings import OutboxSettings
from tests.conftest import Tenant, make_settings
from tests.outbox.far_side import TOPIC

FAR = "https://far.example/hook"


async def _queue(
    db: Database, account_id: int, key: str, *, ordering_key: str | None = None, n: int = 0
) -> None:
    async with db.sessionmaker() as session, session.begin():
        await enqueue(
            session,
            account_id=account_id,
            topic=TOPIC,
            payload={"url": FAR, "body": {"n": n}},
            idempotency_key=key,
            ordering_key=ordering_key,
        )


def _later(seconds: float = 3600) -> object:
    return utcnow() + timedelta(seconds=seconds)


async def test_far_side_failing_n_times_then_succeeding_gets_it_once(app: Litestar, tenant: Tenant) -> None:
    """DESK-10: a failing far side is retried with backoff; once it answers, the message is delivered once."""
    jobs: JobContext = app.state.jobs
    await _queue(jobs.db, tenant.id, "effect-1")
    with respx.mock(assert_all_called=True) as far:
        route = far.post(FAR).mock(
            side_effect=[httpx.Response(503), httpx.Response(503), httpx.Response(200)]
        )
        assert await deliver_due(jobs) == 1  # first failure
        assert await deliver_due(jobs) == 0  # backing off: nothing due yet
        await drain_outbox(jobs, now=_later())  # look ahead past each backoff
        await drain_outbox(jobs, now=_later())
        await drain_outbox(jobs, now=_later())
    assert route.call_count == 3
    assert {call.request.headers["Idempotency-Key"] for call in route.calls} == {"effect-1"}
    async with jobs.db.sessionmaker() as session:
        message = await session.scalar(select(OutboxMessage))
        assert message is not None
        assert (message.status, message.attempts) == ("delivered", 3)


async def test_never_answering_far_side_ends_in_visible_dead_letter_and_can_be_retried(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """DESK-10 / EX-10: a far side that never answers lands in dead-letter after the bound; an
    administrator lists and retries it."""
    jobs: JobContext = app.state.jobs
    await _queue(jobs.db, tenant.id, "doomed")
    bound = jobs.settings.outbox.max_attempts
    with respx.mock() as far:
        far.post(FAR).mock(side_effect=httpx.ConnectTimeout("no answer"))
        for _ in range(bound + 2):
            await drain_outbox(jobs, now=_later(10**6))
    dead = (await client.get("/api/outbox", params={"status": "dead"}, headers=tenant.admin.headers)).json()[
        "items"
    ]
    assert [m["idempotency_key"] for m in dead] == ["doomed"]
    assert dead[0]["attempts"] == bound
    detail = (await client.get(f"/api/outbox/{dead[0]['id']}", headers=tenant.admin.headers)).json()
    assert len(detail["attempts"]) == bound
    assert detail["attempts"][-1]["outcome"] == "dead"
    assert "ConnectTimeout" in detail["message"]["last_error"]

    # Engineers see nothing of this; other accounts cannot see the message at all.
    assert (await client.get("/api/outbox", headers=tenant.engineer.headers)).status_code == 403

    retried = await client.post(f"/api/outbox/{dead[0]['id']}/retry", headers=tenant.admin.headers)
    assert retried.status_code == 200 and retried.json()["status"] == "pending"
    with respx.mock() as far:
        far.post(FAR).mock(return_value=httpx.Response(204))
        await drain_outbox(jobs)
    again = (await client.get(f"/api/outbox/{dead[0]['id']}", headers=tenant.admin.headers)).json()
    assert again["message"]["status"] == "delivered"
    not_dead = await client.post(f"/api/outbox/{dead[0]['id']}/retry", headers=tenant.admin.headers)
    assert not_dead.status_code == 409 and not_dead.json()["code"] == "outbox_not_dead"


async def test_rejected_message_is_dead_at_once(app: Litestar, tenant: Tenant) -> None:
    """DESK-10: a far side that refuses the message for good (4xx) is not retried: dead at once."""
    jobs: JobContext = app.state.jobs
    await _queue(jobs.db, tenant.id, "bad-request")
    with respx.mock() as far:
        route = far.post(FAR).mock(return_value=httpx.Response(422))
        await drain_outbox(jobs, now=_later())
    assert route.call_count == 1
    async with jobs.db.sessionmaker() as session:
        assert await session.scalar(select(OutboxMessage.status)) == "dead"


async def test_nothing_leaves_before_commit_and_rollback_sends_nothing(app: Litestar, tenant: Tenant) -> None:
    """DESK-10: effects only after commit (a failing channel never undoes the ticket action): a
    rolled-back change queues nothing; a duplicate key queues once."""
    jobs: JobContext = app.state.jobs
    async with jobs.db.sessionmaker() as session:
        async with session.begin():
            await enqueue(
                session,
                account_id=tenant.id,
                topic=TOPIC,
                payload={"url": FAR, "body": {}},
                idempotency_key="rolled-back",
            )
            await session.rollback()
    await _queue(jobs.db, tenant.id, "dup")
    await _queue(jobs.db, tenant.id, "dup")
    with respx.mock() as far:
        route = far.post(FAR).mock(return_value=httpx.Response(200))
        await drain_outbox(jobs)
    assert [call.request.headers["Idempotency-Key"] for call in route.calls] == ["dup"]


async def test_messages_sharing_an_ordering_key_arrive_in_order_even_across_retries(
    app: Litestar, tenant: Tenant
) -> None:
    """DESK-10 / EX-10: messages with one ordering key (one ticket) arrive in order, also when the
    first needs retries."""
    jobs: JobContext = app.state.jobs
    for n in range(5):
        await _queue(jobs.db, tenant.id, f"ordered-{n}", ordering_key="partner:1", n=n)
    seen: list[int] = []
    failed_once = False

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal failed_once
        n = int(request.content.decode().split(":")[1].rstrip("}"))
        if n == 1 and not failed_once:
            failed_once = True
            return httpx.Response(503)
        seen.append(n)
        return httpx.Response(200)

    with respx.mock() as far:
        far.post(FAR).mock(side_effect=answer)
        for _ in range(10):
            await drain_outbox(jobs, now=_later())
    assert seen == [0, 1, 2, 3, 4]


async def test_one_round_sends_a_keys_backlog_in_order_and_stops_it_at_a_failure(
    app: Litestar, tenant: Tenant
) -> None:
    """EX-10 / DESK-10 throughput: one worker round takes several consecutive messages of one
    ordering key and sends them one after the other, in order (not one message per round); the
    messages behind one that must be retried are put back untried, their attempt not counted."""
    jobs: JobContext = app.state.jobs
    for n in range(4):
        await _queue(jobs.db, tenant.id, f"chain-{n}", ordering_key="partner:7", n=n)
    seen: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        n = int(request.content.decode().split(":")[1].rstrip("}"))
        seen.append(n)
        return httpx.Response(503 if n == 2 else 200)

    with respx.mock() as far:
        far.post(FAR).mock(side_effect=answer)
        assert await deliver_due(jobs) == 4
    assert seen == [0, 1, 2]
    async with jobs.db.sessionmaker() as session:
        rows = (await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars().all()
        state = {row.idempotency_key: (row.status, row.attempts) for row in rows}
    assert state["chain-0"] == ("delivered", 1)
    assert state["chain-1"] == ("delivered", 1)
    assert state["chain-2"] == ("pending", 1)
    assert state["chain-3"] == ("pending", 0)
    with respx.mock() as far:
        far.post(FAR).mock(side_effect=lambda request: httpx.Response(200))
        await drain_outbox(jobs)  # chain-2 waits for its backoff: chain-3 must wait behind it
        assert not far.calls
        await drain_outbox(jobs, now=_later())
        assert [json.loads(call.request.content)["n"] for call in far.calls] == [2, 3]


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    """DESK-10: retries back off exponentially with jitter, capped at the configured maximum."""
    settings = OutboxSettings(initial_delay_seconds=2.0, max_delay_seconds=60.0)
    first = [backoff_seconds(settings, 1) for _ in range(50)]
    fifth = [backoff_seconds(settings, 5) for _ in range(50)]
    late = [backoff_seconds(settings, 30) for _ in range(50)]
    assert all(2.0 <= d <= 4.0 for d in first)
    assert all(32.0 <= d <= 34.0 for d in fifth)
    assert all(d <= 60.0 for d in late)
    assert len(set(first)) > 1  # jittered


async def test_two_workers_never_deliver_one_message_twice(
    app: Litestar, tenant: Tenant, database_url: str, tmp_path: Path
) -> None:
    """DESK-10 (scale-out): several workers share the outbox (FOR UPDATE SKIP LOCKED on
    PostgreSQL): each message goes out once."""
    jobs: JobContext = app.state.jobs
    for n in range(120):
        await _queue(jobs.db, tenant.id, f"shared-{n}", n=n)
    delivered: Counter[str] = Counter()

    def answer(request: httpx.Request) -> httpx.Response:
        delivered[request.headers["Idempotency-Key"]] += 1
        return httpx.Response(200)

    second_db = Database(database_url)
    settings = make_settings(database_url, tmp_path)
    settings = type(settings)(
        **{
            **{f: getattr(settings, f) for f in settings.__struct_fields__},
            "outbox": OutboxSettings(batch_size=7),
        }
    )
    with respx.mock() as far:
        far.post(FAR).mock(side_effect=answer)
        async with httpx.AsyncClient() as http_a, httpx.AsyncClient() as http_b:
            worker_a = JobContext(db=jobs.db, settings=settings, http=http_a)
            worker_b = JobContext(db=second_db, settings=settings, http=http_b)
            await asyncio.gather(*(drain_outbox(w) for w in (worker_a, worker_b, worker_a, worker_b)))
    await second_db.dispose()
    assert len(delivered) == 120
    assert set(delivered.values()) == {1}


class _SlowFarSide(BaseHTTPRequestHandler):
    keys: list[str] = []
    first_arrived = threading.Event()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).keys.append(self.headers["Idempotency-Key"])
        if len(type(self).keys) == 1:
            type(self).first_arrived.set()
            time.sleep(5)  # the worker is killed while waiting here
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


async def test_killing_a_worker_mid_delivery_loses_nothing(
    app: Litestar, tenant: Tenant, database_url: str, tmp_path: Path
) -> None:
    """DESK-10 (durable outbox): a worker process killed with SIGKILL during a delivery: its claim
    lapses within one (short) lease, as nobody renews it, and another worker delivers it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowFarSide)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    jobs: JobContext = app.state.jobs
    async with jobs.db.sessionmaker() as session, session.begin():
        await enqueue(
            session,
            account_id=tenant.id,
            topic=TOPIC,
            payload={"url": url, "body": {"x": 1}},
            idempotency_key="survives-kill",
        )
    root = Path(__file__).resolve().parents[2]
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.outbox.worker_process", database_url, str(tmp_path / "w")],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        arrived = await asyncio.to_thread(_SlowFarSide.first_arrived.wait, 60)
        assert arrived, "the worker process never started delivering"
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        lease = jobs.settings.outbox.lease_seconds
        async with jobs.db.sessionmaker() as session:
            claim = (await session.execute(select(OutboxMessage.status, OutboxMessage.locked_until))).one()
        assert claim.status == "delivering"
        # Seconds, not minutes: the dead worker's claim passes within one lease of now.
        assert lease <= 30 and claim.locked_until <= utcnow() + timedelta(seconds=lease)
        # Another worker takes over once it has passed, on the real clock.
        deadline = time.monotonic() + 4 * lease
        while await drain_outbox(jobs) == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        if worker.poll() is None:
            worker.kill()
        server.shutdown()
    async with jobs.db.sessionmaker() as session:
        message = await session.scalar(select(OutboxMessage))
        assert message is not None and message.status == "delivered"
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
    # The far side saw the same idempotency key both times, so it applies the effect once.
    assert set(_SlowFarSide.keys) == {"survives-kill"}


async def test_a_slow_delivery_keeps_its_claim_while_its_worker_lives(
    app: Litestar, tenant: Tenant, database_url: str
) -> None:
    """DESK-10: the lease is short so that a dead worker's messages move on quickly; a live worker
    renews it while the far side is slow, so a second worker never delivers the message twice."""
    jobs: JobContext = app.state.jobs
    settings = msgspec.structs.replace(jobs.settings, outbox=OutboxSettings(lease_seconds=2.0))
    await _queue(jobs.db, tenant.id, "slow-one")
    second_db = Database(database_url)

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5.0)  # two and a half leases
        return httpx.Response(200)

    async def keep_trying(worker: JobContext, until: asyncio.Task[int]) -> None:
        while not until.done():
            await deliver_due(worker)
            await asyncio.sleep(0.1)

    with respx.mock() as far:
        route = far.post(FAR).mock(side_effect=slow)
        async with httpx.AsyncClient() as http_a, httpx.AsyncClient() as http_b:
            worker_a = JobContext(db=jobs.db, settings=settings, http=http_a)
            worker_b = JobContext(db=second_db, settings=settings, http=http_b)
            first = asyncio.create_task(deliver_due(worker_a))
            await asyncio.sleep(0.2)
            await keep_trying(worker_b, first)
            assert await first == 1
    await second_db.dispose()
    assert route.call_count == 1
    async with jobs.db.sessionmaker() as session:
        assert await session.scalar(select(OutboxMessage.status)) == "delivered"


@pytest.fixture(autouse=True)
def _reset_far_side() -> None:
    _SlowFarSide.keys = []
    _SlowFarSide.first_arrived = threading.Event()
