"""The desk's REST API for employees (DESK-3..9)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.datastructures import UploadFile
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import Parameter
from litestar.response import File
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import Employee
from hub.auth.guards import employees
from hub.auth.principal import Principal
from hub.desk import files as desk_files
from hub.desk import lists, service, visibility
from hub.desk.actors import Actor
from hub.desk.models import ActivityEntry, Comment, Ticket, TicketEvent, TicketFile
from hub.desk.schemas import (
    ActivityRead,
    CommentCreate,
    CommentRead,
    FileRead,
    HistoryRead,
    PriorityName,
    RatingCreate,
    SourceName,
    StatusChange,
    StatusName,
    TicketCreate,
    TicketFlags,
    TicketListItem,
    TicketRead,
    TicketUpdate,
    TypeName,
)
from hub.desk.search import TicketSort
from hub.errors import BadRequest, HubError, NotFound, PayloadTooLarge
from hub.paging import DEFAULT_LIMIT, Cursor, Limit, Page
from hub.people.models import Contact
from hub.schemas import to_read, updates_of
from hub.settings import Settings

__all__ = [
    "ContactActivityController",
    "TicketController",
    "UploadOperation",
    "received_uploads",
    "ticket_read",
]

FilterId = Annotated[int | None, Parameter(ge=1, le=2**62)]
FlagValue = Annotated[str, Parameter(min_length=1, max_length=40)]
# Ticket numbers are 32-bit: a larger one names no ticket (and must not reach the driver).
_MAX_NUMBER = 2**31 - 1
# Slack for the multipart envelope around one file.
_MULTIPART_OVERHEAD = 64 * 1024


@dataclass
class UploadOperation(Operation):
    """Documents the multipart body of the upload, which the handler parses itself (so it can
    refuse an oversized upload before reading it)."""

    def __post_init__(self) -> None:
        binary = Schema(type=OpenAPIType.STRING, format="binary")  # type: ignore[arg-type]
        self.request_body = RequestBody(
            required=True,
            content={
                "multipart/form-data": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        properties={
                            "file": Schema(
                                type=OpenAPIType.ARRAY, items=binary, description="One or more files"
                            ),
                            "comment_id": Schema(
                                type=OpenAPIType.INTEGER, minimum=1, description="Attach to this comment"
                            ),
                            "public": Schema(
                                type=OpenAPIType.BOOLEAN,
                                description="Staff: visible to the client (default false, DESK-6); "
                                "a client's files are always public",
                            ),
                        },
                        required=["file"],
                    )
                )
            },
        )


def _flags(ticket: Ticket) -> TicketFlags:
    return TicketFlags(
        needs_reply=ticket.needs_reply,
        important=ticket.important,
        sla_reaction_breached=ticket.sla_reaction_breached,
        sla_resolution_breached=ticket.sla_resolution_breached,
        sla_reply_overdue=ticket.sla_reply_overdue,
    )


async def _rater_name(session: AsyncSession, ticket: Ticket) -> str | None:
    """MON-7: the rating's author by name for the ticket's information (contact or employee)."""
    rater = ticket.rated_by_id
    if ticket.rated_by_kind == "contact":
        query = select(Contact.name).where(Contact.id == rater, Contact.account_id == ticket.account_id)
    elif ticket.rated_by_kind == "employee":
        query = select(Employee.name).where(Employee.id == rater, Employee.account_id == ticket.account_id)
    else:
        return None
    return await session.scalar(query)


async def ticket_read(
    session: AsyncSession, ticket: Ticket, *, people: tuple[list[int], list[int]] | None = None
) -> TicketRead:
    """The ticket as the API shows it; ``people`` (executors, observers) when the caller knows them."""
    executors, observers = people or (await service.people_of(session, [ticket.id]))[ticket.id]
    return TicketRead(
        id=ticket.id,
        number=ticket.number,
        title=ticket.title,
        description=ticket.description,
        type=ticket.type,
        priority=ticket.priority,
        status=ticket.status,
        source=ticket.source,
        company_id=ticket.company_id,
        contact_id=ticket.contact_id,
        object_id=ticket.object_id,
        responsible_id=ticket.responsible_id,
        executor_ids=executors,
        observer_ids=observers,
        reaction_due_at=ticket.reaction_due_at,
        resolution_due_at=ticket.resolution_due_at,
        reply_due_at=ticket.reply_due_at,
        repair_date=ticket.repair_date,
        rating_score=ticket.rating_score,
        rating_comment=ticket.rating_comment,
        rated_by_kind=ticket.rated_by_kind,
        rated_by_id=ticket.rated_by_id,
        rated_by_name=await _rater_name(session, ticket),
        created_by_kind=ticket.created_by_kind,
        created_by_id=ticket.created_by_id,
        operator_name=ticket.operator_name,
        flags=_flags(ticket),
        ext_flags=dict(ticket.ext_flags or {}),
        pending_until=ticket.pending_until,
        status_before_pending=ticket.status_before_pending,
        pending_for_client=ticket.pending_for_client,
        pending_seconds=ticket.pending_seconds,
        reacted_at=ticket.reacted_at,
        reaction_seconds=ticket.reaction_seconds,
        resolution_seconds=ticket.resolution_seconds,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        resolved_at=ticket.resolved_at,
        closed_at=ticket.closed_at,
    )


def _list_item(ticket: Ticket) -> TicketListItem:
    return TicketListItem(
        id=ticket.id,
        number=ticket.number,
        title=ticket.title,
        type=ticket.type,
        priority=ticket.priority,
        status=ticket.status,
        source=ticket.source,
        company_id=ticket.company_id,
        contact_id=ticket.contact_id,
        object_id=ticket.object_id,
        responsible_id=ticket.responsible_id,
        repair_date=ticket.repair_date,
        rating_score=ticket.rating_score,
        flags=_flags(ticket),
        ext_flags=dict(ticket.ext_flags or {}),
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
    )


def _comment_read(comment: Comment, file_ids: list[int] | None = None) -> CommentRead:
    return CommentRead(
        id=comment.id,
        ticket_id=comment.ticket_id,
        body=comment.body,
        public=comment.public,
        important=comment.important,
        author_kind=comment.author_kind,
        author_id=comment.author_id,
        author_name=comment.author_name,
        created_at=comment.created_at,
        file_ids=file_ids or [],
    )


def _history_read(event: TicketEvent, names: dict[int, str]) -> HistoryRead:
    client = event.actor_kind == "contact"
    return HistoryRead(
        id=event.id,
        kind=event.kind,
        actor_kind=event.actor_kind,
        actor_id=None if client else event.actor_id,
        actor_name=None if client else event.actor_name,
        data=dict(event.data or {}),
        created_at=event.created_at,
        names={str(i): names[i] for i in sorted(lists.mentioned_employees(event)) if i in names},
    )


async def _ticket_id_of(session: AsyncSession, account_id: int, number: int) -> int:
    if not 1 <= number <= _MAX_NUMBER:
        raise NotFound(f"No ticket #{number}", code="ticket_not_found")
    ticket_id = await session.scalar(
        select(Ticket.id).where(Ticket.account_id == account_id, Ticket.number == number)
    )
    if ticket_id is None:
        raise NotFound(f"No ticket #{number}", code="ticket_not_found")
    return ticket_id


def _bool(raw: Any, name: str) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise BadRequest(f"Field {name!r} must be a boolean", code="validation_error")


class TicketController(Controller):
    path = "/api/tickets"
    tags = ["desk"]
    guards = [employees]

    @post("/", summary="Create a ticket (DESK-3)")
    async def create_ticket(
        self, data: TicketCreate, db_session: AsyncSession, principal: Principal
    ) -> TicketRead:
        ticket = await service.create_ticket(
            db_session, principal.account_id, Actor.from_principal(principal), data
        )
        people = (sorted(set(data.executor_ids)), sorted(set(data.observer_ids)))
        return await ticket_read(db_session, ticket, people=people)

    @get("/", summary="Ticket list with filters, the new view, text search and keyset paging (DESK-9)")
    async def list_tickets(
        self,
        db_session: AsyncSession,
        principal: Principal,
        status: Annotated[list[StatusName] | None, Parameter(description="One or more statuses")] = None,
        view: Annotated[
            Literal["all", "new", "mine"],
            Parameter(description="new = open + reopened; mine = I am responsible or an executor"),
        ] = "all",
        order: Annotated[
            Literal["newest", "important_first"],
            Parameter(description="important_first: tickets with an important comment on top (DESK-6)"),
        ] = "newest",
        responsible_id: FilterId = None,
        object_id: FilterId = None,
        company_id: FilterId = None,
        contact_id: FilterId = None,
        source: list[SourceName] | None = None,
        priority: list[PriorityName] | None = None,
        type: list[TypeName] | None = None,
        needs_reply: bool | None = None,
        important: bool | None = None,
        sla_breached: bool | None = None,
        sla_reply_overdue: bool | None = None,
        invoice: Annotated[list[FlagValue] | None, Parameter(description="ext_flags.payment.invoice")] = None,
        refund: Annotated[list[FlagValue] | None, Parameter(description="ext_flags.payment.refund")] = None,
        payment_attention: bool | None = None,
        partner: Annotated[bool | None, Parameter(description="Shared with a partner (EX)")] = None,
        partner_status: Annotated[
            list[FlagValue] | None, Parameter(description="The partner's status")
        ] = None,
        q: Annotated[
            str | None,
            Parameter(
                max_length=200,
                description="Number, client, object address, title, description, public comments, phone",
            ),
        ] = None,
        sort: Annotated[
            TicketSort, Parameter(description="Order; `-` is descending (default: newest first)")
        ] = "-created_at",
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[TicketListItem]:
        filters = service.TicketFilters(
            status=list(status) if status else None,
            view=view,
            responsible_id=responsible_id,
            object_id=object_id,
            company_id=company_id,
            contact_id=contact_id,
            source=list(source) if source else None,
            priority=list(priority) if priority else None,
            type=list(type) if type else None,
            needs_reply=needs_reply,
            important=important,
            sla_breached=sla_breached,
            sla_reply_overdue=sla_reply_overdue,
            q=q,
            mine_of=principal.subject_id if view == "mine" else None,
            invoice=list(invoice) if invoice else None,
            refund=list(refund) if refund else None,
            payment_attention=payment_attention,
            partner=partner,
            partner_status=list(partner_status) if partner_status else None,
            order=order,
        )
        viewer = await visibility.viewer_of(db_session, principal)
        rows, next_cursor = await service.list_tickets(
            db_session,
            principal.account_id,
            filters,
            cursor=cursor,
            limit=limit,
            sort=sort,
            visible=visibility.ticket_clause(viewer),
        )
        return Page(items=[_list_item(t) for t in rows], next_cursor=next_cursor)

    @get(
        "/by-number/{ticket_number:int}",
        summary="One ticket by its number (the #n people say and write)",
        description="The same answer as `GET /api/tickets/{ticket_id}`; opening it clears the important "
        "flag.",
    )
    async def get_ticket_by_number(
        self,
        ticket_number: Annotated[int, Parameter(description="The ticket's number (#n)")],
        db_session: AsyncSession,
        principal: Principal,
    ) -> TicketRead:
        ticket_id = await _ticket_id_of(db_session, principal.account_id, ticket_number)
        ticket = await service.get_ticket(db_session, principal.account_id, ticket_id)
        read = await ticket_read(db_session, ticket)
        await service.mark_seen(db_session, ticket, Actor.from_principal(principal))
        return read

    @get("/{ticket_id:int}", summary="One ticket; opening it clears the important flag (DESK-6)")
    async def get_ticket(self, ticket_id: int, db_session: AsyncSession, principal: Principal) -> TicketRead:
        await visibility.require_ticket(db_session, principal, ticket_id)
        ticket = await service.get_ticket(db_session, principal.account_id, ticket_id)
        # The opener still sees the flag; it is cleared for everyone after.
        read = await ticket_read(db_session, ticket)
        await service.mark_seen(db_session, ticket, Actor.from_principal(principal))
        return read

    @patch("/{ticket_id:int}", summary="Change ticket fields, assignment, deadlines (DESK-3, DESK-7)")
    async def update_ticket(
        self, ticket_id: int, data: TicketUpdate, db_session: AsyncSession, principal: Principal
    ) -> TicketRead:
        await visibility.require_ticket(db_session, principal, ticket_id)
        ticket = await service.update_ticket(
            db_session, principal.account_id, ticket_id, Actor.from_principal(principal), updates_of(data)
        )
        return await ticket_read(db_session, ticket)

    @post("/{ticket_id:int}/status", status_code=200, summary="Change the status (DESK-4)")
    async def change_status(
        self, ticket_id: int, data: StatusChange, db_session: AsyncSession, principal: Principal
    ) -> TicketRead:
        await visibility.require_ticket(db_session, principal, ticket_id)
        ticket = await service.change_status(
            db_session,
            principal.account_id,
            ticket_id,
            Actor.from_principal(principal),
            data.status,
            comment=data.comment,
            until=data.until,
            for_client=data.waiting_for_client and data.status == "pending",
        )
        return await ticket_read(db_session, ticket)

    @post("/{ticket_id:int}/comments", summary="Add a public or private comment (DESK-6)")
    async def add_comment(
        self, ticket_id: int, data: CommentCreate, db_session: AsyncSession, principal: Principal
    ) -> CommentRead:
        await visibility.require_ticket(db_session, principal, ticket_id)
        comment = await service.add_comment(
            db_session,
            principal.account_id,
            ticket_id,
            Actor.from_principal(principal),
            data.body,
            public=data.public,
            important=data.important,
            context={"pass_to_partner": data.pass_to_partner},
        )
        return _comment_read(comment)

    @get("/{ticket_id:int}/comments", summary="Comments of a ticket, oldest first")
    async def list_comments(
        self,
        ticket_id: int,
        db_session: AsyncSession,
        principal: Principal,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[CommentRead]:
        await visibility.require_ticket(db_session, principal, ticket_id)
        comments, next_cursor = await lists.comments_page(
            db_session, principal.account_id, ticket_id, cursor=cursor, limit=limit
        )
        by_comment = await lists.file_ids_of(db_session, principal.account_id, [c.id for c in comments])
        return Page([_comment_read(c, by_comment.get(c.id)) for c in comments], next_cursor)

    @post(
        "/{ticket_id:int}/files",
        summary="Upload files (multipart field 'file', optional 'comment_id', 'public') (DESK-6)",
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
    ) -> list[FileRead]:
        await visibility.require_ticket(db_session, principal, ticket_id)
        actor = Actor.from_principal(principal)
        await service.get_ticket(db_session, principal.account_id, ticket_id)
        uploads, form = await received_uploads(request, settings)
        comment_id = comment_id_field(form.get("comment_id"))
        # DESK-6: staff files are private unless marked public (a comment's files follow it).
        public = _bool(form.get("public", "false"), "public")
        stored = []
        for upload in uploads:
            data = await upload.read()
            stored.append(
                await desk_files.attach_file(
                    db_session,
                    settings,
                    principal.account_id,
                    ticket_id,
                    actor,
                    filename=upload.filename,
                    content_type=upload.content_type,
                    data=data,
                    comment_id=comment_id,
                    public=public,
                )
            )
        return [to_read(FileRead, f) for f in stored]

    @get("/{ticket_id:int}/files", summary="Files of a ticket, oldest first")
    async def list_files(
        self,
        ticket_id: int,
        db_session: AsyncSession,
        principal: Principal,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[FileRead]:
        await visibility.require_ticket(db_session, principal, ticket_id)
        rows, next_cursor = await lists.files_page(
            db_session, principal.account_id, ticket_id, cursor=cursor, limit=limit
        )
        return Page([to_read(FileRead, f) for f in rows], next_cursor)

    @get(
        "/{ticket_id:int}/files/{file_id:int}",
        summary="Download a file",
        media_type="application/octet-stream",
    )
    async def download_file(
        self, ticket_id: int, file_id: int, db_session: AsyncSession, principal: Principal, settings: Settings
    ) -> File:
        await visibility.require_ticket(db_session, principal, ticket_id)
        row: TicketFile = await desk_files.get_file(db_session, principal.account_id, ticket_id, file_id)
        return File(
            path=desk_files.file_path(settings, row),
            filename=row.filename,
            media_type=row.content_type,
            content_disposition_type="attachment",
        )

    @delete(
        "/{ticket_id:int}/files/{file_id:int}",
        status_code=204,
        summary="Delete a file; the history keeps that it existed (DESK-6)",
    )
    async def delete_file(
        self, ticket_id: int, file_id: int, db_session: AsyncSession, principal: Principal, settings: Settings
    ) -> None:
        await visibility.require_ticket(db_session, principal, ticket_id)
        await desk_files.delete_file(
            db_session, settings, principal.account_id, ticket_id, file_id, Actor.from_principal(principal)
        )

    @get("/{ticket_id:int}/history", summary="History of a ticket, oldest first, with names (DESK-7)")
    async def history(
        self,
        ticket_id: int,
        db_session: AsyncSession,
        principal: Principal,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[HistoryRead]:
        await visibility.require_ticket(db_session, principal, ticket_id)
        rows, next_cursor = await lists.history_page(
            db_session, principal.account_id, ticket_id, cursor=cursor, limit=limit
        )
        mentioned = set().union(*(lists.mentioned_employees(e) for e in rows))
        names = await lists.employee_names(db_session, principal.account_id, mentioned)
        return Page([_history_read(e, names) for e in rows], next_cursor)

    @post("/{ticket_id:int}/rating", status_code=200, summary="Rate a resolved ticket; it closes (DESK-3)")
    async def rate(
        self, ticket_id: int, data: RatingCreate, db_session: AsyncSession, principal: Principal
    ) -> TicketRead:
        await visibility.require_ticket(db_session, principal, ticket_id)
        ticket = await service.rate_ticket(
            db_session,
            principal.account_id,
            ticket_id,
            Actor.from_principal(principal),
            data.score,
            data.comment,
        )
        return await ticket_read(db_session, ticket)


async def received_uploads(
    request: Request[Any, Any, Any], settings: Settings
) -> tuple[list[UploadFile], Any]:
    """The files of a multipart upload and its form, refusing an oversized one by its
    Content-Length before reading it (DESK-6)."""
    limit = settings.files.max_file_bytes * settings.files.max_files_per_ticket + _MULTIPART_OVERHEAD
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise HubError("Send the upload with a Content-Length", code="length_required")
    if int(length) > min(limit, settings.files.max_file_bytes + _MULTIPART_OVERHEAD):
        # One request carries one file's worth: anything bigger holds a file over the limit.
        raise PayloadTooLarge(
            f"A file may have at most {settings.files.max_file_bytes} bytes",
            code="file_too_large",
            max_file_bytes=settings.files.max_file_bytes,
        )
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HubError("Send files as multipart/form-data", code="multipart_required")
    form = await request.form()
    uploads = [v for v in form.getall("file") if isinstance(v, UploadFile)] if "file" in form else []
    if not uploads:
        raise BadRequest("No file in the 'file' field", code="file_missing")
    return uploads, form


def comment_id_field(raw: Any) -> int | None:
    if raw in (None, ""):
        return None
    try:
        value = int(str(raw))
    except ValueError:
        raise BadRequest("comment_id must be an integer", code="validation_error") from None
    if not 1 <= value <= 2**62:
        raise BadRequest("comment_id is out of range", code="validation_error")
    return value


class ContactActivityController(Controller):
    path = "/api/contacts"
    tags = ["desk"]

    @get(
        "/{contact_id:int}/activity",
        guards=[employees],
        summary="A contact's activity, newest first (DESK-8)",
    )
    async def activity(
        self,
        contact_id: int,
        db_session: AsyncSession,
        principal: Principal,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[ActivityRead]:
        viewer = await visibility.viewer_of(db_session, principal)
        rows, next_cursor = await lists.activity_page(
            db_session,
            principal.account_id,
            contact_id,
            cursor=cursor,
            limit=limit,
            visible=visibility.ticket_id_clause(viewer, ActivityEntry.ticket_id, unbound_visible=True),
        )
        return Page([msgspec.convert(r, ActivityRead, from_attributes=True) for r in rows], next_cursor)
