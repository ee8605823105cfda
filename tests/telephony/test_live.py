"""hub/live.py: channels + replay log + SSE (the machinery behind TEL-4 pop-ups)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx
import pytest
from litestar import Litestar, Request, get
from litestar.response import ServerSentEvent

from hub.app import create_app
from hub.auth.guards import employees
from hub.db import Database
from hub.live import channel_name, publish, sse_response
from hub.settings import Settings
from tests.conftest import PG_URL, Tenant, make_settings, make_tenant
from tests.telephony.hubproc import fresh_database, private_pg_url
from tests.telephony.server import SseReader, serve


def _app_with_stream(settings: Settings) -> Litestar:
    app = create_app(settings, run_background_jobs=False)

    @get("/api/test-live/{name:str}", guards=[employees])
    async def stream(request: Request, name: str) -> ServerSentEvent:  # type: ignore[type-arg]
        return sse_response(request, [name])

    app.register(stream)
    return app


@pytest.mark.parametrize("backend", ["default", "redis"])
async def test_published_event_reaches_stream_and_reconnect_catches_up(
    backend: str, settings: Settings, tenant: Tenant
) -> None:
    """TEL-4: an event published after commit reaches an open SSE stream with its id; a stream
    reopened with Last-Event-ID first replays what it missed, in order."""
    # By default: LISTEN/NOTIFY on PostgreSQL, memory on SQLite; then the Redis pub/sub backend.
    if backend == "default":
        backend = "postgres" if PG_URL else "memory"
    app = _app_with_stream(make_settings(settings.database.url, settings.data_dir, channels_backend=backend))
    channel = channel_name(tenant.id, "test")
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        async with http.stream(
            "GET", f"/api/test-live/{channel}", headers=tenant.dispatcher.headers
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            reader = SseReader(response)
            await reader.connected()
            first = await publish(app, channel, {"n": 1}, event_type="ping")
            frame = await reader.next()
            assert (frame.id, frame.event, frame.data) == (first, "ping", {"n": 1})
        # Missed while disconnected: two events, one of them too large for a NOTIFY payload.
        second = await publish(app, channel, {"n": 2}, event_type="ping")
        third = await publish(app, channel, {"n": 3, "blob": "x" * 9000}, event_type="ping")
        await publish(app, channel_name(tenant.id, "elsewhere"), {"n": 99})
        headers = {**tenant.dispatcher.headers, "Last-Event-ID": str(first)}
        async with http.stream("GET", f"/api/test-live/{channel}", headers=headers) as response:
            reader = SseReader(response)
            assert [(await reader.next()).id for _ in range(2)] == [second, third]
            fourth = await publish(app, channel, {"n": 4, "blob": "y" * 9000}, event_type="ping")
            frame = await reader.next()
            assert frame.id == fourth and frame.data["n"] == 4 and len(frame.data["blob"]) == 9000


async def test_postgres_listener_comes_back_after_the_connection_drops(tmp_path: Path) -> None:
    """TEL-4: a console is kept open all day; when PostgreSQL drops the LISTEN connection (restart,
    failover, idle kill) the process listens again and live events keep arriving."""
    url = private_pg_url("hub_tel_live")
    await fresh_database(url)
    db = Database(url)
    try:
        tenant = await make_tenant(db, make_settings(url, tmp_path / "seed"))
    finally:
        await db.dispose()
    app = _app_with_stream(make_settings(url, tmp_path / "data", channels_backend="postgres"))
    channel = channel_name(tenant.id, "test")
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        async with http.stream(
            "GET", f"/api/test-live/{channel}", headers=tenant.dispatcher.headers
        ) as response:
            reader = SseReader(response)
            await reader.connected()
            await publish(app, channel, {"n": 1})
            assert (await reader.next()).data == {"n": 1}
            admin = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
            try:
                killed = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
                )
            finally:
                await admin.close()
            assert killed >= 1

            async def until_delivered() -> int:
                n = 1
                while True:  # the re-LISTEN takes a moment; events published before it are in the log
                    n += 1
                    await publish(app, channel, {"n": n})
                    try:
                        frame = await reader.next(timeout=1.0)
                    except TimeoutError:
                        continue
                    return int(frame.data["n"])

            assert await asyncio.wait_for(until_delivered(), 30) >= 2
