"""Files crossing between partners (EX-4..6): ticket files read into signed blobs, and back.

The bytes travel inside the signed message (base64), checked against their size and SHA-256 before
they are stored through the desk's own ``attach_file`` (which applies the account's file limits).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.exchange import MAX_FILE_BYTES, MAX_FILES_PER_MESSAGE, FileBlob
from hub.desk.actors import Actor
from hub.errors import BadRequest, PayloadTooLarge, Unprocessable
from hub.settings import Settings

__all__ = [
    "blob_batches",
    "blobs_of",
    "check_blobs",
    "files_to_send",
    "fits_partner",
    "store_blobs",
    "ticket_files",
    "to_send_on",
]


def fits_partner(row: Any) -> bool:
    """A file small enough to travel to a partner inside one message."""
    return bool(row.size <= MAX_FILE_BYTES)


def blob_batches(settings: Settings, rows: list[Any]) -> list[list[FileBlob]]:
    """The files as blobs, split into groups that each fit one message: at most
    ``MAX_FILES_PER_MESSAGE`` files and ``MAX_FILE_BYTES`` bytes together (the signed
    message must stay under the partner's 16 MiB inbox limit)."""
    groups: list[list[Any]] = []
    size = 0
    for row in rows:
        full = groups and (len(groups[-1]) == MAX_FILES_PER_MESSAGE or size + row.size > MAX_FILE_BYTES)
        if not groups or full:
            groups.append([])
            size = 0
        groups[-1].append(row)
        size += row.size
    return [blobs_of(settings, group) for group in groups]


def blobs_of(settings: Settings, rows: list[Any]) -> list[FileBlob]:
    from hub.desk.files import read_file_bytes

    blobs = []
    for row in rows:
        data = read_file_bytes(settings, row)
        blobs.append(
            FileBlob(
                name=row.filename,
                content_type=row.content_type,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                data=base64.b64encode(data).decode(),
            )
        )
    return blobs


async def ticket_files(
    session: AsyncSession, account_id: int, ticket_id: int, file_ids: list[int]
) -> list[Any]:
    """The chosen files of a ticket (EX-4, EX-5), checked before anything is queued: 422
    ``file_not_found`` for one not on the ticket, 413 ``file_too_large_for_partner`` for one
    that can never fit a message."""
    if not file_ids:
        return []
    from hub.desk.models import TicketFile

    rows = list(
        await session.scalars(
            select(TicketFile)
            .where(
                TicketFile.account_id == account_id,
                TicketFile.ticket_id == ticket_id,
                TicketFile.id.in_(set(file_ids)),
            )
            .order_by(TicketFile.id)
        )
    )
    if len(rows) != len(set(file_ids)):
        raise Unprocessable("A chosen file is not on this ticket", code="file_not_found")
    for row in rows:
        if not fits_partner(row):
            raise PayloadTooLarge(
                f"{row.filename}: files passed to a partner may have at most {MAX_FILE_BYTES} bytes",
                code="file_too_large_for_partner",
            )
    return rows


def to_send_on(link: Any) -> ColumnElement[bool]:
    """The files of a shared ticket that go to the partner without being chosen, beyond the link's
    ``files_upto``: on a partner ticket (incoming) every public file of this account's own people
    (EX-6); on an original (outgoing) the files attached to a comment passed to the partner
    (EX-5). Never a file that came from a partner (no echo). ``link`` is the SharedTicket class
    (correlated, in the job's query) or one link."""
    from hub.desk.models import TicketFile
    from hub.exchange.models import PassedComment

    passed = select(PassedComment.comment_id).where(PassedComment.link_id == link.id)
    return and_(
        TicketFile.account_id == link.account_id,
        TicketFile.ticket_id == link.ticket_id,
        TicketFile.id > link.files_upto,
        TicketFile.uploaded_by_kind != "partner",
        or_(
            and_(link.direction == "incoming", TicketFile.public.is_(True)),
            and_(link.direction == "outgoing", TicketFile.comment_id.in_(passed)),
        ),
    )


async def files_to_send(session: AsyncSession, link: Any) -> list[Any]:
    from hub.desk.models import TicketFile

    return list(await session.scalars(select(TicketFile).where(to_send_on(link)).order_by(TicketFile.id)))


def check_blobs(blobs: list[FileBlob]) -> None:
    """400 ``message_malformed`` unless every file decodes to its size and hash."""
    for blob in blobs:
        _decode(blob)


def _decode(blob: FileBlob) -> bytes:
    try:
        data = base64.b64decode(blob.data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("A file is not valid base64", code="message_malformed") from exc
    if len(data) != blob.size or hashlib.sha256(data).hexdigest() != blob.sha256:
        raise BadRequest("A file does not match its size or hash", code="message_malformed")
    return data


async def store_blobs(
    session: AsyncSession,
    settings: Settings,
    account_id: int,
    ticket_id: int,
    actor: Actor,
    blobs: list[FileBlob],
    *,
    comment_id: int | None = None,
    public: bool,
) -> None:
    from hub.desk.files import attach_file

    for blob in blobs:
        await attach_file(
            session,
            settings,
            account_id,
            ticket_id,
            actor,
            filename=blob.name,
            content_type=blob.content_type,
            data=_decode(blob),
            comment_id=comment_id,
            public=public,
        )
