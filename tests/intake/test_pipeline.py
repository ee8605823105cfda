"""The intake pipeline (issue 11): stored once per dedupe key, acknowledged before it is applied,
applied exactly once in order per key by any number of workers, nothing lost when a worker dies
mid-batch, failures visible and retryable, refusals recorded alike."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import select, text

from hub.db import Database, utcnow
from hub.intake import Received, accept, reject
from hub.intake.models import IntakeEvent
from hub.intake.worker import LEASE, MAX_ATTEMPTS, apply_due, drain_intake
from hub.jobs import JobContext, notify_job, registered_jobs, run_jobs
from tests.conftest import PG_URL, Tenant
from tests.intake import probe


@pytest.fixture
async def jobs(app: Litestar, client: httpx.AsyncClient) -> JobContext:
    ctx: JobContext = app.state.jobs
    await probe.create_table(ctx.db)
    probe.install()
    return ctx


def _event(tenant: Tenant, body: str, key: str | None = None, dedupe: str | None = None) -> Received:
    return Received(
        source="probe.test",
        body=body,
        account_id=tenant.id,
        dedupe_key=dedupe or uuid.uuid4().hex,
        order_key=key,
    )


async def _applied(db: Database) -> list[tuple[int, str | None, str]]:
    """(event id, order key, body) of every apply, in the order they were applied."""
    async with db.sessionmaker() as session:
        rows = await session.execute(
            text(f"SELECT event_id, order_key, body FROM {probe.TABLE} ORDER BY seq")
        )
        return [(int(r[0]), r[1], r[2]) for r in rows]


async def _states(db: Database) -> Counter[tuple[str, str | None]]:
    async with db.sessionmaker() as session:
        rows = await session.execute(select(IntakeEvent.state, IntakeEvent.outcome))
        return Counter((state, outcome) for state, outcome in rows)


async def test_an_event_is_stored_once_and_applied_once_after_it_was_acknowledged(
    jobs: JobContext, tenant: Tenant
) -> None:
    """Issue 11: ``accept`` stores the event (the sender is answered then), a redelivery with the
    same dedupe key is a duplicate that stores nothing, and the worker applies it once."""
    event = _event(tenant, "hello", dedupe="sender-event-1")
    assert await accept(jobs.db, event) == "stored"
    assert await accept(jobs.db, event) == "duplicate"
    assert await _applied(jobs.db) == []  # acknowledged, not yet applied
    assert await drain_intake(jobs) == 1
    assert await drain_intake(jobs) == 0
    assert [body for _, _, body in await _applied(jobs.db)] == ["hello"]
    async with jobs.db.sessionmaker() as session:
        stored = (await session.scalars(select(IntakeEvent))).one()
    assert (stored.state, stored.outcome, stored.result) == ("done", "applied", {"seen": "hello"})


async def test_the_same_signed_request_again_is_a_replay_not_a_redelivery(
    jobs: JobContext, tenant: Tenant
) -> None:
    """Issue 11: same dedupe key and same replay key (the signature) is the request replayed;
    the sender's own retry is signed afresh and is a duplicate."""
    first = Received(source="probe.test", body="x", account_id=tenant.id, dedupe_key="k", replay_key="sig-1")
    assert await accept(jobs.db, first) == "stored"
    assert await accept(jobs.db, first) == "replayed"
    retry = Received(source="probe.test", body="x", account_id=tenant.id, dedupe_key="k", replay_key="sig-2")
    assert await accept(jobs.db, retry) == "duplicate"


async def test_refusals_failures_and_retry_are_visible_to_administrators(
    jobs: JobContext, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    """Issue 11: one admin view over every inbound event: a refusal at the door, a refusal by the
    domain's rules, and an apply that keeps failing (then retried by an administrator)."""
    probe.install(refuse="refuse me")
    await reject(jobs.db, _event(tenant, "forged"), "bad_signature", "signature does not verify")
    await accept(jobs.db, _event(tenant, "refuse me"))
    broken = _event(tenant, "boom")
    await accept(jobs.db, broken)

    def exploding() -> None:
        raise RuntimeError("the domain is broken today")

    original_apply = probe.Probe.apply

    async def failing_apply(self, session, ctx, event, prepared):  # type: ignore[no-untyped-def]
        if event.body == "boom":
            exploding()
        return await original_apply(self, session, ctx, event, prepared)

    probe.Probe.apply = failing_apply  # type: ignore[method-assign]
    try:
        later = utcnow()
        for _ in range(MAX_ATTEMPTS):  # every attempt after its backoff
            later += timedelta(hours=1)
            await apply_due(jobs, now=later)
    finally:
        probe.Probe.apply = original_apply  # type: ignore[method-assign]
    admin = tenant.admin.headers
    listed = (await client.get("/api/intake/events?source=probe", headers=admin)).json()["items"]
    by_body = {}
    for item in listed:
        detail = (await client.get(f"/api/intake/events/{item['id']}", headers=admin)).json()
        by_body[detail["body"]] = detail
    assert (by_body["forged"]["state"], by_body["forged"]["error_code"]) == ("rejected", "bad_signature")
    assert (by_body["refuse me"]["state"], by_body["refuse me"]["outcome"]) == ("done", "rejected")
    assert by_body["refuse me"]["error_code"] == "probe_refused"
    failed = by_body["boom"]
    assert (failed["state"], failed["attempts"], failed["error_code"]) == (
        "failed",
        MAX_ATTEMPTS,
        "apply_error",
    )
    assert "the domain is broken today" in failed["error_detail"]
    only_failed = (await client.get("/api/intake/events?state=failed", headers=admin)).json()["items"]
    assert [item["id"] for item in only_failed] == [failed["id"]]
    retried = await client.post(f"/api/intake/events/{failed['id']}/retry", headers=admin)
    assert retried.status_code == 200 and retried.json()["state"] == "pending"
    again = await client.post(f"/api/intake/events/{failed['id']}/retry", headers=admin)
    assert again.status_code == 409 and again.json()["code"] == "intake_not_failed"
    await drain_intake(jobs)
    assert "boom" in [body for _, _, body in await _applied(jobs.db)]
    denied = await client.get("/api/intake/events", headers=tenant.dispatcher.headers)
    assert denied.status_code == 403


async def test_events_of_one_key_are_applied_in_arrival_order_by_concurrent_workers(
    jobs: JobContext, tenant: Tenant, database_url: str
) -> None:
    """Issue 11: three workers drain 300 events of 6 keys at once: each applied exactly once, and
    the events of each key in the order they arrived (one invoice, one call, one shared ticket)."""
    for n in range(300):
        await accept(jobs.db, _event(tenant, f"e{n}", key=f"key-{n % 6}"))
    others = [Database(database_url) for _ in range(2)]
    workers = [jobs, *(JobContext(db=db, settings=jobs.settings, http=jobs.http) for db in others)]
    try:
        await asyncio.gather(*(drain_intake(w) for w in workers))
    finally:
        for db in others:
            await db.dispose()
    applied = await _applied(jobs.db)
    assert sorted(body for _, _, body in applied) == sorted(f"e{n}" for n in range(300))
    for key in {key for _, key, _ in applied}:
        ids = [event_id for event_id, k, _ in applied if k == key]
        assert ids == sorted(ids), f"{key} applied out of order"
    assert await _states(jobs.db) == {("done", "applied"): 300}


async def test_a_worker_killed_mid_batch_loses_nothing_and_applies_nothing_twice(
    jobs: JobContext, tenant: Tenant, database_url: str, tmp_path: Path
) -> None:
    """Issue 11: events acknowledged to their sender; the worker process applying them is killed
    (SIGKILL) in the middle of a batch. Another worker takes the batch over once its lease has
    passed: every event is applied, each exactly once."""
    for n in range(150):
        await accept(jobs.db, _event(tenant, f"k{n}", key=f"key-{n % 3}"))
    root = Path(__file__).resolve().parents[2]
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.intake.worker_process", database_url, str(tmp_path / "w")],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        marker, deadline = tmp_path / "w" / "applying", time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < deadline, "the worker process never started applying"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # well inside the batch: 20 ms an event
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert await _states(jobs.db) != {("done", "applied"): 150}, "the batch finished before the kill"
    await drain_intake(jobs, now=utcnow() + LEASE + timedelta(seconds=1))
    applied = Counter(body for _, _, body in await _applied(jobs.db))
    assert sorted(applied) == sorted(f"k{n}" for n in range(150))
    assert set(applied.values()) == {1}
    assert await _states(jobs.db) == {("done", "applied"): 150}


@pytest.mark.skipif(not PG_URL, reason="NOTIFY crosses processes on PostgreSQL (SQLite has one process)")
async def test_a_commit_in_another_process_wakes_the_worker_at_once(jobs: JobContext, tenant: Tenant) -> None:
    """Issue 11: the worker polls rarely, yet an event committed through another connection (as
    another process would) is applied without waiting for the poll: PostgreSQL NOTIFY wakes it."""
    stop = asyncio.Event()
    slow = [job for job in registered_jobs() if job.name == "intake.apply"]
    slow = [type(job)(job.name, job.run, lambda _settings: 3600.0) for job in slow]
    runner = asyncio.create_task(run_jobs(jobs, slow, stop))
    try:
        await asyncio.sleep(0.5)  # the first round ran and found nothing; the next is an hour away
        other = Database(PG_URL)
        try:
            async with other.sessionmaker() as session, session.begin():
                # As another process commits it: no wake-up of this process's own loops.
                session.add(IntakeEvent(source="probe.test", body="from elsewhere", account_id=tenant.id))
                await notify_job(session, "intake.apply")
        finally:
            await other.dispose()
        deadline = time.monotonic() + 30
        while not await _applied(jobs.db):
            assert time.monotonic() < deadline, "not woken: it would have waited for its hourly poll"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await runner
