"""Helpers: run the app on a real socket in the test's loop, read Server-Sent Events from it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from litestar import Litestar

from hub.devkit import free_port as free_port


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
    """Reads frames from an open streaming response in a background task, so a timed-out wait
    never breaks the stream; ``next()`` waits for the next data frame."""

    def __init__(self, response: httpx.Response) -> None:
        self._frames: asyncio.Queue[SseEvent | str | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._pump(response))

    async def _pump(self, response: httpx.Response) -> None:
        fields: dict[str, str] = {}
        try:
            async for line in response.aiter_lines():
                if line == "":
                    if "data" in fields:
                        raw_id = fields.get("id")
                        data = json.loads(fields["data"])
                        await self._frames.put(
                            SseEvent(int(raw_id) if raw_id else None, fields.get("event"), data)
                        )
                    fields = {}
                elif line.startswith(":"):
                    await self._frames.put(line)
                else:
                    key, _, value = line.partition(":")
                    fields[key] = value[1:] if value.startswith(" ") else value
        finally:
            await self._frames.put(None)

    async def _get(self) -> SseEvent | str:
        item = await self._frames.get()
        if item is None:
            await self._frames.put(None)
            raise EOFError("stream ended")
        return item

    async def connected(self, timeout: float = 20.0) -> None:
        """Wait for the stream's ``: connected`` comment (sent once it is subscribed)."""

        async def find() -> None:
            while not (isinstance(item := await self._get(), str) and item.startswith(": connected")):
                pass

        await asyncio.wait_for(find(), timeout)

    async def _next_frame(self) -> SseEvent:
        while True:
            item = await self._get()
            if isinstance(item, SseEvent):
                return item

    async def next(self, timeout: float = 20.0) -> SseEvent:
        return await asyncio.wait_for(self._next_frame(), timeout)

    async def next_of(self, event_type: str, timeout: float = 20.0) -> SseEvent:
        """The next frame of ``event_type`` (frames of other types are skipped)."""

        async def find() -> SseEvent:
            while (frame := await self._next_frame()).event != event_type:
                pass
            return frame

        return await asyncio.wait_for(find(), timeout)
