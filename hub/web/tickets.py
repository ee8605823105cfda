"""The ticket list and the ticket page (ISSUE 13 journey 2; DESK-3..9 through the desk's services).

Every rule lives in :mod:`hub.desk.service` and :mod:`hub.desk.workflow`; these handlers only read
forms, call those services as the API does, and show the services' refusals on the page.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import UploadFile
from litestar.handlers import BaseRouteHandler
from litestar.response import File, Redirect, ServerSentEvent, Template
from sqlalchemy.ext.asyncio import AsyncSession

from hub.desk import files as desk_files
from hub.desk import service, visibility, workflow
from hub.desk.actors import Actor
from hub.desk.models import Ticket
from hub.desk.schemas import PriorityName, SourceName, TicketCreate, TypeName
from hub.errors import HubError, NotFound
from hub.live import sse_response
from hub.settings import Settings
from hub.web.live import desk_channel
from hub.web.lookups import employees_of, names_for, objects_for_filter
from hub.web.pages import page, redirect
from hub.web.session import WebSession, csrf_checked, signed_in, web_session

__all__ = ["TicketPages"]

PAGE_SIZE = 50
STATUSES = workflow.STATUSES
SOURCES: tuple[str, ...] = SourceName.__args__  # type: ignore[attr-defined]
PRIORITIES: tuple[str, ...] = PriorityName.__args__  # type: ignore[attr-defined]
TYPES: tuple[str, ...] = TypeName.__args__  # type: ignore[attr-defined]
FLAGS = ("needs_reply", "important", "sla_breached")


def _id(raw: Any) -> int | None:
    text = str(raw or "").strip()
    return int(text) if text.isdigit() and 0 < int(text) < 2**62 else None


def _filters(request: Request[Any, Any, Any]) -> tuple[service.TicketFilters, dict[str, Any]]:
    """The DESK-9 filters from the query string (unknown values are dropped, not refused: a page
    opened from an old bookmark still shows a list), and what the form shows back."""
    query = request.query_params
    statuses = [s for s in query.getall("status", []) if s in STATUSES]
    sources = [s for s in query.getall("source", []) if s in SOURCES]
    flags = {flag: True for flag in FLAGS if query.get(flag) == "1"}
    responsible_id, object_id = _id(query.get("responsible_id")), _id(query.get("object_id"))
    company_id, contact_id = _id(query.get("company_id")), _id(query.get("contact_id"))
    q = (query.get("q") or "")[:200]
    view = "new" if query.get("view") == "new" else "all"
    filters = service.TicketFilters(
        status=statuses or None,
        view=view,
        responsible_id=responsible_id,
        object_id=object_id,
        company_id=company_id,
        contact_id=contact_id,
        source=sources or None,
        needs_reply=flags.get("needs_reply"),
        important=flags.get("important"),
        sla_breached=flags.get("sla_breached"),
        q=q or None,
    )
    chosen = {
        "status": statuses,
        "source": sources,
        "responsible_id": responsible_id,
        "object_id": object_id,
        "company_id": company_id,
        "contact_id": contact_id,
        "q": q,
        "view": view,
        **flags,
    }
    return filters, chosen


async def ticket_visible(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """DESK-12 on every page that names a ticket: the API's rule and the API's answer (the 404
    page, as for another account's ticket)."""
    ticket_id = connection.path_params.get("ticket_id")
    if ticket_id is None:
        return
    session = await web_session(connection)
    if session.principal is None:
        return  # not signed in: the page itself leads to sign-in (keeping a half-written comment)
    async with connection.app.state.db.sessionmaker() as db_session:
        await visibility.require_ticket(db_session, session.principal, int(ticket_id))


def _query_without_cursor(request: Request[Any, Any, Any]) -> str:
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k not in ("cursor", "partial")]
    return urlencode(pairs)


def _actions(ticket: Ticket, role: str | None) -> list[tuple[str, frozenset[str]]]:
    """The status changes this employee may offer on this ticket, with what each needs (DESK-4):
    closing a resolved ticket only for the roles the rule names, and then with a comment."""
    offered = []
    for to in workflow.allowed_from(ticket.status):
        rule = workflow.TRANSITIONS[(ticket.status, to)]
        if rule.previous_only and to != ticket.status_before_pending:
            continue
        if rule.staff_roles and role not in rule.staff_roles:
            continue
        offered.append((to, rule.needs | ({"comment"} if rule.staff_roles else set())))
    return offered


def _until(form: Any) -> datetime | None:
    """``datetime-local`` is the browser's wall clock: its offset travels beside it (minutes
    behind UTC, as ``Date.getTimezoneOffset`` says)."""
    raw = str(form.get("until") or "").strip()
    if not raw:
        return None
    try:
        local = datetime.fromisoformat(raw)
        offset = int(str(form.get("tz_offset") or "0"))
    except ValueError:
        return None
    return (local + timedelta(minutes=offset)).replace(tzinfo=UTC)


class TicketPages(Controller):
    path = "/tickets"
    guards = [signed_in, csrf_checked, ticket_visible]

    @get("/")
    async def list_page(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Template:
        session = await web_session(request)
        assert session.principal is not None
        account_id = session.principal.account_id
        filters, chosen = _filters(request)
        cursor = request.query_params.get("cursor") or None
        viewer = await visibility.viewer_of(db_session, session.principal)
        rows, next_cursor = await service.list_tickets(
            db_session,
            account_id,
            filters,
            cursor=cursor,
            limit=PAGE_SIZE,
            visible=visibility.ticket_clause(viewer),
        )
        names = await names_for(db_session, account_id, rows)
        template = (
            "tickets/rows.html" if request.query_params.get("partial") == "rows" else "tickets/list.html"
        )
        return page(
            request,
            session,
            template,
            tickets=rows,
            names=names,
            chosen=chosen,
            cursor=cursor,
            next_cursor=next_cursor,
            base_query=_query_without_cursor(request),
            objects=await objects_for_filter(db_session, account_id, chosen["object_id"]),
            statuses=STATUSES,
            sources=SOURCES,
            flags=FLAGS,
        )

    @get("/live")
    async def live(self, request: Request[Any, Any, Any]) -> ServerSentEvent:
        """Changes of the account's tickets as they happen (the open list and ticket pages reload
        what changed)."""
        session = await web_session(request)
        assert session.principal is not None
        return sse_response(request, [desk_channel(session.principal.account_id)])

    @get("/new")
    async def new_form(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Template:
        session = await web_session(request)
        return await self._new_page(request, session, db_session, form={}, error="")

    async def _new_page(
        self,
        request: Request[Any, Any, Any],
        session: WebSession,
        db_session: AsyncSession,
        *,
        form: dict[str, Any],
        error: str,
        status_code: int = 200,
    ) -> Template:
        assert session.principal is not None
        account_id = session.principal.account_id
        return page(
            request,
            session,
            "tickets/new.html",
            status_code=status_code,
            form=form,
            error=error,
            employees=await employees_of(db_session, account_id),
            objects=await objects_for_filter(db_session, account_id, _id(form.get("object_id"))),
            priorities=PRIORITIES,
            types=TYPES,
            sources=SOURCES,
        )

    @post("/new")
    async def create(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Template | Redirect:
        session = await web_session(request)
        assert session.principal is not None
        form = {k: str(v) for k, v in (await request.form()).items() if isinstance(v, str)}
        fields: dict[str, str | int | None] = {
            k: form.get(k) for k in ("title", "description", "priority", "type", "source")
        }
        fields |= {k: _id(form.get(k)) for k in ("object_id", "responsible_id")}
        try:
            data = msgspec.convert({k: v for k, v in fields.items() if v not in (None, "")}, TicketCreate)
            ticket = await service.create_ticket(
                db_session, session.principal.account_id, Actor.from_principal(session.principal), data
            )
        except (msgspec.ValidationError, HubError) as exc:
            await db_session.rollback()
            error = _refusal(session, exc)
            return await self._new_page(request, session, db_session, form=form, error=error, status_code=422)
        return redirect(f"/tickets/{ticket.id}?done=created")

    @get("/{ticket_id:int}")
    async def ticket_page(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, ticket_id: int
    ) -> Template:
        session = await web_session(request)
        return await _ticket_page(request, session, db_session, ticket_id, error="")

    @post("/{ticket_id:int}/status")
    async def change_status(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, ticket_id: int
    ) -> Template | Redirect:
        session = await web_session(request)
        assert session.principal is not None
        account_id, actor = session.principal.account_id, Actor.from_principal(session.principal)
        form = await request.form()
        try:
            responsible = _id(form.get("responsible_id"))
            if responsible is not None:
                await service.update_ticket(
                    db_session, account_id, ticket_id, actor, {"responsible_id": responsible}
                )
            await service.change_status(
                db_session,
                account_id,
                ticket_id,
                actor,
                str(form.get("status", "")),
                comment=str(form.get("comment") or "") or None,
                until=_until(form),
            )
        except HubError as exc:
            return await _refused(request, session, db_session, ticket_id, exc)
        return redirect(f"/tickets/{ticket_id}?done=status")

    @post("/{ticket_id:int}/assign")
    async def assign(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, ticket_id: int
    ) -> Template | Redirect:
        session = await web_session(request)
        assert session.principal is not None
        form = await request.form()
        changes = {
            "responsible_id": _id(form.get("responsible_id")),
            "executor_ids": sorted({i for i in map(_id, form.getall("executor_ids", [])) if i}),
        }
        try:
            await service.update_ticket(
                db_session,
                session.principal.account_id,
                ticket_id,
                Actor.from_principal(session.principal),
                changes,
            )
        except HubError as exc:
            return await _refused(request, session, db_session, ticket_id, exc)
        return redirect(f"/tickets/{ticket_id}?done=saved")

    @post("/{ticket_id:int}/comments", request_max_body_size=None)
    async def comment(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, settings: Settings, ticket_id: int
    ) -> Template | Redirect:
        session = await web_session(request)
        assert session.principal is not None
        account_id, actor = session.principal.account_id, Actor.from_principal(session.principal)
        form = await request.form()
        public = form.get("public") == "1"
        uploads = [u for u in form.getall("file", []) if isinstance(u, UploadFile) and u.filename]
        try:
            comment = await service.add_comment(
                db_session,
                account_id,
                ticket_id,
                actor,
                str(form.get("body") or ""),
                public=public,
                important=form.get("important") == "1",
            )
            for upload in uploads:
                await desk_files.attach_file(
                    db_session,
                    settings,
                    account_id,
                    ticket_id,
                    actor,
                    filename=upload.filename,
                    content_type=upload.content_type,
                    data=await upload.read(),
                    comment_id=comment.id,
                    public=public,
                )
        except HubError as exc:
            return await _refused(request, session, db_session, ticket_id, exc)
        return redirect(f"/tickets/{ticket_id}?done=comment#comments")

    @get("/{ticket_id:int}/files/{file_id:int}")
    async def download(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        settings: Settings,
        ticket_id: int,
        file_id: int,
    ) -> File:
        session = await web_session(request)
        assert session.principal is not None
        row = await desk_files.get_file(db_session, session.principal.account_id, ticket_id, file_id)
        # Images open in the page (preview); everything else downloads.
        inline = request.query_params.get("inline") == "1" and row.content_type.startswith("image/")
        return File(
            path=desk_files.file_path(settings, row),
            filename=row.filename,
            media_type=row.content_type,
            content_disposition_type="inline" if inline else "attachment",
            headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"},
        )


def _refusal(session: WebSession, exc: Exception) -> str:
    if isinstance(exc, HubError):
        return session.gettext(f"error.{exc.code}") or exc.detail
    return str(exc)


async def _refused(
    request: Request[Any, Any, Any],
    session: WebSession,
    db_session: AsyncSession,
    ticket_id: int,
    exc: HubError,
) -> Template:
    """The ticket page again with the service's refusal; nothing of the refused change is kept."""
    if isinstance(exc, NotFound):
        raise exc
    await db_session.rollback()
    return await _ticket_page(
        request, session, db_session, ticket_id, error=_refusal(session, exc), status_code=exc.status
    )


async def _ticket_page(
    request: Request[Any, Any, Any],
    session: WebSession,
    db_session: AsyncSession,
    ticket_id: int,
    *,
    error: str,
    status_code: int = 200,
) -> Template:
    assert session.principal is not None
    account_id = session.principal.account_id
    ticket = await service.get_ticket(db_session, account_id, ticket_id)
    executors, observers = (await service.people_of(db_session, [ticket.id]))[ticket.id]
    names = await names_for(db_session, account_id, [ticket])
    comments = await service.list_comments(db_session, account_id, ticket_id)
    files = await desk_files.list_files(db_session, account_id, ticket_id)
    history = await service.list_history(db_session, account_id, ticket_id)
    important = ticket.important
    if status_code == 200:
        # As the API's GET: opening the ticket clears the important flag for everyone after.
        await service.mark_seen(db_session, ticket, Actor.from_principal(session.principal))
    by_comment: dict[int | None, list[Any]] = {}
    for f in files:
        by_comment.setdefault(f.comment_id, []).append(f)
    return page(
        request,
        session,
        "tickets/page.html",
        status_code=status_code,
        ticket=ticket,
        important=important,
        names=names,
        executors=executors,
        observers=observers,
        comments=comments,
        files_by_comment=by_comment,
        history=history,
        actions=_actions(ticket, session.principal.role if session.principal else None),
        final=ticket.status in workflow.FINAL,
        error=error,
        done=request.query_params.get("done", ""),
    )
