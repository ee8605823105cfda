"""Periodic work of the exchange: mirroring files to partners (EX-5, EX-6), releasing held messages."""

from __future__ import annotations

from hub.exchange.held import release_ready_held
from hub.exchange.service import mirror_public_files
from hub.jobs import JobContext, periodic_job

__all__ = ["MIRROR_JOB", "RELEASE_HELD_JOB", "mirror_files_job", "release_held_job"]

MIRROR_JOB = "exchange.mirror_files"
RELEASE_HELD_JOB = "exchange.release_held"


@periodic_job(MIRROR_JOB, interval=lambda settings: max(0.5, settings.outbox.poll_seconds))
async def mirror_files_job(ctx: JobContext) -> None:
    await mirror_public_files(ctx.db, ctx.settings)


@periodic_job(RELEASE_HELD_JOB, interval=lambda settings: max(2.0, settings.outbox.poll_seconds))
async def release_held_job(ctx: JobContext) -> None:
    await release_ready_held(ctx.db, ctx.settings)
