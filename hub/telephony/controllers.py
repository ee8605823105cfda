"""Telephony HTTP API: PBX intake (two dialects), settings, call list, binding, click-to-call, live
stream, and the agent console page."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.params import Parameter
from litestar.response import ServerSentEvent
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.telephony import PbxEventReceived
from hub.auth.guards import administrators, employees
from hub.auth.principal import Principal
from hub.desk import visibility
from hub.desk.actors import Actor
from hub.errors import HubError
from hub.intake import Received, accept, reject
from hub.live import sse_response
from hub.paging import DEFAULT_LIMIT, Cursor, Limit, Page
from hub.schemas import updates_of
from hub.settings import Settings
from hub.telephony import intake, service
from hub.telephony.adapters import CanonicalEvent
from hub.telephony.console import console_page
from hub.telephony.models import TelephonySettings
from hub.telephony.schemas import (
    BindTicket,
    CallRead,
    MatchRead,
    OriginateRequest,
    TelephonySettingsRead,
    TelephonySettingsUpdate,
    TicketRef,
    TokenIssued,
)
from hub.webhooks.payments import client_address

__all__ = ["ConsoleController", "PbxIntakeController", "TelephonyController"]

TOKEN_HEADER = "x-pbx-token"
RefId = Annotated[int, Parameter(ge=1, le=2**62)]
FilterId = Annotated[int | None, Parameter(ge=1, le=2**62)]


def _presented_token(request: Request[Any, Any, Any], path_token: str | None) -> str | None:
    return path_token or request.headers.get(TOKEN_HEADER) or request.query_params.get("token")


async def _body_of(request: Request[Any, Any, Any], dialect: str) -> tuple[bytes, str]:
    """The event's bytes and content type. Some PBX bridges post the CTI fields as a multipart
    form: same fields, other envelope, kept as the equivalent urlencoded form."""
    content_type = request.headers.get("content-type", "")
    if dialect == "cti" and content_type.startswith("multipart/form-data"):
        form = await request.form()
        pairs = [(key, str(value)) for key, value in form.multi_items()]
        return urlencode(pairs).encode(), "application/x-www-form-urlencoded"
    return await request.body(), content_type


async def _door(
    request: Request[Any, Any, Any], settings: TelephonySettings, dialect: str
) -> tuple[Received, bytes, str]:
    """What reached the door from this PBX, with the event's bytes and content type."""
    body, content_type = await _body_of(request, dialect)
    door = intake.received(settings, dialect, body, content_type, client_address(request))
    return door, body, content_type


async def _take(
    request: Request[Any, Any, Any], db_session: AsyncSession, token: str | None, dialect: str
) -> tuple[CanonicalEvent, bool]:
    """Authenticate, parse and store one PBX event in the request's transaction: the event, and
    whether it is new (False: the PBX sent it before). A refusal by a known PBX (switched off,
    malformed) is recorded for its account and raised; an unknown token is refused unrecorded
    (there is nobody to show it to, and recording it would let anyone fill the table)."""
    try:
        settings = await service.authenticate_pbx(request.app.state.db, _presented_token(request, token))
    except service.TelephonyDisabled as refusal:
        door, _, _ = await _door(request, refusal.settings, dialect)
        await _record_refusal(request, db_session, door, refusal)
        raise
    door, body, content_type = await _door(request, settings, dialect)
    try:
        event = intake.parse(dialect, body, content_type)
    except HubError as refusal:
        await _record_refusal(request, db_session, door, refusal)
        raise
    return event, await accept(request.app.state.db, intake.keyed(door, event, body)) == "stored"


async def _record_refusal(
    request: Request[Any, Any, Any], db_session: AsyncSession, door: Received, refusal: HubError
) -> None:
    # The request's transaction holds a connection (SQLite's only one): end it first.
    await db_session.rollback()
    await reject(request.app.state.db, door, refusal.code, refusal.detail)


def _settings_read(row: TelephonySettings, settings: Settings) -> TelephonySettingsRead:
    base = settings.server.public_url
    return TelephonySettingsRead(
        enabled=row.enabled,
        token_set=row.token_hash is not None,
        token_hint=row.token_hint,
        originate_url=row.originate_url,
        originate_auth=row.originate_auth,
        originate_username=row.originate_username,
        originate_secret_set=bool(row.originate_secret),
        match_digits=row.match_digits,
        region=row.region,
        stale_call_minutes=row.stale_call_minutes,
        event_url=f"{base}/api/telephony/pbx/events/{{token}}",
        cti_url=f"{base}/api/telephony/cti/{{token}}",
    )


class PbxIntakeController(Controller):
    """Where the PBX posts. Authenticated by the account's PBX token (URL or ``X-PBX-Token``).

    Parsed and stored in the request, answered "received", applied by the intake worker
    (:mod:`hub.telephony.intake`, which also says why the answer comes before the apply)."""

    path = "/api/telephony"
    tags = ["telephony: PBX intake"]

    async def _hub(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, token: str | None
    ) -> PbxEventReceived:
        event, stored = await _take(request, db_session, token, "hub")
        return PbxEventReceived(event.call_id, event.kind, "received" if stored else "duplicate")

    async def _cti(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, token: str | None
    ) -> dict[str, Any]:
        await _take(request, db_session, token, "cti")
        return {}  # what generic-CTI PBXes expect when nothing is to be rejected or redirected

    @post(
        "/pbx/events/{token:str}",
        exclude_from_auth=True,
        status_code=200,
        summary="PBX event (hub JSON), token in the URL",
    )
    async def hub_event_with_token(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, token: str
    ) -> PbxEventReceived:
        """TEL-2: one event of the hub's JSON contract (``contracts/schemas/telephony.pbx_event*``)."""
        return await self._hub(request, db_session, token)

    @post(
        "/pbx/events",
        exclude_from_auth=True,
        status_code=200,
        summary="PBX event (hub JSON), token in X-PBX-Token",
    )
    async def hub_event(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> PbxEventReceived:
        return await self._hub(request, db_session, None)

    @post(
        "/cti/{token:str}",
        exclude_from_auth=True,
        status_code=200,
        summary="Generic CTI event (form or JSON)",
    )
    async def cti_event_with_token(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, token: str
    ) -> dict[str, Any]:
        """TEL-2: ``event=newCall|answer|hangup``, ``from``, ``to``, ``direction``, ``callId``,
        ``user[]``, ``answeringNumber``, ``cause``. Answers ``{}``."""
        return await self._cti(request, db_session, token)

    @post("/cti", exclude_from_auth=True, status_code=200, summary="Generic CTI event, token in X-PBX-Token")
    async def cti_event(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> dict[str, Any]:
        return await self._cti(request, db_session, None)


class TelephonyController(Controller):
    path = "/api/telephony"
    tags = ["telephony"]

    # --- settings (TEL-1)
    @get("/settings", guards=[administrators], summary="PBX settings of the account")
    async def get_settings(
        self, db_session: AsyncSession, principal: Principal, settings: Settings
    ) -> TelephonySettingsRead:
        row = await service.get_or_create_settings(db_session, principal.account_id)
        return _settings_read(row, settings)

    @put("/settings", guards=[administrators], summary="Change PBX settings")
    async def put_settings(
        self,
        data: TelephonySettingsUpdate,
        db_session: AsyncSession,
        principal: Principal,
        settings: Settings,
    ) -> TelephonySettingsRead:
        row = await service.update_settings(db_session, principal.account_id, updates_of(data))
        return _settings_read(row, settings)

    @post(
        "/settings/token",
        guards=[administrators],
        status_code=201,
        summary="Generate a new PBX token (shown once)",
    )
    async def new_token(
        self, db_session: AsyncSession, principal: Principal, settings: Settings
    ) -> TokenIssued:
        token = await service.issue_token(db_session, principal.account_id)
        base = settings.server.public_url
        return TokenIssued(
            token, f"{base}/api/telephony/pbx/events/{token}", f"{base}/api/telephony/cti/{token}"
        )

    # --- caller match (TEL-3)
    @get("/match", guards=[employees], summary="Who is calling from this number (every match, up to 20)")
    async def match(
        self,
        db_session: AsyncSession,
        principal: Principal,
        number: Annotated[str, Parameter(min_length=1, max_length=64)],
    ) -> list[MatchRead]:
        row = await service.get_or_create_settings(db_session, principal.account_id)
        return await service.match_caller(db_session, row, number)

    # --- live pop-ups (TEL-4)
    @get(
        "/stream",
        guards=[employees],
        summary="Server-Sent Events: this employee's pop-ups and call-list updates",
    )
    async def stream(self, request: Request[Any, Any, Any], principal: Principal) -> ServerSentEvent:
        """Frames: ``call.ringing`` / ``call.outgoing`` (pop-up with ``matches`` and ``tickets``),
        ``call.answered``, ``call.ended`` (close it), ``call.updated`` (call list). Catches up
        with ``Last-Event-ID`` or ``?last_event_id=``."""
        channels = [
            service.employee_channel(principal.account_id, principal.subject_id),
            service.calls_channel(principal.account_id),
        ]
        return sse_response(request, channels)

    # --- call list (TEL-6)
    @get("/calls", guards=[employees], summary="Call list, newest first")
    async def list_calls(
        self,
        db_session: AsyncSession,
        principal: Principal,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        direction: Literal["in", "out"] | None = None,
        employee_id: FilterId = None,
        missed: bool | None = None,
        contact_id: FilterId = None,
        company_id: FilterId = None,
        ticket_id: FilterId = None,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[CallRead]:
        viewer = await visibility.viewer_of(db_session, principal)
        if ticket_id is not None and not await visibility.can_see(db_session, viewer, ticket_id):
            return Page([], None)  # what a ticket of no account of ours lists (DESK-12)
        filters = service.CallFilters(
            date_from, date_to, direction, employee_id, missed, contact_id, company_id, ticket_id
        )
        calls, next_cursor = await service.list_calls(
            db_session, principal.account_id, filters, cursor=cursor, limit=limit
        )
        return Page(
            await service.read_calls(db_session, principal.account_id, calls, viewer=viewer), next_cursor
        )

    @get("/calls/{call_id:int}", guards=[employees], summary="One call with its tickets")
    async def get_call(self, db_session: AsyncSession, principal: Principal, call_id: RefId) -> CallRead:
        call = await service.get_call(db_session, principal.account_id, call_id)
        viewer = await visibility.viewer_of(db_session, principal)
        return (await service.read_calls(db_session, principal.account_id, [call], viewer=viewer))[0]

    # --- binding (TEL-5)
    @post(
        "/calls/{call_id:int}/tickets",
        guards=[employees],
        status_code=201,
        summary="Bind the call to a ticket",
    )
    async def bind(
        self, data: BindTicket, db_session: AsyncSession, principal: Principal, call_id: RefId
    ) -> TicketRef:
        ticket_id = await service.ticket_to_bind(
            db_session, principal.account_id, data.ticket_id, data.ticket_number
        )
        await visibility.require_ticket(db_session, principal, ticket_id)
        binding = await service.bind_ticket(
            db_session, principal.account_id, call_id, ticket_id, Actor.from_principal(principal)
        )
        return TicketRef(binding.ticket_id, automatic=binding.automatic)

    @delete(
        "/calls/{call_id:int}/tickets/{ticket_id:int}", guards=[employees], status_code=204, summary="Unbind"
    )
    async def unbind(
        self, db_session: AsyncSession, principal: Principal, call_id: RefId, ticket_id: RefId
    ) -> None:
        await visibility.require_ticket(db_session, principal, ticket_id)
        await service.unbind_ticket(
            db_session, principal.account_id, call_id, ticket_id, Actor.from_principal(principal)
        )

    @get(
        "/tickets/{ticket_id:int}/calls",
        guards=[employees],
        summary="The calls bound to a ticket, newest first",
    )
    async def ticket_calls(
        self,
        db_session: AsyncSession,
        principal: Principal,
        ticket_id: RefId,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[CallRead]:
        viewer = await visibility.require_ticket(db_session, principal, ticket_id)
        return await service.calls_of_ticket(
            db_session, principal.account_id, ticket_id, viewer=viewer, cursor=cursor, limit=limit
        )

    # --- click-to-call (TEL-7)
    @post(
        "/originate",
        guards=[employees],
        status_code=202,
        summary="Ask the PBX to call a client from my extension",
    )
    async def originate(
        self, data: OriginateRequest, db_session: AsyncSession, principal: Principal
    ) -> CallRead:
        """The PBX rings the employee's extension, then dials ``number``. Delivered through the
        outbox with bounded retries; the call's ``originate_state`` tells pending / sent / failed."""
        call = await service.originate(db_session, principal.account_id, principal.subject_id, data)
        return (await service.read_calls(db_session, principal.account_id, [call]))[0]


class ConsoleController(Controller):
    """The agent console: a plain page that signs in through /api/auth/login (no credentials here)."""

    path = "/console"
    include_in_schema = False

    @get("/", exclude_from_auth=True, media_type="text/html", cache_control=None)
    async def page(self) -> Response[str]:
        return Response(console_page(), media_type="text/html", headers={"Cache-Control": "no-cache"})
