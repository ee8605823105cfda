"""Files crossing between partners: read from the desk's ticket files into signed blobs, and back."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contracts.exchange import FileBlob

__all__ = ["blobs_of_comment", "blobs_of_ticket_files", "store_blobs"]


async def blobs_of_ticket_files(
    session: AsyncSession, account_id: int, ticket_id: int, file_ids: list[int]
) -> list[FileBlob]:
    if not file_ids:
        return []
    raise NotImplementedError


async def blobs_of_comment(session: AsyncSession, account_id: int, comment: Any) -> list[FileBlob]:
    return []


async def store_blobs(
    session: AsyncSession, account_id: int, ticket: Any, comment: Any, blobs: list[FileBlob], *, public: bool
) -> None:
    if not blobs:
        return
    raise NotImplementedError
