"""Liveness and readiness endpoints."""

from __future__ import annotations

import msgspec
from litestar import get
from litestar.datastructures import State
from sqlalchemy import text

from hub.errors import HubError

__all__ = ["health", "ready"]


class HealthStatus(msgspec.Struct):
    status: str


class NotReady(HubError):
    status = 503
    code = "not_ready"
    title = "Not ready"


@get("/health", exclude_from_auth=True, tags=["system"], summary="Liveness: the process answers")
async def health() -> HealthStatus:
    return HealthStatus(status="ok")


@get("/ready", exclude_from_auth=True, tags=["system"], summary="Readiness: the database answers")
async def ready(state: State) -> HealthStatus:
    try:
        async with state.db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        raise NotReady(f"database unavailable: {exc.__class__.__name__}") from exc
    return HealthStatus(status="ready")
