"""The client app's routes for a ticket's conversation (DESK-11), beside the app's list and
create routes (``hub.monitoring.controllers``) under ``/api/app``."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import File
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.guards import app_users
from hub.auth.principal import Principal
from hub.client import service
from hub.client.schemas import ClientCommentRead, ClientFileRead, ClientReply, ClientStatusNote
from hub.desk import files as desk_files
from hub.desk.controllers import UploadOperation, comment_id_field, received_uploads
from hub.monitoring.schemas import AppTicketRead
from hub.paging import DEFAULT_LIMIT, Cursor, Limit, Page
from hub.settings import Settings

__all__ = ["ClientTicketController"]


class ClientTicketController(Controller):
    path = "/api/app/tickets"
    tags = ["client app"]
    guards = [app_users]

    @get("/", summary="The client's own tickets (client or author), newest first (DESK-11)")
    async def own_tickets(
        self,
        db_session: AsyncSession,
        principal: Principal,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[AppTicketRead]:
        rows, next_cursor = await service.own_tickets(db_session, principal, cursor=cursor, limit=limit)
        return Page(rows, next_cursor)

    @get("/{ticket_id:int}", summary="One ticket as the app shows it, with what the user may do (DESK-11)")
    async def get_ticket(
        self, ticket_id: int, db_session: AsyncSession, principal: Principal
    ) -> AppTicketRead:
        return await service.view(db_session, await service.ticket_of(db_session, principal, ticket_id))

    @get(
        "/{ticket_id:int}/comments", summary="The public conversation, oldest first, with its files (DESK-11)"
    )
    async def list_comments(
        self, ticket_id: int, db_session: AsyncSession, principal: Principal
    ) -> list[ClientCommentRead]:
        return await service.conversation(db_session, principal, ticket_id)

    @post("/{ticket_id:int}/comments", summary="Reply; the ticket then needs a reply from staff (DESK-11)")
    async def reply(
        self, ticket_id: int, data: ClientReply, db_session: AsyncSession, principal: Principal
    ) -> ClientCommentRead:
        return await service.reply(db_session, principal, ticket_id, data.body)

    @get("/{ticket_id:int}/files", summary="The ticket's public files (DESK-11)")
    async def list_files(
        self, ticket_id: int, db_session: AsyncSession, principal: Principal
    ) -> list[ClientFileRead]:
        return await service.public_files(db_session, principal, ticket_id)

    @post(
        "/{ticket_id:int}/files",
        summary="Send files (multipart field 'file', optional 'comment_id' of your reply) (DESK-11)",
        request_max_body_size=None,
        operation_class=UploadOperation,
    )
    async def upload_files(
        self,
        ticket_id: int,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        principal: Principal,
        settings: Settings,
    ) -> list[ClientFileRead]:
        await service.ticket_of(db_session, principal, ticket_id)
        uploads, form = await received_uploads(request, settings)
        files = [(u.filename, u.content_type, await u.read()) for u in uploads]
        return await service.attach(
            db_session, settings, principal, ticket_id, files, comment_id_field(form.get("comment_id"))
        )

    @get(
        "/{ticket_id:int}/files/{file_id:int}",
        summary="Download a public file",
        media_type="application/octet-stream",
    )
    async def download_file(
        self, ticket_id: int, file_id: int, db_session: AsyncSession, principal: Principal, settings: Settings
    ) -> File:
        row = await service.public_file(db_session, principal, ticket_id, file_id)
        return File(
            path=desk_files.file_path(settings, row),
            filename=row.filename,
            media_type=row.content_type,
            content_disposition_type="attachment",
        )

    @post(
        "/{ticket_id:int}/confirm", status_code=200, summary="Confirm a resolved ticket: it closes (DESK-11)"
    )
    async def confirm(self, ticket_id: int, db_session: AsyncSession, principal: Principal) -> AppTicketRead:
        return await service.confirm(db_session, principal, ticket_id)

    @post("/{ticket_id:int}/reopen", status_code=200, summary="Send a resolved ticket back (DESK-11)")
    async def reopen(
        self, ticket_id: int, data: ClientStatusNote, db_session: AsyncSession, principal: Principal
    ) -> AppTicketRead:
        return await service.reopen(db_session, principal, ticket_id, data.comment)

    @post(
        "/{ticket_id:int}/cancel",
        status_code=200,
        summary="Cancel your own request while nobody has taken it (DESK-11)",
    )
    async def cancel(
        self, ticket_id: int, data: ClientStatusNote, db_session: AsyncSession, principal: Principal
    ) -> AppTicketRead:
        return await service.cancel(db_session, principal, ticket_id, data.comment)
