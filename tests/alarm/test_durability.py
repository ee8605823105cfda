"""MON-8 exactly once: the ACK follows the commit (a receiver killed right after it loses
nothing), and two workers applying one object's troubles at once open one ticket between them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import select

from hub.devkit import TEST_SECRET, free_port
from hub.intake.models import IntakeEvent, IntakeState
from hub.intake.sources import EventView
from hub.intake.worker import apply_due
from hub.monitoring.alarm.frame import ANSWERS, parse_frame
from hub.monitoring.alarm.models import AlarmTicket
from hub.monitoring.alarm.panel import read_reply
from hub.monitoring.alarm.service import AlarmEvents
from tests.alarm.helpers import apply, comments, make_panel, receiving, send_tcp, tickets_of
from tests.conftest import PG_URL, Tenant


async def _start_receiver(database_url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "HUB_DATABASE_URL": database_url,
        "HUB_SECRET_KEY": TEST_SECRET,
        "HUB_DATA_DIR": str(data_dir),
        "HUB_ALARM_DIRECTORY_SECONDS": "0",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hub.cli",
            "alarm-receiver",
            "--no-worker",
            "--tcp-port",
            str(port),
            "--udp-port",
            "0",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
    assert b"hub alarm receiver" in line, line
    return process, port


async def test_acknowledged_message_survives_a_killed_receiver(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant, database_url: str, tmp_path: Path
) -> None:
    """MON-8: `hub alarm-receiver` ACKs only what it committed: SIGKILL right after the ACK, and
    the trouble is still there for a worker to apply (one ticket)."""
    panel, object_id = await make_panel(client, tenant)
    process, port = await _start_receiver(database_url, tmp_path)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(panel.contact_id(1, "301", "01", "004"))
        await writer.drain()
        reply = await read_reply(reader)
        process.send_signal(signal.SIGKILL)  # no shutdown, no flush: the row is committed or not
        process.wait(10)
        writer.close()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
    assert parse_frame(reply, ANSWERS).token == "ACK"
    await apply(app)
    (ticket,) = await tickets_of(app, object_id)
    assert "AC loss" in ticket.title and "zone 004" in ticket.title


async def test_two_workers_applying_one_objects_repeats_take_turns(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-8: twenty repeats acknowledged, then two workers' rounds at once: one ticket, every
    repeat counted in order (the object is the intake order key)."""
    panel, object_id = await make_panel(client, tenant)
    async with receiving(app) as server:
        await send_tcp(server, *(panel.contact_id(1, "302") for _ in range(20)))
    jobs = app.state.jobs
    while sum(await asyncio.gather(apply_due(jobs), apply_due(jobs))):
        pass
    (ticket,) = await tickets_of(app, object_id)
    notes = await comments(app, ticket.id)
    assert len(notes) == 19 and "20 times" in notes[-1].body


@pytest.mark.skipif(not PG_URL, reason="a race between transactions needs PostgreSQL")
async def test_concurrent_troubles_of_one_object_open_one_ticket(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-8: two stored troubles of one object applied in two transactions at the same moment
    (two workers whose claims overlapped): the object's alarm ticket row lets one open the
    ticket; the other folds into it."""
    panel, object_id = await make_panel(client, tenant)
    async with receiving(app) as server:
        await send_tcp(server, panel.contact_id(1, "301"), panel.contact_id(1, "302"))
    db, source = app.state.db, AlarmEvents()
    async with db.sessionmaker() as session:
        rows = list(
            await session.scalars(select(IntakeEvent).where(IntakeEvent.state == IntakeState.PENDING))
        )
    views = [
        EventView(
            r.id, r.source, r.account_id, r.endpoint_id, r.dedupe_key, r.replay_key, r.order_key,
            r.headers, r.body, r.remote_addr, r.received_at, 1,
        )
        for r in rows
    ]  # fmt: skip
    start = asyncio.Event()

    async def apply_one(view: EventView) -> None:
        prepared = await source.prepare(app.state.jobs, view)
        await start.wait()
        async with db.sessionmaker() as session, session.begin():
            await source.apply(session, app.state.jobs, view, prepared)

    tasks = [asyncio.create_task(apply_one(view)) for view in views]
    await asyncio.sleep(0.05)
    start.set()
    await asyncio.gather(*tasks)
    (ticket,) = await tickets_of(app, object_id)
    async with db.sessionmaker() as session:
        slot = await session.scalar(select(AlarmTicket).where(AlarmTicket.object_id == object_id))
    assert slot is not None and slot.ticket_id == ticket.id and len(slot.troubles) == 2
    assert len(await comments(app, ticket.id)) == 1  # "Another trouble: ..."
