"""Periodic background jobs (outbox delivery, sweepers, reconciliation).

They run inside the web process by default and in ``hub worker`` processes beside it; every job
must be safe to run in several processes at once (row locks / conditional updates, never
in-process state).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import Database
from hub.metrics import JOB_RUNS, JOB_SECONDS
from hub.settings import Settings

__all__ = [
    "JobContext",
    "PeriodicJob",
    "add_job",
    "job_of",
    "notify_job",
    "periodic_job",
    "registered_jobs",
    "run_jobs",
    "wake_job",
]

# PostgreSQL channel on which a committed transaction wakes a job in every process.
WAKE_CHANNEL = "hub_jobs"

log = structlog.get_logger("hub.jobs")


@dataclass
class JobContext:
    db: Database
    settings: Settings
    http: httpx.AsyncClient
    # Set to run a job's next round at once (e.g. after a commit that queued outbox messages).
    wake_events: dict[str, asyncio.Event] = field(default_factory=dict)
    # Lookups that change rarely, kept for a few seconds by whoever reads them (one app's, so one
    # database's: never shared between apps of one process, as tests build many).
    cache: dict[Any, Any] = field(default_factory=dict)
    # /ready's heartbeat: by when (time.monotonic()) each job loop of this process must next
    # start or end a round: a round may take HUB_READY_JOB_STALE_SECONDS, the wait between
    # rounds its interval more. A loop that hangs or died misses it.
    alive_until: dict[str, float] = field(default_factory=dict)

    def beat(self, job: PeriodicJob, *, between_rounds: bool) -> None:
        grace = self.settings.server.ready_job_stale_seconds
        if between_rounds:
            grace += job.interval(self.settings)
        self.alive_until[job.name] = time.monotonic() + grace

    def wake(self, job_name: str) -> None:
        event = self.wake_events.get(job_name)
        if event is not None:
            event.set()


JobFunction = Callable[[JobContext], Awaitable[None]]


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    run: JobFunction
    interval: Callable[[Settings], float]


_JOBS: dict[str, PeriodicJob] = {}
# Wake-up events of the job loops running in this process, by job name.
_LOCAL_WAKERS: dict[str, set[asyncio.Event]] = {}


def wake_job(name: str) -> None:
    """Run the named job's next round now in every loop of this process (others poll)."""
    for event in _LOCAL_WAKERS.get(name, ()):
        event.set()


async def notify_job(session: AsyncSession, name: str) -> None:
    """Wake the named job in the other processes when the caller's transaction commits
    (PostgreSQL NOTIFY is delivered at commit, never for a rolled-back transaction). The caller
    wakes its own process with :func:`wake_job` after commit; SQLite has one process."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(_NOTIFY, {"name": name})


_NOTIFY = text(f"SELECT pg_notify('{WAKE_CHANNEL}', :name)")
_JOB_MARK = "periodic_job"


def periodic_job(name: str, interval: Callable[[Settings], float]) -> Callable[[JobFunction], JobFunction]:
    """Decorator: mark ``fn`` as the periodic job ``name``, run every ``interval(settings)`` seconds.

    It only marks: :func:`add_job` (called by ``hub.wiring``) makes it run."""

    def mark(fn: JobFunction) -> JobFunction:
        setattr(fn, _JOB_MARK, PeriodicJob(name, fn, interval))
        return fn

    return mark


def job_of(fn: JobFunction) -> PeriodicJob | None:
    """The job ``fn`` was marked as with :func:`periodic_job`, if any."""
    job = getattr(fn, _JOB_MARK, None)
    return job if isinstance(job, PeriodicJob) else None


def add_job(fn: JobFunction) -> None:
    """Run the marked job in this process's job loops; adding it again is a no-op."""
    job = job_of(fn)
    if job is None:
        raise TypeError(f"{fn.__qualname__} is not marked with @periodic_job(name, interval)")
    if _JOBS.setdefault(job.name, job) is not job:
        raise RuntimeError(f"two periodic jobs named {job.name!r}")


def registered_jobs() -> list[PeriodicJob]:
    return list(_JOBS.values())


async def _loop(job: PeriodicJob, ctx: JobContext, stop: asyncio.Event) -> None:
    wake = ctx.wake_events.setdefault(job.name, asyncio.Event())
    _LOCAL_WAKERS.setdefault(job.name, set()).add(wake)
    try:
        while not stop.is_set():
            wake.clear()
            await _round(job, ctx)
            waiter = asyncio.ensure_future(wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait(
                {waiter, stopper}, timeout=job.interval(ctx.settings), return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            stopper.cancel()
    finally:
        _LOCAL_WAKERS[job.name].discard(wake)


async def _round(job: PeriodicJob, ctx: JobContext) -> None:
    ctx.beat(job, between_rounds=False)
    started = time.monotonic()
    outcome = "ok"
    try:
        await job.run(ctx)
    except Exception:  # a failing round must not kill the loop; it is logged and retried
        outcome = "failed"
        log.exception("job_failed", job=job.name)
    JOB_SECONDS.labels(job=job.name).observe(time.monotonic() - started)
    JOB_RUNS.labels(job=job.name, outcome=outcome).inc()
    ctx.beat(job, between_rounds=True)


async def run_jobs(ctx: JobContext, jobs: list[PeriodicJob], stop: asyncio.Event) -> None:
    """Run every job in its own loop until ``stop`` is set."""
    for job in jobs:
        ctx.wake_events.setdefault(job.name, asyncio.Event())
        ctx.beat(job, between_rounds=True)
    async with _listening_for_wakeups(ctx.db):
        await asyncio.gather(*(_loop(job, ctx, stop) for job in jobs))


@contextlib.asynccontextmanager
async def _listening_for_wakeups(db: Database) -> AsyncIterator[None]:
    """On PostgreSQL, LISTEN for :func:`notify_job` from other processes on a connection of its
    own; a lost listener only means the jobs fall back to their polling interval."""
    if db.is_sqlite:
        yield
        return
    import asyncpg

    dsn = make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        connection = await asyncpg.connect(dsn, timeout=10)
        await connection.add_listener(WAKE_CHANNEL, lambda _c, _pid, _channel, name: wake_job(name))
    except (OSError, asyncpg.PostgresError):
        log.warning("job_wakeup_listener_unavailable", exc_info=True)
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await connection.close(timeout=5)
