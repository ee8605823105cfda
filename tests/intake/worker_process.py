"""Runs a real intake worker in its own process with the probe source (killed with SIGKILL)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx

from hub.db import Database
from hub.intake.worker import apply_due
from hub.jobs import JobContext
from tests.conftest import make_settings
from tests.intake import probe


async def main(database_url: str, data_dir: str) -> None:
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    probe.install(delay=0.02, marker=Path(data_dir) / "applying")
    settings = make_settings(database_url, Path(data_dir))
    db = Database(database_url)
    async with httpx.AsyncClient() as http:
        ctx = JobContext(db=db, settings=settings, http=http)
        print("worker ready", flush=True)
        while True:
            await apply_due(ctx)
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
