"""A running receiver in the test's event loop, objects with panel account numbers, and what a
panel does on the wire (:class:`hub.monitoring.alarm.panel.Panel`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from litestar import Litestar
from sqlalchemy import select

from hub.desk.models import Comment, Ticket
from hub.intake.worker import drain_intake
from hub.monitoring.alarm.panel import Panel, read_reply
from hub.monitoring.alarm.receiver import AlarmReceiver
from hub.monitoring.alarm.server import AlarmServer, start_server
from hub.settings import AlarmSettings
from tests.conftest import Tenant

__all__ = ["apply", "comments", "make_panel", "receiving", "send_tcp", "tickets_of"]


@asynccontextmanager
async def receiving(app: Litestar, **settings: Any) -> AsyncIterator[AlarmServer]:
    """The receiver on free TCP and UDP ports of 127.0.0.1 (account numbers looked up afresh)."""
    values = {"tcp_port": -1, "udp_port": -1, "directory_seconds": 0.0, **settings}
    server = await start_server(AlarmReceiver(app.state.db, AlarmSettings(**values)))
    try:
        yield server
    finally:
        await server.close()


async def make_panel(
    client: httpx.AsyncClient,
    tenant: Tenant,
    *,
    object_id: int | None = None,
    key: str | None = None,
    resolve_on_restore: bool = False,
    line: str = "",
) -> tuple[Panel, int]:
    """A new object (unless given) with a new panel account number; the panel and the object id."""
    if object_id is None:
        made = await client.post(
            "/api/objects",
            json={"number": f"OBJ-{uuid.uuid4().hex[:6]}", "name": "Warehouse", "address": "1 Guarded St"},
            headers=tenant.admin.headers,
        )
        assert made.status_code == 201, made.text
        object_id = made.json()["id"]
    number = uuid.uuid4().hex[:10].upper()
    body: dict[str, Any] = {"number": number, "resolve_on_restore": resolve_on_restore, "line": line}
    if key:
        body["key"] = key
    added = await client.post(
        f"/api/objects/{object_id}/alarm-accounts", json=body, headers=tenant.admin.headers
    )
    assert added.status_code == 201, added.text
    return Panel(number, line=line or "0", key=bytes.fromhex(key) if key else None), object_id


async def send_tcp(server: AlarmServer, *frames: bytes) -> list[bytes]:
    """One connection, each frame answered before the next is sent (as a panel or receiver does)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.tcp_port)
    replies = []
    try:
        for frame in frames:
            writer.write(frame)
            await writer.drain()
            replies.append(await read_reply(reader))
    finally:
        writer.close()
    return replies


async def apply(app: Litestar) -> None:
    await drain_intake(app.state.jobs)


async def tickets_of(app: Litestar, object_id: int) -> list[Ticket]:
    async with app.state.db.sessionmaker() as session:
        rows = await session.scalars(select(Ticket).where(Ticket.object_id == object_id).order_by(Ticket.id))
        return list(rows)


async def comments(app: Litestar, ticket_id: int) -> list[Comment]:
    async with app.state.db.sessionmaker() as session:
        rows = await session.scalars(
            select(Comment).where(Comment.ticket_id == ticket_id).order_by(Comment.id)
        )
        return list(rows)
