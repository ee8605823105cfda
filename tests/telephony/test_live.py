"""hub/live.py: channels + replay log + SSE (the machinery behind TEL-4 pop-ups)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path

import asyncpg
import httpx
import pytest
from litestar import Litestar, Request, get
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage
from sqlalchemy import delete, select

from hub.app import create_app
from hub.auth.guards import employees
from hub.db import Database, utcnow
from hub.live import (
    REPLAY_PAGE,
    LiveEvent,
    channel_name,
    live_of,
    publish,
    publish_after_commit,
    sse_response,
    stream_events,
)
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


async def _frames_until_quiet(stream: AsyncGenerator[ServerSentEventMessage, None]) -> list[int]:
    """The ids of the frames a stream sends until it has nothing more (its first keep-alive)."""
    ids: list[int] = []
    async for message in stream:
        if message.comment == "keep-alive":
            return ids
        if message.comment is None:
            ids.append(int(message.id or 0))
    return ids


async def test_catch_up_sends_everything_missed_not_just_one_page(app: Litestar, tenant: Tenant) -> None:
    """TEL-4: a console away for long catches up on all it missed (more than one replay page), in
    order, then goes on live."""
    live = live_of(app)
    channel = channel_name(tenant.id, "emp", tenant.dispatcher.id)
    first = await publish(app, channel, {"n": 0})
    missed = REPLAY_PAGE * 2 + 37
    async with live.db.sessionmaker() as session, session.begin():
        session.add_all(
            LiveEvent(channel=channel, event_type="call.updated", data={"n": n}, created_at=utcnow())
            for n in range(1, missed + 1)
        )
    stream = stream_events(live, [channel], last_event_id=first, heartbeat=0.5)
    try:
        ids = await asyncio.wait_for(_frames_until_quiet(stream), 60)
    finally:
        await stream.aclose()
    assert len(ids) == missed and ids == sorted(ids) and ids[0] > first


async def test_an_event_committed_out_of_order_still_reaches_the_stream(
    app: Litestar, tenant: Tenant
) -> None:
    """TEL-4: on PostgreSQL a transaction can take a lower event id and commit after a higher one
    was delivered; the stream still passes it on instead of taking it for one already seen."""
    live = live_of(app)
    channel = channel_name(tenant.id, "emp", tenant.dispatcher.id)
    taken_early = await publish(app, channel, {"n": "early"})
    await publish(app, channel_name(tenant.id, "calls"), {"n": "keeps SQLite from reusing the id"})
    async with live.db.sessionmaker() as session, session.begin():  # not committed yet, as it were
        await session.execute(delete(LiveEvent).where(LiveEvent.id == taken_early))
    seen = await publish(app, channel, {"n": "seen"})
    stream = stream_events(live, [channel], last_event_id=seen, heartbeat=5)
    try:
        assert (await anext(stream)).comment == "connected"
        async with live.db.sessionmaker() as session, session.begin():
            late = LiveEvent(
                id=taken_early,
                channel=channel,
                event_type="call.ended",
                data={"n": "early"},
                created_at=utcnow(),
            )
            session.add(late)
        live.send(late)  # what publish_after_commit does once the late transaction commits
        frame = await asyncio.wait_for(anext(stream), 10)
    finally:
        await stream.aclose()
    assert (frame.id, frame.event) == (taken_early, "call.ended")


async def test_event_ids_follow_commit_order(app: Litestar, tenant: Tenant) -> None:
    """TEL-4: an event's id is taken when its transaction commits, so a transaction that started
    publishing first but commits last gets the higher id: a client resuming from the id it saw
    last cannot skip an event that became visible after it."""
    live = live_of(app)
    channel = channel_name(tenant.id, "emp", tenant.dispatcher.id)
    async with live.db.sessionmaker() as slow, live.db.sessionmaker() as quick:
        await slow.begin()
        early = publish_after_commit(slow, channel, "call.ringing", {"n": "slow"})
        await slow.flush()  # the rest of the slow transaction's work
        async with quick.begin():
            late = publish_after_commit(quick, channel, "call.ended", {"n": "quick"})
        await slow.commit()
    assert late.id < early.id
    stream = stream_events(live, [channel], last_event_id=late.id, heartbeat=0.5)
    try:
        assert await asyncio.wait_for(_frames_until_quiet(stream), 10) == [early.id]
    finally:
        await stream.aclose()


async def test_rolled_back_events_are_never_logged(app: Litestar, tenant: Tenant) -> None:
    """TEL-4: an event published in a transaction that rolls back (or is abandoned) reaches no
    log and no later transaction of the same session."""
    live = live_of(app)
    channel = channel_name(tenant.id, "emp", tenant.dispatcher.id)
    async with live.db.sessionmaker() as session:
        await session.begin()
        publish_after_commit(session, channel, "call.ringing", {"n": "rolled back"})
        await session.rollback()
        async with session.begin():
            kept = publish_after_commit(session, channel, "call.ringing", {"n": "kept"})
    async with live.db.sessionmaker() as session:
        await session.begin()
        publish_after_commit(session, channel, "call.ringing", {"n": "abandoned"})
    async with live.db.sessionmaker() as session, session.begin():
        logged = (await session.execute(select(LiveEvent.id, LiveEvent.data))).all()
    assert [(row.id, row.data) for row in logged] == [(kept.id, {"n": "kept"})]
