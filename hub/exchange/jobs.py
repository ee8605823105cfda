"""Periodic work of the exchange: mirroring partner tickets' public files back (EX-6)."""

from __future__ import annotations

from hub.exchange.service import mirror_public_files
from hub.jobs import JobContext, register_job

__all__ = ["MIRROR_JOB", "mirror_files_job"]

MIRROR_JOB = "exchange.mirror_files"


@register_job(MIRROR_JOB, interval=lambda settings: max(0.5, settings.outbox.poll_seconds))
async def mirror_files_job(ctx: JobContext) -> None:
    await mirror_public_files(ctx.db, ctx.settings)
