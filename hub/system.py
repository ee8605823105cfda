"""Liveness and readiness endpoints.

``/ready`` is what a load balancer or orchestrator asks before sending traffic (and what an
operator's alert watches): the database answers, the background jobs of this process are alive
(when they run here), and the outbox is moving (nothing has been due for long).
"""

from __future__ import annotations

import time
from datetime import timedelta

import msgspec
from litestar import get
from litestar.datastructures import State
from sqlalchemy import and_, func, or_, select, text

from hub.db import utcnow
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


@get(
    "/ready",
    exclude_from_auth=True,
    tags=["system"],
    summary="Readiness: the database answers, the background jobs run, the outbox moves",
    description="503 `not_ready` with the reason in `detail` otherwise.",
)
async def ready(state: State) -> HealthStatus:
    try:
        async with state.db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        raise NotReady(f"database unavailable: {exc.__class__.__name__}") from exc
    if state.jobs_in_process:
        _check_job_beats(state)
    await _check_outbox_moves(state)
    return HealthStatus(status="ready")


def _check_job_beats(state: State) -> None:
    alive_until: dict[str, float] = state.jobs.alive_until
    if not alive_until:
        raise NotReady("the background jobs have not started")
    now = time.monotonic()
    late = sorted(name for name, deadline in alive_until.items() if now > deadline)
    if late:
        raise NotReady(f"background job {', '.join(late)} is late: its round hangs or its loop stopped")


async def _check_outbox_moves(state: State) -> None:
    from hub.outbox.models import OutboxMessage, OutboxStatus

    limit = state.settings.server.ready_outbox_stuck_seconds
    since = utcnow() - timedelta(seconds=limit)
    stuck = or_(
        and_(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.next_attempt_at < since),
        # a worker claimed it and then neither delivered it nor renewed its lease
        and_(OutboxMessage.status == OutboxStatus.DELIVERING, OutboxMessage.locked_until < since),
    )
    async with state.db.sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(OutboxMessage).where(stuck))
    if count:
        raise NotReady(
            f"outbox stuck: {count} message(s) due for more than {limit:g} s "
            "(is a worker running? see GET /api/outbox)"
        )
