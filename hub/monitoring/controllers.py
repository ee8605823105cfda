"""The monitoring-centre intake (MON-1) and the client app's API (MON-2..7)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter
from litestar.response import ServerSentEvent
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.monitoring import MonitoringTicketRequest, MonitoringTicketResult
from hub.auth.guards import app_users, integration
from hub.auth.principal import Principal
from hub.live import sse_response
from hub.monitoring import intake, service
from hub.monitoring.schemas import AppObjectRead, AppTicketCreate, AppTicketList, AppTicketRead, RatingCreate
from hub.monitoring.subscribers import app_channel

__all__ = ["MONITORING_CONTROLLERS", "AppController", "MonitoringController"]

IdempotencyKey = Annotated[
    str | None,
    Parameter(
        header="Idempotency-Key",
        min_length=1,
        max_length=intake.IDEMPOTENCY_KEY_MAX,
        required=False,
        description="The monitoring software's own event or alarm id: sent again, it opens no second ticket",
    ),
]


class MonitoringController(Controller):
    path = "/api/monitoring"
    tags = ["monitoring"]

    @post(
        "/tickets",
        guards=[integration("monitoring")],
        before_request=intake.refuse_malformed,
        summary="Open a service ticket for an object by its number (monitoring-centre key)",
    )
    async def create_ticket(
        self,
        request: Request[Any, Any, Any],
        data: MonitoringTicketRequest,
        principal: Principal,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[MonitoringTicketResult]:
        """Stored and applied at once through the intake pipeline (``hub.monitoring.intake``): 201
        with the ticket it opened, 200 with the one the same ``Idempotency-Key`` opened before."""
        result = await intake.take_request(request, principal, data, idempotency_key)
        return Response(result, status_code=200 if result.duplicate else 201)


class AppController(Controller):
    path = "/api/app"
    tags = ["client app"]

    @get("/objects", guards=[app_users], summary="The signed-in user's objects")
    async def list_objects(self, db_session: AsyncSession, principal: Principal) -> list[AppObjectRead]:
        return await service.list_objects(db_session, principal)

    @get(
        "/objects/{object_id:int}/tickets",
        guards=[app_users],
        summary="The object's last 20 tickets with the security company's header (first= puts one on top)",
    )
    async def list_tickets(
        self,
        object_id: int,
        db_session: AsyncSession,
        principal: Principal,
        first: Annotated[int | None, Parameter(ge=1, le=2**62)] = None,
    ) -> AppTicketList:
        return await service.list_app_tickets(db_session, principal, object_id, first=first)

    @post("/objects/{object_id:int}/tickets", guards=[app_users], summary="Send a service request")
    async def create_ticket(
        self, object_id: int, data: AppTicketCreate, db_session: AsyncSession, principal: Principal
    ) -> AppTicketRead:
        return await service.create_app_ticket(db_session, principal, object_id, data.description)

    @post("/tickets/{ticket_id:int}/rating", guards=[app_users], summary="Rate a finished ticket, once")
    async def rate(
        self, ticket_id: int, data: RatingCreate, db_session: AsyncSession, principal: Principal
    ) -> AppTicketRead:
        return await service.rate_app_ticket(db_session, principal, ticket_id, data.score, data.comment)

    @get("/stream", guards=[app_users], summary="Live ticket changes of the user's objects (SSE)")
    async def stream(self, request: Request[Any, Any, Any], principal: Principal) -> ServerSentEvent:
        return sse_response(request, [app_channel(principal.account_id, principal.contact_id or 0)])


MONITORING_CONTROLLERS = [MonitoringController, AppController]
