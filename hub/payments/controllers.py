"""Payments HTTP API: price list, payment accounts, invoices, refunds, the callback log."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Parameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts import permissions
from hub.accounts.models import Account, Permission
from hub.auth.guards import administrators, app_users, dispatchers, employees, principal_of
from hub.auth.principal import Principal
from hub.desk import visibility
from hub.desk.actors import Actor
from hub.errors import Forbidden, NotFound
from hub.paging import DEFAULT_LIMIT, Cursor, Key, Limit, Order, Page, by_id, fetch_page
from hub.payments import desk, service
from hub.payments.jobs import webhook_url
from hub.payments.models import CallbackAttempt, Invoice, PaymentAccount, PriceItem, Refund
from hub.payments.money import in_units
from hub.payments.schemas import (
    CallbackAttemptRead,
    InvoiceCreate,
    InvoiceLineCreate,
    InvoiceLineRead,
    InvoiceLineUpdate,
    InvoiceRead,
    MarkPaid,
    PaymentAccountCreate,
    PaymentAccountRead,
    PaymentAccountUpdate,
    PriceItemCreate,
    PriceItemRead,
    PriceItemUpdate,
    RefundCreate,
    RefundDecision,
    RefundRead,
)
from hub.schemas import to_read, updates_of
from hub.settings import Settings

__all__ = [
    "PAYMENT_CONTROLLERS",
    "AppInvoiceController",
    "CallbackLogController",
    "InvoiceController",
    "PaymentAccountController",
    "PriceListController",
    "RefundController",
]

RefId = Annotated[int, Parameter(ge=1, le=2**62)]
desk.register_lock()


def refund_requesters(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """App users (for their own invoices) and employees; an employee also needs the refund
    permission (:func:`_refund_permission`, checked in the handler: grants live in the database)."""
    if principal_of(connection).kind not in ("app_user", "employee"):
        raise Forbidden("Only employees and app users", code="forbidden")


async def _refund_permission(session: AsyncSession, principal: Principal) -> None:
    """PAY-7: refunds are a permission an administrator grants to roles or employees (DESK-12)."""
    if principal.kind == "employee":
        await permissions.require_permission(session, principal, Permission.REFUNDS)


async def _ticket_visible(session: AsyncSession, principal: Principal, invoice: Invoice) -> Invoice:
    """DESK-12: an invoice of a ticket the employee may not see answers like one that does not exist."""
    hidden = NotFound("No such invoice", code="invoice_not_found")
    await visibility.require_ticket(session, principal, invoice.ticket_id, hidden=hidden)
    return invoice


async def _staff_invoice(session: AsyncSession, principal: Principal, invoice_id: int) -> Invoice:
    return await _ticket_visible(
        session, principal, await service.get_invoice(session, principal.account_id, invoice_id)
    )


async def _decidable_refund(session: AsyncSession, principal: Principal, refund_id: int) -> None:
    """PAY-7: the refund permission, then DESK-12: a refund of a hidden ticket is not found."""
    await _refund_permission(session, principal)
    await _staff_refund(session, principal, refund_id)


async def _staff_refund(session: AsyncSession, principal: Principal, refund_id: int) -> Refund:
    """DESK-12: a refund on a ticket the employee may not see answers like one that does not exist."""
    refund = await service.get_refund(session, principal.account_id, refund_id)
    invoice = await service.get_invoice(session, principal.account_id, refund.invoice_id)
    hidden = NotFound("No such refund", code="refund_not_found")
    await visibility.require_ticket(session, principal, invoice.ticket_id, hidden=hidden)
    return refund


def employees_or_app_users(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if principal_of(connection).kind not in ("employee", "app_user"):
        raise Forbidden("Only employees and app users", code="forbidden")


def _line_read(line: Any, currency: str) -> InvoiceLineRead:
    read = to_read(InvoiceLineRead, line)
    return msgspec.structs.replace(
        read,
        unit_price=in_units(read.unit_price, currency),
        amount=in_units(read.amount, currency),
        refunded_amount=in_units(read.refunded_amount, currency),
    )


def refund_read(refund: Refund) -> RefundRead:
    read = to_read(RefundRead, refund)
    return msgspec.structs.replace(read, amount=in_units(read.amount, read.currency))


async def price_read(session: AsyncSession, item: PriceItem) -> PriceItemRead:
    """A price in the account's currency units (2500.00, or 12.3456 when the price has more)."""
    account = await session.get(Account, item.account_id)
    read = to_read(PriceItemRead, item)
    return msgspec.structs.replace(read, price=in_units(read.price, account.currency if account else "RUB"))


async def invoice_read(session: AsyncSession, invoice: Invoice) -> InvoiceRead:
    """Money in the invoice currency's minor units: "2260.00", never "2.26E+3"."""
    cur = invoice.currency
    lines = [_line_read(line, cur) for line in await service.lines_of(session, invoice)]
    return InvoiceRead(
        id=invoice.id,
        ticket_id=invoice.ticket_id,
        contact_id=invoice.contact_id,
        status=invoice.status,
        currency=invoice.currency,
        total=in_units(invoice.total, cur),
        paid_amount=in_units(invoice.paid_amount, cur),
        refunded_amount=in_units(invoice.refunded_amount, cur),
        refundable_amount=in_units(service.refundable_amount(invoice), cur),
        provider=invoice.provider,
        payment_account_id=invoice.payment_account_id,
        payment_ref=invoice.payment_ref,
        provider_payment_id=invoice.provider_payment_id,
        provider_status=invoice.provider_status,
        payment_url=invoice.payment_url,
        issued_at=invoice.issued_at,
        paid_at=invoice.paid_at,
        created_at=invoice.created_at,
        lines=lines,
    )


def pa_read(row: PaymentAccount, settings: Settings) -> PaymentAccountRead:
    return PaymentAccountRead(
        id=row.id,
        provider=row.provider,
        name=row.name,
        active=row.active,
        is_default=row.is_default,
        credential_names=sorted(row.credentials),
        allowed_networks=list(row.allowed_networks or []),
        return_url=row.return_url,
        reconcile_after_seconds=row.reconcile_after_seconds,
        webhook_url=webhook_url(settings, row),
    )


async def _visible_invoice(session: AsyncSession, principal: Principal, invoice_id: int) -> Invoice:
    invoice = await _staff_invoice(session, principal, invoice_id)
    if principal.kind == "app_user" and (
        invoice.contact_id is None or invoice.contact_id != principal.contact_id or invoice.status == "draft"
    ):
        raise NotFound("No such invoice", code="invoice_not_found")  # drafts are not shown to clients
    return invoice


_PRICE_ORDER = Order(
    "section,code",
    (
        Key(PriceItem.section, lambda item: item.section),
        Key(PriceItem.code, lambda item: item.code),
        Key(PriceItem.id, lambda item: item.id),
    ),
)


class PriceListController(Controller):
    path = "/api/price-list"
    tags = ["payments: price list"]

    @get("", guards=[employees], summary="Price list by section, then code (PAY-1)")
    async def list_items(
        self,
        db_session: AsyncSession,
        principal: Principal,
        include_archived: bool = False,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[PriceItemRead]:
        query = select(PriceItem).where(PriceItem.account_id == principal.account_id)
        if not include_archived:
            query = query.where(PriceItem.archived.is_(False))
        rows, next_cursor = await fetch_page(db_session, query, _PRICE_ORDER, cursor=cursor, limit=limit)
        return Page([await price_read(db_session, row) for row in rows], next_cursor)

    @post("", guards=[administrators], summary="Add a price-list line")
    async def create_item(
        self, data: PriceItemCreate, db_session: AsyncSession, principal: Principal
    ) -> PriceItemRead:
        return await price_read(
            db_session, await service.create_price_item(db_session, principal.account_id, data)
        )

    @get("/{price_item_id:int}", guards=[employees], summary="One price-list line")
    async def get_item(
        self, db_session: AsyncSession, principal: Principal, price_item_id: RefId
    ) -> PriceItemRead:
        return await price_read(
            db_session, await service.get_price_item(db_session, principal.account_id, price_item_id)
        )

    @patch("/{price_item_id:int}", guards=[administrators], summary="Change or archive a price-list line")
    async def update_item(
        self, data: PriceItemUpdate, db_session: AsyncSession, principal: Principal, price_item_id: RefId
    ) -> PriceItemRead:
        item = await service.update_price_item(
            db_session, principal.account_id, price_item_id, updates_of(data)
        )
        return await price_read(db_session, item)


class PaymentAccountController(Controller):
    path = "/api/payment-accounts"
    tags = ["payments: providers"]

    @get("", guards=[administrators], summary="Connected payment providers, oldest first (PAY-5)")
    async def list_accounts(
        self,
        db_session: AsyncSession,
        principal: Principal,
        settings: Settings,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[PaymentAccountRead]:
        query = select(PaymentAccount).where(PaymentAccount.account_id == principal.account_id)
        order = by_id(PaymentAccount.id)
        rows, next_cursor = await fetch_page(db_session, query, order, cursor=cursor, limit=limit)
        return Page([pa_read(row, settings) for row in rows], next_cursor)

    @post("", guards=[administrators], summary="Connect a payment provider (secrets are never shown again)")
    async def create_account(
        self, data: PaymentAccountCreate, db_session: AsyncSession, principal: Principal, settings: Settings
    ) -> PaymentAccountRead:
        return pa_read(await service.create_payment_account(db_session, principal.account_id, data), settings)

    @get("/{payment_account_id:int}", guards=[administrators], summary="One payment provider connection")
    async def get_account(
        self, db_session: AsyncSession, principal: Principal, settings: Settings, payment_account_id: RefId
    ) -> PaymentAccountRead:
        row = await service.get_payment_account(db_session, principal.account_id, payment_account_id)
        return pa_read(row, settings)

    @patch("/{payment_account_id:int}", guards=[administrators], summary="Change a provider connection")
    async def update_account(
        self,
        data: PaymentAccountUpdate,
        db_session: AsyncSession,
        principal: Principal,
        settings: Settings,
        payment_account_id: RefId,
    ) -> PaymentAccountRead:
        row = await service.update_payment_account(
            db_session, principal.account_id, payment_account_id, updates_of(data)
        )
        return pa_read(row, settings)


class InvoiceController(Controller):
    path = "/api/invoices"
    tags = ["payments: invoices"]

    @get("", guards=[employees], summary="Invoices, newest first (filter by ticket)")
    async def list_invoices(
        self,
        db_session: AsyncSession,
        principal: Principal,
        ticket_id: RefId | None = None,
        status: Annotated[
            str | None, Parameter(max_length=12, description="draft, issued, paid, ...")
        ] = None,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[InvoiceRead]:
        viewer = await visibility.viewer_of(db_session, principal)
        query = select(Invoice).where(
            Invoice.account_id == principal.account_id,
            visibility.ticket_id_clause(viewer, Invoice.ticket_id),
        )
        if ticket_id is not None:
            query = query.where(Invoice.ticket_id == ticket_id)
        if status is not None:
            query = query.where(Invoice.status == status)
        order = by_id(Invoice.id, newest_first=True)
        rows, next_cursor = await fetch_page(db_session, query, order, cursor=cursor, limit=limit)
        return Page([await invoice_read(db_session, row) for row in rows], next_cursor)

    @post("", guards=[employees], summary="Draft an invoice on a ticket (PAY-2)")
    async def create_invoice(
        self, data: InvoiceCreate, db_session: AsyncSession, principal: Principal
    ) -> InvoiceRead:
        await visibility.require_ticket(db_session, principal, data.ticket_id)
        invoice = await service.create_invoice(
            db_session,
            principal.account_id,
            Actor.from_principal(principal),
            data.ticket_id,
            data.lines,
            data.payment_account_id,
        )
        return await invoice_read(db_session, invoice)

    @get("/{invoice_id:int}", guards=[employees_or_app_users], summary="One invoice with its lines")
    async def get_invoice(
        self, db_session: AsyncSession, principal: Principal, invoice_id: RefId
    ) -> InvoiceRead:
        return await invoice_read(db_session, await _visible_invoice(db_session, principal, invoice_id))

    @delete("/{invoice_id:int}", guards=[employees], summary="Delete a draft invoice")
    async def delete_invoice(self, db_session: AsyncSession, principal: Principal, invoice_id: RefId) -> None:
        await _staff_invoice(db_session, principal, invoice_id)
        await service.delete_invoice(
            db_session, principal.account_id, Actor.from_principal(principal), invoice_id
        )

    @post("/{invoice_id:int}/lines", guards=[employees], summary="Add a line (draft only)")
    async def add_line(
        self, data: InvoiceLineCreate, db_session: AsyncSession, principal: Principal, invoice_id: RefId
    ) -> InvoiceRead:
        await _staff_invoice(db_session, principal, invoice_id)
        await service.add_line(db_session, principal.account_id, invoice_id, data)
        return await invoice_read(
            db_session, await service.get_invoice(db_session, principal.account_id, invoice_id)
        )

    @patch("/{invoice_id:int}/lines/{line_id:int}", guards=[employees], summary="Change a line (draft only)")
    async def update_line(
        self,
        data: InvoiceLineUpdate,
        db_session: AsyncSession,
        principal: Principal,
        invoice_id: RefId,
        line_id: RefId,
    ) -> InvoiceRead:
        await _staff_invoice(db_session, principal, invoice_id)
        await service.update_line(db_session, principal.account_id, invoice_id, line_id, updates_of(data))
        return await invoice_read(
            db_session, await service.get_invoice(db_session, principal.account_id, invoice_id)
        )

    @delete("/{invoice_id:int}/lines/{line_id:int}", guards=[employees], summary="Remove a line (draft only)")
    async def delete_line(
        self, db_session: AsyncSession, principal: Principal, invoice_id: RefId, line_id: RefId
    ) -> None:
        await _staff_invoice(db_session, principal, invoice_id)
        await service.delete_line(db_session, principal.account_id, invoice_id, line_id)

    @post(
        "/{invoice_id:int}/issue",
        guards=[employees],
        status_code=200,
        summary="Issue (activate) for the client",
    )
    async def issue(self, db_session: AsyncSession, principal: Principal, invoice_id: RefId) -> InvoiceRead:
        await _staff_invoice(db_session, principal, invoice_id)
        invoice = await service.issue_invoice(
            db_session, principal.account_id, Actor.from_principal(principal), invoice_id
        )
        return await invoice_read(db_session, invoice)

    @post("/{invoice_id:int}/mark-paid", guards=[dispatchers], status_code=200, summary="Mark paid by hand")
    async def mark_paid(
        self, data: MarkPaid, db_session: AsyncSession, principal: Principal, invoice_id: RefId
    ) -> InvoiceRead:
        await _staff_invoice(db_session, principal, invoice_id)
        invoice = await service.mark_paid(
            db_session, principal.account_id, Actor.from_principal(principal), invoice_id, data.note
        )
        return await invoice_read(db_session, invoice)

    @post("/{invoice_id:int}/make-unpaid", guards=[dispatchers], status_code=200, summary="Back to draft")
    async def make_unpaid(
        self, db_session: AsyncSession, principal: Principal, invoice_id: RefId
    ) -> InvoiceRead:
        await _staff_invoice(db_session, principal, invoice_id)
        invoice = await service.make_unpaid(
            db_session, principal.account_id, Actor.from_principal(principal), invoice_id
        )
        return await invoice_read(db_session, invoice)

    @get(
        "/{invoice_id:int}/refunds",
        guards=[employees_or_app_users],
        summary="Refunds of an invoice, oldest first",
    )
    async def list_refunds(
        self,
        db_session: AsyncSession,
        principal: Principal,
        invoice_id: RefId,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[RefundRead]:
        invoice = await _visible_invoice(db_session, principal, invoice_id)
        query = select(Refund).where(Refund.invoice_id == invoice.id)
        rows, next_cursor = await fetch_page(db_session, query, by_id(Refund.id), cursor=cursor, limit=limit)
        return Page([refund_read(row) for row in rows], next_cursor)

    @post("/{invoice_id:int}/refunds", guards=[refund_requesters], summary="Request a refund (PAY-7)")
    async def request_refund(
        self, data: RefundCreate, db_session: AsyncSession, principal: Principal, invoice_id: RefId
    ) -> RefundRead:
        await _refund_permission(db_session, principal)
        await _visible_invoice(db_session, principal, invoice_id)
        return refund_read(await service.request_refund(db_session, principal, invoice_id, data))


class AppInvoiceController(Controller):
    path = "/api/app/invoices"
    tags = ["payments: client app"]

    @get("", guards=[app_users], summary="The app user's invoices (issued, paid) with payment links")
    async def my_invoices(self, db_session: AsyncSession, principal: Principal) -> list[InvoiceRead]:
        rows = await db_session.scalars(
            select(Invoice)
            .where(
                Invoice.account_id == principal.account_id,
                Invoice.contact_id == principal.contact_id,
                Invoice.status != "draft",
            )
            .order_by(Invoice.id.desc())
            .limit(100)
        )
        return [await invoice_read(db_session, row) for row in list(rows)]


class RefundController(Controller):
    path = "/api/refunds"
    tags = ["payments: refunds"]

    @get("/{refund_id:int}", guards=[employees_or_app_users], summary="One refund")
    async def get_refund(
        self, db_session: AsyncSession, principal: Principal, refund_id: RefId
    ) -> RefundRead:
        refund = await _staff_refund(db_session, principal, refund_id)
        await _visible_invoice(db_session, principal, refund.invoice_id)
        return refund_read(refund)

    @post(
        "/{refund_id:int}/approve",
        guards=[employees],
        status_code=200,
        summary="Approve: the provider refunds",
    )
    async def approve(self, db_session: AsyncSession, principal: Principal, refund_id: RefId) -> RefundRead:
        await _decidable_refund(db_session, principal, refund_id)
        refund = await service.approve_refund(
            db_session, principal.account_id, Actor.from_principal(principal), refund_id
        )
        return refund_read(refund)

    @post("/{refund_id:int}/reject", guards=[employees], status_code=200, summary="Reject with a reason")
    async def reject(
        self, data: RefundDecision, db_session: AsyncSession, principal: Principal, refund_id: RefId
    ) -> RefundRead:
        await _decidable_refund(db_session, principal, refund_id)
        refund = await service.reject_refund(
            db_session, principal.account_id, Actor.from_principal(principal), refund_id, data.reason
        )
        return refund_read(refund)


class CallbackLogController(Controller):
    path = "/api/payments/callbacks"
    tags = ["payments: callbacks"]

    @get("", guards=[administrators], summary="Provider callbacks and their outcome, newest first (PAY-6)")
    async def list_callbacks(
        self,
        db_session: AsyncSession,
        principal: Principal,
        outcome: Annotated[str | None, Parameter(max_length=40)] = None,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_LIMIT,
    ) -> Page[CallbackAttemptRead]:
        query = select(CallbackAttempt).where(CallbackAttempt.account_id == principal.account_id)
        if outcome is not None:
            query = query.where(CallbackAttempt.outcome == outcome)
        order = by_id(CallbackAttempt.id, newest_first=True)
        rows, next_cursor = await fetch_page(db_session, query, order, cursor=cursor, limit=limit)
        return Page([to_read(CallbackAttemptRead, row) for row in rows], next_cursor)


def _controllers() -> list[type[Controller]]:
    from hub.webhooks.payments import PaymentWebhookController

    return [
        PriceListController,
        PaymentAccountController,
        InvoiceController,
        AppInvoiceController,
        RefundController,
        CallbackLogController,
        PaymentWebhookController,
    ]


PAYMENT_CONTROLLERS = _controllers()
