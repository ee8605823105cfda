"""A probe intake source for the pipeline's own tests: applying an event writes one row to a
plain table (no unique key), so an event applied twice shows as two rows."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import Database
from hub.intake import Applied, EventView, register_source
from hub.jobs import JobContext

SOURCE = "probe"
TABLE = "intake_probe_applied"


async def create_table(db: Database) -> None:
    async with db.engine.begin() as connection:
        await connection.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
        serial = (
            "BIGSERIAL PRIMARY KEY" if db.dialect == "postgresql" else "INTEGER PRIMARY KEY AUTOINCREMENT"
        )
        columns = f"seq {serial}, event_id BIGINT NOT NULL, order_key TEXT, body TEXT"
        await connection.execute(text(f"CREATE TABLE {TABLE} ({columns})"))


class Probe:
    name = SOURCE

    def __init__(self, delay: float = 0.0, refuse: str | None = None, marker: Path | None = None) -> None:
        self.delay = delay  # per event: lets a test kill the worker in the middle of a batch
        self.refuse = refuse  # a body that is refused by "the domain's rules"
        self.marker = marker  # touched when applying starts (SQLite's readers wait for the writer)

    async def prepare(self, ctx: JobContext, event: EventView) -> Any:
        return None

    async def apply(self, session: AsyncSession, ctx: JobContext, event: EventView, prepared: Any) -> Applied:
        if event.body == self.refuse:
            raise ValueError("refused by the probe's rules")
        await session.execute(
            text(f"INSERT INTO {TABLE} (event_id, order_key, body) VALUES (:id, :key, :body)"),
            {"id": event.id, "key": event.order_key, "body": event.body},
        )
        if self.marker is not None:
            self.marker.touch()
        if self.delay:
            await asyncio.sleep(self.delay)
        return Applied("applied", result={"seen": event.body})

    async def refused(
        self, session: AsyncSession, ctx: JobContext, event: EventView, exc: Exception
    ) -> Applied | None:
        if isinstance(exc, ValueError):
            return Applied("rejected", "probe_refused", str(exc))
        return None


def install(delay: float = 0.0, refuse: str | None = None, marker: Path | None = None) -> None:
    register_source(Probe(delay, refuse, marker))
