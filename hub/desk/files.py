"""DESK-6 files: bytes on disk under ``settings.files_dir/<account_id>/<ticket_id>/``, rows in
``ticket_files``; at most ``settings.files.max_files_per_ticket`` per ticket and
``settings.files.max_file_bytes`` per file."""

from __future__ import annotations

import hashlib
import os
import uuid
from functools import partial
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.db import after_rollback, utcnow
from hub.desk.actors import Actor
from hub.desk.models import Comment, TicketFile
from hub.desk.service import check_not_final, get_ticket, record_history
from hub.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable
from hub.settings import Settings

__all__ = ["attach_file", "file_path", "get_file", "read_file_bytes", "safe_filename"]


def safe_filename(name: str | None) -> str:
    base = os.path.basename((name or "").replace("\\", "/")).strip().replace("\x00", "")
    return base[:255] or "file"


def file_path(settings: Settings, row: TicketFile) -> Path:
    return settings.files_dir / row.storage_path


def read_file_bytes(settings: Settings, row: TicketFile) -> bytes:
    return file_path(settings, row).read_bytes()


async def attach_file(
    session: AsyncSession,
    settings: Settings,
    account_id: int,
    ticket_id: int,
    actor: Actor,
    *,
    filename: str,
    content_type: str | None,
    data: bytes,
    comment_id: int | None = None,
    public: bool = True,
) -> TicketFile:
    """Store one file on a ticket (or one of its comments) and note it in the history (DESK-7).

    409 ``ticket_final`` on a closed or cancelled ticket (staff and clients); 413
    ``file_too_large`` over the per-file limit; 409 ``too_many_files`` past the per-ticket count.
    The bytes are written before the row; if the transaction rolls back they are removed.
    """
    ticket = await get_ticket(session, account_id, ticket_id, for_update=True)
    check_not_final(ticket, actor)
    if len(data) > settings.files.max_file_bytes:
        raise PayloadTooLarge(
            f"A file may have at most {settings.files.max_file_bytes} bytes",
            code="file_too_large",
            max_file_bytes=settings.files.max_file_bytes,
        )
    if comment_id is not None:
        comment = await session.get(Comment, comment_id)
        if comment is None or comment.ticket_id != ticket.id or comment.account_id != account_id:
            raise Unprocessable("No such comment on this ticket", code="comment_not_found")
        public = comment.public
    count = await session.scalar(
        select(func.count()).select_from(TicketFile).where(TicketFile.ticket_id == ticket.id)
    )
    if (count or 0) >= settings.files.max_files_per_ticket:
        raise Conflict(
            f"A ticket may have at most {settings.files.max_files_per_ticket} files",
            code="too_many_files",
            max_files_per_ticket=settings.files.max_files_per_ticket,
        )
    relative = f"{account_id}/{ticket.id}/{uuid.uuid4().hex}"
    target = settings.files_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_suffix(".part")
    temp.write_bytes(data)
    temp.replace(target)
    # Only this change's own rollback (its savepoint or the whole transaction) removes the bytes.
    after_rollback(session, partial(target.unlink, missing_ok=True))
    row = TicketFile(
        account_id=account_id,
        ticket_id=ticket.id,
        comment_id=comment_id,
        filename=safe_filename(filename),
        content_type=(content_type or "application/octet-stream")[:200],
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        storage_path=relative,
        public=public,
        uploaded_by_kind=actor.kind,
        uploaded_by_id=actor.id,
        uploaded_by_name=None if actor.is_client else actor.name,
        created_at=utcnow(),
    )
    session.add(row)
    ticket.updated_at = row.created_at
    await session.flush()
    # DESK-7: every change is in the history, files included.
    await record_history(
        session,
        ticket,
        actor,
        "file_added",
        {
            "file_id": row.id,
            "filename": row.filename,
            "size": row.size,
            "public": public,
            "comment_id": comment_id,
        },
        now=row.created_at,
    )
    await session.flush()
    return row


async def get_file(session: AsyncSession, account_id: int, ticket_id: int, file_id: int) -> TicketFile:
    await get_ticket(session, account_id, ticket_id)
    row = await session.get(TicketFile, file_id)
    if row is None or row.account_id != account_id or row.ticket_id != ticket_id:
        raise NotFound("No such file", code="file_not_found")
    return row
