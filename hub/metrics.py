"""Prometheus metrics beyond HTTP (``GET /metrics``).

Counted where things happen: job rounds, outbox deliveries per topic (one topic per connector:
``exchange.*``, ``notify.webhook``, ``payments.*`` ...), intake events per source and outcome,
live stream clients. Read from the database when scraped: outbox depth and dead letters per
topic, the connection pool's use. Each process counts its own (``--workers N``: each process
answers for itself, as Prometheus expects of separate targets).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func, select

from hub.db import Database

__all__ = [
    "INTAKE_EVENTS",
    "JOB_RUNS",
    "JOB_SECONDS",
    "LIVE_CLIENTS",
    "OUTBOX_DELIVERIES",
    "refresh_gauges",
]

JOB_RUNS = Counter(
    "hub_job_runs_total", "Rounds of a periodic job, by outcome (ok, failed)", ["job", "outcome"]
)
JOB_SECONDS = Histogram(
    "hub_job_duration_seconds",
    "Duration of a periodic job's round",
    ["job"],
    buckets=(0.005, 0.02, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60),
)
OUTBOX_DELIVERIES = Counter(
    "hub_outbox_deliveries_total",
    "Outbox delivery attempts by topic (the connector) and outcome (delivered, retry, dead)",
    ["topic", "outcome"],
)
INTAKE_EVENTS = Counter(
    "hub_intake_events_total",
    "Inbound events by source and outcome (stored, duplicate, replayed, rejected at the door; "
    "what the worker made of them: applied, ignored, ...; failed)",
    ["source", "outcome"],
)
LIVE_CLIENTS = Gauge("hub_live_stream_clients", "Open live event streams (SSE pop-ups, app updates)")
OUTBOX_MESSAGES = Gauge(
    "hub_outbox_messages",
    "Outbox messages waiting (pending, delivering) or dead, by topic",
    ["topic", "status"],
)
DB_POOL = Gauge("hub_db_pool_connections", "Database connections of this process's pool", ["state"])


async def refresh_gauges(db: Database) -> None:
    """Read what the gauges show from the database, just before they are scraped."""
    from hub.outbox.models import OutboxMessage, OutboxStatus

    waiting = (OutboxStatus.PENDING, OutboxStatus.DELIVERING, OutboxStatus.DEAD)
    query = (
        select(OutboxMessage.topic, OutboxMessage.status, func.count())
        .where(OutboxMessage.status.in_(waiting))
        .group_by(OutboxMessage.topic, OutboxMessage.status)
    )
    async with db.sessionmaker() as session:
        rows = (await session.execute(query)).all()
    OUTBOX_MESSAGES.clear()
    for topic, status, count in rows:
        OUTBOX_MESSAGES.labels(topic=topic, status=status).set(count)
    _pool_use(db.engine.pool)


def _pool_use(pool: Any) -> None:
    """Checked-out and idle connections (QueuePool; other pools report nothing)."""
    if not hasattr(pool, "checkedout"):
        return
    DB_POOL.labels(state="in_use").set(pool.checkedout())
    DB_POOL.labels(state="idle").set(pool.checkedin())
    DB_POOL.labels(state="size").set(pool.size())
