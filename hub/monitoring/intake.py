"""MON-1 through the intake pipeline: how a monitoring centre's ticket request is taken in.

In the request (``MonitoringController.create_ticket``): the route's guard checks the monitoring key,
:func:`refuse_malformed` validates the body and ``Idempotency-Key`` (a malformed request is recorded
with :func:`hub.intake.reject` and answered with the same problem JSON as before), then
:func:`take_request` stores and applies it in one transaction with
:func:`hub.intake.worker.apply_inline`. Source ``monitoring``; dedupe key = the account and the
sender's ``Idempotency-Key`` (its event or alarm id: what made a duplicate before); order key = the
service object (account and object number); replay key = a hash of the decoded request (the same
key with another request is refused, 409 ``idempotency_key_reused``).

Why inline and not acknowledged early (202 and the intake event id): the monitoring software shows
the ticket number to its operator and links its alarm to the ticket, so the answer must carry
``ticket_id``/``number``/``status`` (``MonitoringTicketResult``, contract unchanged). A request
becomes a ticket in the request's own transaction, through the same source and outcome record the
worker would use, so nothing is acknowledged that is not created. The aim (>= 500 tickets/s) is a
matter of the ticket's own statements, not of answering before them.

The same alarm again (also concurrently: the second ``INSERT ... ON CONFLICT DO NOTHING`` waits for
the first to commit on PostgreSQL; SQLite has one writer) creates nothing and is answered with the
existing ticket, ``duplicate: true``. A request the ticket rules refuse (no object with that number)
is recorded as ``rejected`` and gives its key back: the sender may send it again once the object
exists, as it always could.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ClientException, ValidationException
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.monitoring import MonitoringTicketRequest, MonitoringTicketResult
from hub.auth.guards import principal_of
from hub.auth.principal import Principal
from hub.desk.models import Ticket
from hub.errors import Conflict, HubError
from hub.intake import Applied, EventView, Received, reject
from hub.intake.models import IntakeEvent, IntakeState
from hub.intake.worker import apply_inline
from hub.jobs import JobContext
from hub.monitoring import service
from hub.people.models import ServiceObject
from hub.webhooks.payments import client_address

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SOURCE",
    "MonitoringTickets",
    "parse",
    "received",
    "refuse_malformed",
    "take_request",
]

SOURCE = "monitoring"
IDEMPOTENCY_HEADER = "idempotency-key"
IDEMPOTENCY_KEY_MAX = 200
REFUSED_BODY_KEPT = 64 * 1024  # of a malformed request: enough to see what was wrong with it


async def refuse_malformed(request: Request[Any, Any, Any]) -> None:
    """``before_request`` of the route (after its guard checked the monitoring key, before the
    body is bound): a malformed request is recorded with :func:`reject`, then refused with the
    400 problem JSON it always had."""
    body = await request.body()
    key = request.headers.get(IDEMPOTENCY_HEADER)
    try:
        parse(body, key)
    except (ValidationException, ClientException) as exc:
        principal = principal_of(request)
        event = received(principal.account_id, principal.subject_id, body, None, key, client_address(request))
        code = "validation_error" if isinstance(exc, ValidationException) else "bad_request"
        await reject(request.app.state.jobs.db, event, code, f"{exc.detail} {exc.extra or ''}".strip())
        raise


async def take_request(
    request: Request[Any, Any, Any], principal: Principal, data: MonitoringTicketRequest, key: str | None
) -> MonitoringTicketResult:
    """Store and apply a valid request through the pipeline: the ticket it opened, or the one its
    ``Idempotency-Key`` opened before (``duplicate``). Raises the problem it is refused with."""
    jobs: JobContext = request.app.state.jobs
    body = await request.body()
    event = received(principal.account_id, principal.subject_id, body, data, key, client_address(request))
    applied = await apply_inline(jobs, event)
    if not isinstance(applied, Applied):  # the key was seen before
        async with jobs.db.sessionmaker() as session:
            return await earlier_ticket(session, event)
    if applied.outcome == "rejected":
        raise _refusal(applied)
    return msgspec.convert(applied.result, MonitoringTicketResult)


def _invalid(key: str, message: str, source: str = "body") -> ValidationException:
    # The shape Litestar gave these refusals when it validated the request itself.
    errors = [{"message": message, "key": key, "source": source}]
    return ValidationException(detail="Validation failed for POST /api/monitoring/tickets", extra=errors)


def parse(body: bytes, idempotency_key: str | None) -> MonitoringTicketRequest:
    """The validated request, or the 400 it is refused with: what Litestar answered when it bound
    the body itself (same codes, messages and error keys), so that the sender sees no change."""
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= IDEMPOTENCY_KEY_MAX:
        bound = ">= 1" if not idempotency_key else f"<= {IDEMPOTENCY_KEY_MAX}"
        raise _invalid("idempotency_key", f"Expected `str` of length {bound}", "header")
    if not body.strip():
        raise _invalid("data", "A JSON object is required")
    try:
        return msgspec.json.decode(body, type=MonitoringTicketRequest)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `$.")
        raise _invalid(where.rstrip("`").split(".")[0] or "data", message) from None
    except msgspec.DecodeError as exc:
        raise ClientException(str(exc)) from None


def received(
    account_id: int,
    api_key_id: int,
    body: bytes,
    data: MonitoringTicketRequest | None = None,
    idempotency_key: str | None = None,
    remote_addr: str | None = None,
) -> Received:
    """The request as the pipeline stores it. ``data`` is the validated body (None: malformed)."""
    event = Received(
        source=SOURCE,
        body=body.decode("utf-8", "replace")[: None if data else REFUSED_BODY_KEPT],
        account_id=account_id,
        endpoint_id=api_key_id,
        headers={IDEMPOTENCY_HEADER: idempotency_key} if idempotency_key else {},
        remote_addr=remote_addr,
    )
    if data is None:
        return event
    return replace(
        event,
        dedupe_key=f"{account_id}:{idempotency_key}" if idempotency_key else None,
        # The request as decoded, not its bytes: the same fields in another order are the same.
        replay_key=hashlib.sha256(msgspec.json.encode(data)).hexdigest(),
        order_key=f"{account_id}:{data.object_number.strip()}",
    )


def _refusal(applied: Applied) -> HubError:
    """The rules' refusal recorded on the event, as the error the request answers with."""
    error = HubError(applied.detail, code=applied.code)
    error.status = int((applied.result or {}).get("status") or 422)
    error.title = (applied.result or {}).get("title") or "Request cannot be applied"
    return error


async def earlier_ticket(session: AsyncSession, event: Received) -> MonitoringTicketResult:
    """The answer to a request whose ``Idempotency-Key`` was seen before: the ticket it created,
    ``duplicate: true``; 409 when the key came with another request or its ticket is on its way."""
    row = (
        await session.execute(
            select(IntakeEvent.state, IntakeEvent.replay_key, IntakeEvent.result).where(
                IntakeEvent.source == SOURCE, IntakeEvent.dedupe_key == event.dedupe_key
            )
        )
    ).first()
    if row is None:  # refused meanwhile, which gives the key back: the sender may try again
        raise Conflict("A request with this Idempotency-Key is in progress", code="idempotency_key_busy")
    if row.replay_key != event.replay_key:
        raise Conflict("This Idempotency-Key came with a different request", code="idempotency_key_reused")
    ticket_id = (row.result or {}).get("ticket_id")
    if row.state != IntakeState.DONE or ticket_id is None:
        raise Conflict("A request with this Idempotency-Key is in progress", code="idempotency_key_busy")
    ticket = (
        await session.execute(
            select(Ticket.id, Ticket.number, Ticket.status, ServiceObject.number)
            .outerjoin(ServiceObject, ServiceObject.id == Ticket.object_id)
            .where(Ticket.id == ticket_id)
        )
    ).first()
    if ticket is None:
        raise Conflict("The ticket of this request is gone", code="idempotency_key_reused")
    return MonitoringTicketResult(ticket[0], ticket[1], ticket[2], ticket[3] or "", duplicate=True)


class MonitoringTickets:
    """The intake source ``monitoring``: a monitoring centre's ticket request becomes a ticket."""

    name = SOURCE

    async def prepare(self, ctx: JobContext, event: EventView) -> MonitoringTicketRequest:
        return msgspec.json.decode(event.body, type=MonitoringTicketRequest)

    async def apply(
        self, session: AsyncSession, ctx: JobContext, event: EventView, prepared: MonitoringTicketRequest
    ) -> Applied:
        assert event.account_id is not None and event.endpoint_id is not None  # set by received()
        made = await service.open_monitoring_ticket(session, event.account_id, event.endpoint_id, prepared)
        return Applied(result=msgspec.to_builtins(made))

    async def refused(
        self, session: AsyncSession, ctx: JobContext, event: EventView, exc: Exception
    ) -> Applied | None:
        """The ticket rules refused it (no object with that number): recorded as rejected; the key
        is given back so that the same alarm, sent again once the object exists, opens its ticket."""
        if not isinstance(exc, HubError):
            return None
        await session.execute(
            update(IntakeEvent)
            .where(IntakeEvent.id == event.id)
            .values(dedupe_key=None)
            .execution_options(synchronize_session=False)
        )
        return Applied(
            "rejected", exc.code, exc.detail[:500], result={"status": exc.status, "title": exc.title}
        )
