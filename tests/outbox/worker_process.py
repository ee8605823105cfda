"""Runs a real outbox worker in its own process (the kill test stops it with SIGKILL)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx

from hub.db import Database
from hub.jobs import JobContext
from hub.outbox import register_handler
from hub.outbox.worker import deliver_due
from tests.conftest import make_settings
from tests.outbox.far_side import post_to_far_side


async def main(database_url: str, data_dir: str) -> None:
    register_handler(post_to_far_side)
    settings = make_settings(database_url, Path(data_dir))
    db = Database(database_url)
    async with httpx.AsyncClient() as http:
        ctx = JobContext(db=db, settings=settings, http=http)
        print("worker ready", flush=True)
        while True:
            await deliver_due(ctx)
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
