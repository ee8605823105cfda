"""MON-8: the receiver inside `hub serve` (HUB_ALARM_ENABLED), with the in-process intake worker
applying what it acknowledged; and mangled frames on a live connection."""

from __future__ import annotations

import asyncio
import random

import httpx
import msgspec
from litestar import Litestar

from hub.app import create_app
from hub.devkit import free_port, make_tenant
from hub.monitoring.alarm.frame import ANSWERS, FrameError, parse_frame
from hub.monitoring.alarm.panel import read_reply
from hub.settings import AlarmSettings, Settings
from tests.alarm.helpers import make_panel, receiving, send_tcp, tickets_of
from tests.conftest import Tenant


async def test_enabled_receiver_runs_inside_the_app_and_its_worker_applies(settings: Settings) -> None:
    """MON-8: with the receiver enabled, the app's lifespan listens on the configured port; a
    trouble sent there becomes a ticket through the app's own intake worker, nobody driving it."""
    port = free_port()
    alarm = AlarmSettings(enabled=True, tcp_port=port, udp_port=0, directory_seconds=0.0)
    app = create_app(msgspec.structs.replace(settings, alarm=alarm), run_background_jobs=True)
    transport = httpx.ASGITransport(app=app)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        tenant = await make_tenant(app.state.db, app.state.settings, "Serve Security")
        panel, object_id = await make_panel(http, tenant)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(panel.contact_id(1, "311", "01", "000"))
        assert parse_frame(await read_reply(reader), ANSWERS).token == "ACK"
        writer.close()
        for _ in range(100):
            if tickets := await tickets_of(app, object_id):
                break
            await asyncio.sleep(0.1)
        assert len(tickets) == 1 and "Battery missing" in tickets[0].title


async def test_mangled_frames_on_a_live_connection_never_stop_the_receiver(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-8: 300 frames with bytes changed, dropped or doubled (seeded, repeatable): each gets a
    well-formed NAK or DUH or nothing, and the same connection still ACKs a good frame after."""
    panel, _ = await make_panel(client, tenant)
    rng = random.Random(14)
    good = [panel.contact_id(1, "301", zone=f"{z:03d}") for z in range(10)]
    mangled = []
    for _ in range(300):
        frame = bytearray(rng.choice(good))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(1, len(frame) - 1)
            match rng.randrange(3):
                case 0:
                    frame[at] = rng.randrange(32, 127)
                case 1:
                    del frame[at]
                case _:
                    frame.insert(at, frame[at])
        mangled.append(bytes(frame).replace(b"\r", b"") + b"\r")
    async with receiving(app) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.tcp_port)
        for frame in mangled:
            writer.write(frame)
            reply = await read_reply(reader)
            try:
                assert parse_frame(reply, ANSWERS).token in ("NAK", "DUH", "ACK")
            except FrameError as exc:  # pragma: no cover - the assertion message is the point
                raise AssertionError(f"{frame!r} got a malformed answer {reply!r}") from exc
        writer.write(panel.contact_id(1, "302"))
        assert parse_frame(await read_reply(reader), ANSWERS).token == "ACK"
        writer.close()
        (last,) = await send_tcp(server, panel.contact_id(1, "302"))
        assert parse_frame(last, ANSWERS).token == "ACK"
