"""Partner exchange API: pairing keys, connections, transfer and resolution, and the two
hub-to-hub endpoints (handshake, inbox) that authenticate by signature instead of a login."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.exchange import MAX_INBOX_BYTES, InboxResult, SignedToken
from hub.auth.guards import administrators, dispatchers, employees
from hub.auth.principal import Principal
from hub.desk import visibility
from hub.desk.actors import Actor
from hub.exchange import held, service
from hub.exchange.inbox import receive
from hub.exchange.schemas import (
    ConnectByKey,
    ConnectionRead,
    PairingKeyCreate,
    PairingKeyIssued,
    PairingKeyRead,
    PartnerFiles,
    PartnerLinkRead,
    PartnerRate,
    PartnerSendBack,
    TransferCreate,
)
from hub.paging import DEFAULT_LIMIT, Cursor, Limit, Page
from hub.settings import Settings

__all__ = ["EXCHANGE_CONTROLLERS", "ExchangeController", "HubToHubController", "PartnerTicketController"]


class ExchangeController(Controller):
    path = "/api/exchange"
    tags = ["exchange"]

    @post("/pairing-keys", guards=[administrators], summary="Generate a pairing key (shown once, EX-1)")
    async def issue_key(
        self, data: PairingKeyCreate, db_session: AsyncSession, principal: Principal, settings: Settings
    ) -> PairingKeyIssued:
        record, key = await service.issue_pairing_key(
            db_session, principal.account_id, principal.subject_id, settings, data
        )
        return PairingKeyIssued(
            key=key, hub_url=settings.server.public_url, pairing_key=service.pairing_key_read(record)
        )

    @get(
        "/pairing-keys",
        guards=[administrators],
        summary="Pairing keys issued, newest first (never the key itself)",
    )
    async def list_keys(
        self,
        db_session: AsyncSession,
        principal: Principal,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[PairingKeyRead]:
        rows, next_cursor = await service.list_pairing_keys(
            db_session, principal.account_id, cursor=cursor, limit=limit
        )
        return Page([service.pairing_key_read(row) for row in rows], next_cursor)

    @delete(
        "/pairing-keys/{pairing_key_id:int}", guards=[administrators], status_code=200, summary="Revoke a key"
    )
    async def revoke_key(
        self, pairing_key_id: int, db_session: AsyncSession, principal: Principal
    ) -> PairingKeyRead:
        record = await service.revoke_pairing_key(db_session, principal.account_id, pairing_key_id)
        return service.pairing_key_read(record)

    @post("/connections", guards=[administrators], summary="Connect with a partner's pairing key (EX-2)")
    async def connect(
        self, data: ConnectByKey, request: Request[Any, Any, Any], principal: Principal, settings: Settings
    ) -> ConnectionRead:
        # No request transaction here: the handshake calls the issuing hub, which may be this process.
        state = request.app.state
        connection = await service.connect_with_key(
            state.db, state.jobs.http, settings, principal.account_id, data.key
        )
        async with state.db.sessionmaker() as session:
            return await service.connection_read(session, connection)

    @get(
        "/connections",
        guards=[employees],
        summary="Partner connections with delivery status, oldest first (EX-3)",
    )
    async def list_connections(
        self,
        db_session: AsyncSession,
        principal: Principal,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[ConnectionRead]:
        rows, next_cursor = await service.list_connections(
            db_session, principal.account_id, cursor=cursor, limit=limit
        )
        return Page([await service.connection_read(db_session, row) for row in rows], next_cursor)

    @get("/connections/{connection_id:int}", guards=[employees], summary="One partner connection")
    async def get_connection(
        self, connection_id: int, db_session: AsyncSession, principal: Principal
    ) -> ConnectionRead:
        row = await service.get_connection(db_session, principal.account_id, connection_id)
        return await service.connection_read(db_session, row)

    @post(
        "/connections/{connection_id:int}/disconnect",
        guards=[administrators],
        status_code=200,
        summary="End the connection; the partner is told and nothing more passes (EX-3)",
    )
    async def disconnect(
        self, connection_id: int, db_session: AsyncSession, principal: Principal
    ) -> ConnectionRead:
        row = await service.disconnect(
            db_session, principal.account_id, connection_id, Actor.from_principal(principal)
        )
        return await service.connection_read(db_session, row)

    @post(
        "/connections/{connection_id:int}/skip-gaps",
        guards=[administrators],
        status_code=200,
        summary="Skip message numbers the partner lost for good and apply what waits behind them (EX-10)",
    )
    async def skip_gaps(
        self, connection_id: int, db_session: AsyncSession, principal: Principal, settings: Settings
    ) -> ConnectionRead:
        row = await service.get_connection(db_session, principal.account_id, connection_id)
        await held.skip_gaps(db_session, settings, row, Actor.from_principal(principal))
        return await service.connection_read(db_session, row)


class PartnerTicketController(Controller):
    path = "/api/exchange/tickets"
    tags = ["exchange"]

    @post(
        "/{ticket_id:int}/transfer",
        guards=[dispatchers],
        summary="Transfer a ticket to a partner, with or without end-client data, with chosen files (EX-4)",
    )
    async def transfer(
        self,
        ticket_id: int,
        data: TransferCreate,
        db_session: AsyncSession,
        principal: Principal,
        settings: Settings,
    ) -> PartnerLinkRead:
        await visibility.require_ticket(db_session, principal, ticket_id)
        link = await service.transfer(
            db_session, settings, principal.account_id, ticket_id, Actor.from_principal(principal), data
        )
        links = await service.partner_links(db_session, principal.account_id, ticket_id)
        return next(item for item in links if item.id == link.id)

    @get(
        "/{ticket_id:int}/partner-link",
        guards=[employees],
        summary="The partner tickets of a ticket: number, status, responsible (EX-7)",
    )
    async def partner_link(
        self, ticket_id: int, db_session: AsyncSession, principal: Principal
    ) -> list[PartnerLinkRead]:
        await visibility.require_ticket(db_session, principal, ticket_id)
        return await service.partner_links(db_session, principal.account_id, ticket_id)

    @post(
        "/{ticket_id:int}/partner/rate",
        guards=[dispatchers],
        status_code=200,
        summary="Confirm the partner's resolution with a score; the partner ticket closes (EX-8)",
    )
    async def rate(
        self, ticket_id: int, data: PartnerRate, db_session: AsyncSession, principal: Principal
    ) -> list[PartnerLinkRead]:
        await visibility.require_ticket(db_session, principal, ticket_id)
        await service.rate_partner(
            db_session, principal.account_id, ticket_id, Actor.from_principal(principal), data
        )
        return await service.partner_links(db_session, principal.account_id, ticket_id)

    @post(
        "/{ticket_id:int}/partner/send-back",
        guards=[dispatchers],
        status_code=200,
        summary="Send the partner ticket back with a comment; it reopens (EX-8)",
    )
    async def send_back(
        self, ticket_id: int, data: PartnerSendBack, db_session: AsyncSession, principal: Principal
    ) -> list[PartnerLinkRead]:
        await visibility.require_ticket(db_session, principal, ticket_id)
        await service.send_back(
            db_session, principal.account_id, ticket_id, Actor.from_principal(principal), data
        )
        return await service.partner_links(db_session, principal.account_id, ticket_id)

    @post(
        "/{ticket_id:int}/partner/files",
        guards=[dispatchers],
        status_code=200,
        summary="Pass chosen files of the ticket to the partner; they are public there (EX-5)",
    )
    async def pass_files(
        self,
        ticket_id: int,
        data: PartnerFiles,
        db_session: AsyncSession,
        principal: Principal,
        settings: Settings,
    ) -> list[PartnerLinkRead]:
        await visibility.require_ticket(db_session, principal, ticket_id)
        await service.pass_files(
            db_session, settings, principal.account_id, ticket_id, Actor.from_principal(principal), data
        )
        return await service.partner_links(db_session, principal.account_id, ticket_id)


class HubToHubController(Controller):
    """Called by partner hubs; authenticated by Ed25519 signatures (see contracts/EXCHANGE.md)."""

    path = "/api/exchange"
    tags = ["exchange protocol"]

    @post(
        "/handshake",
        exclude_from_auth=True,
        status_code=200,
        summary="Pairing handshake from the acceptor's hub (EX-2)",
    )
    async def handshake(self, data: SignedToken, db_session: AsyncSession, settings: Settings) -> SignedToken:
        return await service.accept_handshake(db_session, settings, data)

    @post(
        "/inbox",
        exclude_from_auth=True,
        status_code=200,
        request_max_body_size=MAX_INBOX_BYTES,  # files travel inside the signature
        summary="One signed message from a partner hub (EX-10)",
    )
    async def inbox(self, data: SignedToken, db_session: AsyncSession, settings: Settings) -> InboxResult:
        return await receive(db_session, settings, data)


EXCHANGE_CONTROLLERS = [ExchangeController, PartnerTicketController, HubToHubController]
