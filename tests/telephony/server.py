"""Helpers: run the app on a real socket in the test's loop, read Server-Sent Events from it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from litestar import Litestar


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(app: Litestar) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn (lifespan included) on a free port; yields the base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class SseEvent:
    id: int | None
    event: str | None
    data: Any


class SseReader:
    """Reads frames from an open streaming response; ``next()`` waits for the next data frame."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def connected(self, timeout: float = 20.0) -> None:
        """Wait for the stream's ``: connected`` comment (sent once it is subscribed)."""

        async def find() -> None:
            async for line in self._lines:
                if line.startswith(": connected"):
                    return
            raise EOFError("stream ended")

        await asyncio.wait_for(find(), timeout)

    async def next(self, timeout: float = 20.0) -> SseEvent:
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> SseEvent:
        fields: dict[str, str] = {}
        async for line in self._lines:
            if line == "":
                if "data" in fields:
                    raw_id = fields.get("id")
                    return SseEvent(
                        int(raw_id) if raw_id else None, fields.get("event"), json.loads(fields["data"])
                    )
                fields = {}
                continue
            if line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            fields[key] = value[1:] if value.startswith(" ") else value
        raise EOFError("stream ended")

    async def next_of(self, event_type: str, timeout: float = 20.0) -> SseEvent:
        """The next frame of ``event_type`` (frames of other types are skipped)."""

        async def find() -> SseEvent:
            while True:
                frame = await self._next()
                if frame.event == event_type:
                    return frame

        return await asyncio.wait_for(find(), timeout)
