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
from sqlalchemy import delete, select, text

from hub.app import create_app
from hub.auth.guards import employees
from hub.db import Database, utcnow
from hub.live import (
    REPLAY_PAGE,
    LiveEvent,
    build_live,
    channel_name,
    live_of,
    publish,
    publish_after_commit,
    sse_response,
    stream_events,
)
from hub.live import _replay as replay_log
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


on_postgres = pytest.mark.skipif(
    not PG_URL, reason="PostgreSQL: SQLite has one writer, a second transaction waits for the first"
)


@on_postgres
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
        await live.settle()  # logged and visible: a client may have seen it and resume from it
        await slow.commit()
    await live.settle()
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
    await live.settle()
    async with live.db.sessionmaker() as session:
        await session.begin()
        publish_after_commit(session, channel, "call.ringing", {"n": "abandoned"})
    async with live.db.sessionmaker() as session, session.begin():
        logged = (await session.execute(select(LiveEvent.id, LiveEvent.data))).all()
    assert [(row.id, row.data) for row in logged] == [(kept.id, {"n": "kept"})]


async def _advisory_locks_held(db: Database, session_pid: int) -> int:
    async with db.sessionmaker() as observer:
        locks = await observer.scalar(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = :pid"),
            {"pid": session_pid},
        )
    return int(locks or 0)


@on_postgres
async def test_publishing_transactions_do_not_wait_for_each_other(app: Litestar, tenant: Tenant) -> None:
    """Issue 11 (live events without a global lock): two transactions publishing on different
    channels are open at once, hold no hub-wide lock for it, and the one that commits first (its
    events written in one INSERT with its commit) is not held up by the other; the log then has
    both, in commit order."""
    live = live_of(app)
    pops, calls = channel_name(tenant.id, "emp", tenant.dispatcher.id), channel_name(tenant.id, "calls")
    first_published, second_published = asyncio.Event(), asyncio.Event()

    async def first_publisher() -> tuple[LiveEvent, int]:
        async with live.db.sessionmaker() as session:
            await session.begin()
            event = publish_after_commit(session, pops, "call.ringing", {"n": "first"})
            await session.flush()
            first_published.set()
            await second_published.wait()  # the second has published too, and is still open
            pid = int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)
            locks = await _advisory_locks_held(live.db, pid)
            await session.commit()
            return event, locks

    async def second_publisher() -> tuple[LiveEvent, int]:
        async with live.db.sessionmaker() as session:
            await session.begin()
            await first_published.wait()
            event = publish_after_commit(session, calls, "call.updated", {"n": "second"})
            await session.flush()
            pid = int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)
            second_published.set()
            await first_done.wait()  # the first commits while this one is open with its event written
            locks = await _advisory_locks_held(live.db, pid)
            await session.commit()
            return event, locks

    first_done = asyncio.Event()
    first_task = asyncio.create_task(first_publisher())
    second_task = asyncio.create_task(second_publisher())
    first, first_locks = await first_task
    first_done.set()
    second, second_locks = await second_task
    await live.settle()
    assert first_locks == second_locks == 0
    assert first.id < second.id
    resumed = [event.id async for event in replay_log(live.db, [pops, calls], first.id)]
    assert resumed == [second.id]


@on_postgres
async def test_a_resumed_stream_never_skips_an_event_under_concurrent_publishers(
    app: Litestar, settings: Settings, tenant: Tenant
) -> None:
    """Issue 11: publishers in two processes (two databases engines, two sequencers) stage events
    in one order and commit them in the reverse one, while a reader keeps resuming from the last
    id it saw. The reader gets every event exactly once and never has to go back: an event
    staged earlier but committed later gets an id above every id already visible (the design
    rule is in hub/live.py, ``_sequence_staged``)."""
    live = live_of(app)
    other_db = Database(settings.database.url)
    other_live = build_live(settings, other_db)
    channels = [channel_name(tenant.id, "emp", tenant.dispatcher.id), channel_name(tenant.id, "calls")]
    count = 12
    staged = [asyncio.Event() for _ in range(count)]
    may_commit = [asyncio.Event() for _ in range(count)]
    published: list[LiveEvent] = []

    async def publisher(n: int) -> None:
        hub = live if n % 2 else other_live
        async with hub.db.sessionmaker() as session:
            await session.begin()
            if n:
                await staged[n - 1].wait()  # stage in order 0, 1, 2, ...
            published.append(publish_after_commit(session, channels[n % 2], "call.updated", {"n": n}))
            await session.flush()
            staged[n].set()
            await may_commit[n].wait()
            await session.commit()
        await hub.settle()
        if n:
            may_commit[n - 1].set()  # ... and commit in the reverse order

    seen: list[int] = []
    done = asyncio.Event()

    async def reader() -> None:
        while not done.is_set():  # a client resuming again and again from the last id it saw
            seen.extend([event.id async for event in replay_log(live.db, channels, seen[-1] if seen else 0)])
            await asyncio.sleep(0)

    reading = asyncio.create_task(reader())
    try:
        publishers = [asyncio.create_task(publisher(n)) for n in range(count)]
        await staged[-1].wait()
        may_commit[-1].set()
        await asyncio.gather(*publishers)
        await live.settle()
        await other_live.settle()
    finally:
        done.set()
        await reading
        await other_live.stop()
        await other_db.dispose()
    seen.extend([event.id async for event in replay_log(live.db, channels, seen[-1] if seen else 0)])
    assert sorted(event.id for event in published) == seen  # all of them, once, ids only rising
    async with live.db.sessionmaker() as session:
        logged = list(await session.scalars(select(LiveEvent.data).order_by(LiveEvent.id)))
    assert [data["n"] for data in logged] == list(reversed(range(count)))  # ids in commit order
