"""Price list (PAY-1), payment accounts (PAY-5), invoices (PAY-2, PAY-3) and refunds (PAY-7).

Every invoice state change goes through :data:`INVOICE_TRANSITIONS`, every refund state change
through :data:`REFUND_TRANSITIONS`. Services never commit; effects that leave the process (the
provider's API, notifications) are queued in the outbox inside the same transaction.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts import permissions
from hub.accounts.models import Account, Permission
from hub.auth.principal import Principal
from hub.connectors.payments import PROVIDERS
from hub.db import utcnow
from hub.desk.actors import Actor
from hub.errors import BadRequest, Conflict, Forbidden, NotFound
from hub.outbox import enqueue
from hub.payments import desk
from hub.payments.models import Invoice, InvoiceLine, PaymentAccount, PriceItem, Refund
from hub.payments.money import HUNDRED, ZERO, in_units, line_total, quantize
from hub.payments.schemas import InvoiceLineCreate, RefundCreate

__all__ = [
    "INVOICE_TRANSITIONS",
    "REFUND_TRANSITIONS",
    "add_line",
    "approve_refund",
    "create_invoice",
    "create_payment_account",
    "create_price_item",
    "delete_invoice",
    "delete_line",
    "get_invoice",
    "get_payment_account",
    "get_price_item",
    "get_refund",
    "invoice_transition",
    "issue_invoice",
    "lock_invoice",
    "make_unpaid",
    "mark_paid",
    "refund_transition",
    "reject_refund",
    "request_refund",
    "update_line",
    "update_payment_account",
    "update_price_item",
]

# PAY-3: the ONE table of invoice states. (from, action) -> to.
INVOICE_TRANSITIONS: dict[tuple[str, str], str] = {
    ("draft", "issue"): "issued",
    ("issued", "provider_paid"): "paid",
    # Paid at the provider after an employee had marked it paid by hand: the provider's word wins.
    ("marked_paid", "provider_paid"): "paid",
    ("issued", "mark_paid"): "marked_paid",
    ("issued", "make_unpaid"): "draft",
    ("marked_paid", "make_unpaid"): "draft",
}
# PAY-7: requested -> approved -> refunded, or rejected, or failed.
REFUND_TRANSITIONS: dict[tuple[str, str], str] = {
    ("requested", "approve"): "approved",
    ("requested", "reject"): "rejected",
    ("approved", "provider_succeeded"): "refunded",
    ("approved", "provider_failed"): "failed",
    # The provider's word wins: a refund it reports done was done, even after we gave up on it.
    ("failed", "provider_succeeded"): "refunded",
}
MAX_MONEY = Decimal("1000000000")
MAX_QUANTITY = Decimal("1000000")
CREATE_PAYMENT_TOPIC = "payments.create_payment"
REFUND_TOPIC = "payments.refund"
CANCEL_PAYMENT_TOPIC = "payments.cancel_payment"


def invoice_transition(invoice: Invoice, action: str) -> str:
    target = INVOICE_TRANSITIONS.get((invoice.status, action))
    if target is None:
        raise Conflict(
            f"An invoice that is {invoice.status} cannot {action.replace('_', ' ')}",
            code="invoice_transition_not_allowed",
            current=invoice.status,
            action=action,
        )
    invoice.status = target
    return target


def refund_transition(refund: Refund, action: str) -> str:
    target = REFUND_TRANSITIONS.get((refund.status, action))
    if target is None:
        raise Conflict(
            f"A refund that is {refund.status} cannot {action.replace('_', ' ')}",
            code="refund_transition_not_allowed",
            current=refund.status,
            action=action,
        )
    refund.status = target
    return target


def _money(value: Decimal, field: str, *, positive: bool = False) -> Decimal:
    if not value.is_finite() or value < 0 or value > MAX_MONEY or (positive and value == 0):
        raise BadRequest(
            f"{field} must be a number from 0 to {MAX_MONEY}", code="invalid_amount", field=field
        )
    if value.as_tuple().exponent < -4:  # type: ignore[operator]
        raise BadRequest(f"{field} has too many decimal places", code="invalid_amount", field=field)
    return value


def _percent(value: Decimal, field: str) -> Decimal:
    if not value.is_finite() or value < 0 or value > HUNDRED:
        raise BadRequest(f"{field} must be between 0 and 100", code="invalid_percent", field=field)
    return value


def _quantity(value: Decimal) -> Decimal:
    if not value.is_finite() or value <= 0 or value > MAX_QUANTITY or value.as_tuple().exponent < -3:  # type: ignore[operator]
        raise BadRequest("quantity must be above 0 (at most 3 decimals)", code="invalid_quantity")
    return value


# --- price list (PAY-1) --------------------------------------------------------------------------


async def get_price_item(session: AsyncSession, account_id: int, item_id: int) -> PriceItem:
    item = await session.get(PriceItem, item_id)
    if item is None or item.account_id != account_id:
        raise NotFound("No such price-list line", code="price_item_not_found")
    return item


async def _unique_code(session: AsyncSession, account_id: int, code: str, exclude: int | None = None) -> None:
    query = select(PriceItem.id).where(PriceItem.account_id == account_id, PriceItem.code == code)
    if exclude is not None:
        query = query.where(PriceItem.id != exclude)
    if await session.scalar(query) is not None:
        raise Conflict(f"Code {code!r} is already in the price list", code="price_code_taken")


async def create_price_item(session: AsyncSession, account_id: int, data: Any) -> PriceItem:
    await _unique_code(session, account_id, data.code)
    item = PriceItem(
        account_id=account_id,
        section=data.section,
        code=data.code,
        name=data.name,
        unit=data.unit,
        price=_money(data.price, "price"),
        vat_rate=_percent(data.vat_rate, "vat_rate") if data.vat_rate is not None else None,
        refundable=data.refundable,
        archived=False,
    )
    session.add(item)
    await session.flush()
    return item


async def update_price_item(
    session: AsyncSession, account_id: int, item_id: int, changes: dict[str, Any]
) -> PriceItem:
    item = await get_price_item(session, account_id, item_id)
    if "code" in changes:
        await _unique_code(session, account_id, changes["code"], exclude=item.id)
    if "price" in changes:
        _money(changes["price"], "price")
    if changes.get("vat_rate") is not None:
        _percent(changes["vat_rate"], "vat_rate")
    for name, value in changes.items():
        setattr(item, name, value)
    await session.flush()
    return item


# --- payment accounts (PAY-5) --------------------------------------------------------------------

_REQUIRED = {
    "yookassa": ("shop_id", "secret_key"),
    "tbank": ("terminal_key", "password"),
    "cloudpayments": ("public_id", "api_secret"),
    "stripe": ("secret_key", "webhook_secret"),
    "standard": ("webhook_secret", "checkout_url"),
}


def _check_credentials(provider: str, credentials: dict[str, str]) -> None:
    missing = [name for name in _REQUIRED[provider] if not credentials.get(name)]
    if missing:
        raise BadRequest(
            f"{provider} needs credentials: {', '.join(missing)}", code="credentials_missing", missing=missing
        )


async def get_payment_account(session: AsyncSession, account_id: int, pa_id: int) -> PaymentAccount:
    row = await session.get(PaymentAccount, pa_id)
    if row is None or row.account_id != account_id:
        raise NotFound("No such payment account", code="payment_account_not_found")
    return row


async def _only_default(session: AsyncSession, row: PaymentAccount) -> None:
    others = await session.scalars(
        select(PaymentAccount).where(PaymentAccount.account_id == row.account_id, PaymentAccount.id != row.id)
    )
    for other in others:
        other.is_default = False


async def create_payment_account(session: AsyncSession, account_id: int, data: Any) -> PaymentAccount:
    if data.provider not in PROVIDERS:
        raise BadRequest("Unknown provider", code="unknown_provider")
    _check_credentials(data.provider, data.credentials)
    from hub.connectors.payments.yookassa import NETWORKS

    networks = data.allowed_networks
    if networks is None:
        networks = list(NETWORKS) if data.provider == "yookassa" else []
    row = PaymentAccount(
        account_id=account_id,
        provider=data.provider,
        name=data.name,
        active=True,
        is_default=data.is_default,
        credentials=dict(data.credentials),
        webhook_key=secrets.token_urlsafe(24),
        allowed_networks=networks,
        return_url=data.return_url,
        reconcile_after_seconds=data.reconcile_after_seconds,
    )
    session.add(row)
    await session.flush()
    if row.is_default:
        await _only_default(session, row)
    return row


async def update_payment_account(
    session: AsyncSession, account_id: int, pa_id: int, changes: dict[str, Any]
) -> PaymentAccount:
    row = await get_payment_account(session, account_id, pa_id)
    if "credentials" in changes:
        merged = {**row.credentials, **changes["credentials"]}
        _check_credentials(row.provider, merged)
        changes["credentials"] = merged
    for name, value in changes.items():
        setattr(row, name, value)
    await session.flush()
    if row.is_default:
        await _only_default(session, row)
    return row


async def _default_payment_account(session: AsyncSession, account_id: int) -> PaymentAccount | None:
    rows = list(
        await session.scalars(
            select(PaymentAccount)
            .where(PaymentAccount.account_id == account_id, PaymentAccount.active.is_(True))
            .order_by(PaymentAccount.is_default.desc(), PaymentAccount.id)
        )
    )
    return rows[0] if rows else None


# --- invoices (PAY-2, PAY-3) ---------------------------------------------------------------------


async def get_invoice(session: AsyncSession, account_id: int, invoice_id: int) -> Invoice:
    invoice = await session.get(Invoice, invoice_id)
    if invoice is None or invoice.account_id != account_id:
        raise NotFound("No such invoice", code="invoice_not_found")
    return invoice


async def lock_invoice(session: AsyncSession, account_id: int, invoice_id: int) -> Invoice:
    """The invoice, locked for this transaction (FOR UPDATE on PostgreSQL; SQLite's BEGIN
    IMMEDIATE already serialises writers), freshly read."""
    invoice = await session.scalar(
        select(Invoice)
        .where(Invoice.id == invoice_id, Invoice.account_id == account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if invoice is None:
        raise NotFound("No such invoice", code="invoice_not_found")
    return invoice


async def lines_of(session: AsyncSession, invoice: Invoice) -> list[InvoiceLine]:
    return list(
        await session.scalars(
            select(InvoiceLine)
            .where(InvoiceLine.invoice_id == invoice.id)
            .order_by(InvoiceLine.position, InvoiceLine.id)
        )
    )


async def _recompute(session: AsyncSession, invoice: Invoice) -> None:
    lines = await lines_of(session, invoice)
    invoice.total = sum((line.amount for line in lines), ZERO)
    invoice.updated_at = utcnow()


def _editable(invoice: Invoice) -> None:
    if invoice.status == "paid":
        raise Conflict("A paid invoice is immutable", code="invoice_immutable")
    if invoice.status != "draft":
        raise Conflict(
            "Only a draft invoice takes line changes: make it unpaid first", code="invoice_not_draft"
        )


async def _build_line(session: AsyncSession, invoice: Invoice, data: InvoiceLineCreate) -> InvoiceLine:
    quantity = _quantity(data.quantity)
    discount = _percent(data.discount_percent, "discount_percent")
    item: PriceItem | None = None
    if data.price_item_id is not None:
        item = await get_price_item(session, invoice.account_id, data.price_item_id)
        if item.archived:
            raise Conflict("This price-list line is archived", code="price_item_archived")
    elif data.name is None or data.unit_price is None:
        raise BadRequest("A line needs price_item_id, or name and unit_price", code="line_incomplete")
    unit_price = _money(data.unit_price if data.unit_price is not None else item.price, "unit_price")  # type: ignore[union-attr]
    position = await session.scalar(
        select(func.count()).select_from(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id)
    )
    return InvoiceLine(
        invoice_id=invoice.id,
        account_id=invoice.account_id,
        price_item_id=item.id if item else None,
        code=item.code if item else "",
        name=data.name or (item.name if item else ""),
        unit=data.unit or (item.unit if item else "pcs"),
        unit_price=unit_price,
        quantity=quantity,
        discount_percent=discount,
        vat_rate=item.vat_rate if item else None,
        refundable=item.refundable if item else False,
        amount=line_total(unit_price, quantity, discount, invoice.currency),
        refunded_amount=ZERO,
        position=int(position or 0),
    )


async def create_invoice(
    session: AsyncSession,
    account_id: int,
    actor: Actor,
    ticket_id: int,
    lines: list[InvoiceLineCreate],
    payment_account_id: int | None = None,
) -> Invoice:
    ticket = await desk.load_ticket(session, account_id, ticket_id)
    account = await session.get(Account, account_id)
    assert account is not None
    if payment_account_id is not None:
        pa: PaymentAccount | None = await get_payment_account(session, account_id, payment_account_id)
    else:
        pa = await _default_payment_account(session, account_id)
    invoice = Invoice(
        account_id=account_id,
        ticket_id=ticket.id,
        contact_id=getattr(ticket, "contact_id", None),
        status="draft",
        currency=account.currency,
        total=ZERO,
        paid_amount=ZERO,
        refunded_amount=ZERO,
        reserved_amount=ZERO,
        payment_account_id=pa.id if pa else None,
        provider=pa.provider if pa else None,
        issue_count=0,
        created_by=actor.id if actor.kind == "employee" else None,
    )
    session.add(invoice)
    await session.flush()
    for data in lines:
        session.add(await _build_line(session, invoice, data))
        await session.flush()
    await _recompute(session, invoice)
    await desk.history(session, ticket, actor, "invoice_created", {"invoice_id": invoice.id})
    await desk.refresh_flags(session, ticket)
    return invoice


async def add_line(
    session: AsyncSession, account_id: int, invoice_id: int, data: InvoiceLineCreate
) -> InvoiceLine:
    invoice = await lock_invoice(session, account_id, invoice_id)
    _editable(invoice)
    line = await _build_line(session, invoice, data)
    session.add(line)
    await session.flush()
    await _recompute(session, invoice)
    await desk.refresh_flags(session, await desk.load_ticket(session, account_id, invoice.ticket_id))
    return line


async def _line(session: AsyncSession, invoice: Invoice, line_id: int) -> InvoiceLine:
    line = await session.get(InvoiceLine, line_id)
    if line is None or line.invoice_id != invoice.id:
        raise NotFound("No such invoice line", code="invoice_line_not_found")
    return line


async def update_line(
    session: AsyncSession, account_id: int, invoice_id: int, line_id: int, changes: dict[str, Any]
) -> InvoiceLine:
    invoice = await lock_invoice(session, account_id, invoice_id)
    _editable(invoice)
    line = await _line(session, invoice, line_id)
    if "unit_price" in changes:
        line.unit_price = _money(changes["unit_price"], "unit_price")
    if "quantity" in changes:
        line.quantity = _quantity(changes["quantity"])
    if "discount_percent" in changes:
        line.discount_percent = _percent(changes["discount_percent"], "discount_percent")
    line.amount = line_total(line.unit_price, line.quantity, line.discount_percent, invoice.currency)
    await session.flush()
    await _recompute(session, invoice)
    await desk.refresh_flags(session, await desk.load_ticket(session, account_id, invoice.ticket_id))
    return line


async def delete_line(session: AsyncSession, account_id: int, invoice_id: int, line_id: int) -> None:
    invoice = await lock_invoice(session, account_id, invoice_id)
    _editable(invoice)
    await session.delete(await _line(session, invoice, line_id))
    await session.flush()
    await _recompute(session, invoice)
    await desk.refresh_flags(session, await desk.load_ticket(session, account_id, invoice.ticket_id))


async def delete_invoice(session: AsyncSession, account_id: int, actor: Actor, invoice_id: int) -> None:
    invoice = await lock_invoice(session, account_id, invoice_id)
    if invoice.status != "draft":
        raise Conflict("Only a draft invoice can be deleted", code="invoice_not_draft")
    ticket = await desk.load_ticket(session, account_id, invoice.ticket_id)
    await session.delete(invoice)
    await session.flush()
    await desk.history(session, ticket, actor, "invoice_deleted", {"invoice_id": invoice_id})
    await desk.refresh_flags(session, ticket)


def _invoice_data(invoice: Invoice) -> dict[str, Any]:
    return {
        "invoice_id": invoice.id,
        "status": invoice.status,
        "amount": str(in_units(invoice.total, invoice.currency)),
        "currency": invoice.currency,
    }


async def issue_invoice(session: AsyncSession, account_id: int, actor: Actor, invoice_id: int) -> Invoice:
    """draft -> issued: the client sees it; the payment is created at the provider via the outbox."""
    invoice = await lock_invoice(session, account_id, invoice_id)
    if invoice.total <= 0 and invoice.status == "draft":
        raise Conflict("An invoice needs lines and a total above zero", code="invoice_empty")
    pa = (
        await get_payment_account(session, account_id, invoice.payment_account_id)
        if invoice.payment_account_id
        else None
    )
    if pa is None or not pa.active:
        pa = await _default_payment_account(session, account_id)
    if pa is None and invoice.status == "draft":
        raise Conflict("Connect a payment provider first", code="payment_account_missing")
    # PAY-4: the ticket row is locked too, so a concurrent change of its base data either commits
    # first (and the invoice bills the new client) or waits and then sees this invoice issued.
    ticket = await desk.load_ticket(session, account_id, invoice.ticket_id, for_update=True)
    invoice_transition(invoice, "issue")
    assert pa is not None
    now = utcnow()
    invoice.contact_id = getattr(ticket, "contact_id", None)
    invoice.issue_count += 1
    invoice.payment_account_id = pa.id
    invoice.provider = pa.provider
    invoice.payment_ref = f"inv{invoice.id}-{invoice.issue_count}"
    invoice.provider_payment_id = None
    invoice.provider_status = None
    invoice.payment_url = None
    invoice.issued_at = now
    invoice.reconcile_due_at = now + timedelta(seconds=pa.reconcile_after_seconds)
    await enqueue(
        session,
        account_id=account_id,
        topic=CREATE_PAYMENT_TOPIC,
        payload={"invoice_id": invoice.id, "payment_ref": invoice.payment_ref},
        idempotency_key=f"payments:create:{pa.id}:{invoice.payment_ref}",
        ordering_key=f"invoice:{invoice.id}",
    )
    await desk.history(session, ticket, actor, "invoice_issued", _invoice_data(invoice))
    await desk.activity(
        session,
        account_id,
        invoice.contact_id,
        "invoice_issued",
        invoice.id,
        f"Invoice {invoice.id}: {in_units(invoice.total, invoice.currency)} {invoice.currency}",
        _invoice_data(invoice),
        ticket_id=invoice.ticket_id,
    )
    await desk.refresh_flags(session, ticket)
    return invoice


async def mark_paid(
    session: AsyncSession, account_id: int, actor: Actor, invoice_id: int, note: str | None
) -> Invoice:
    invoice = await lock_invoice(session, account_id, invoice_id)
    invoice_transition(invoice, "mark_paid")
    invoice.marked_paid_by = actor.id
    invoice.marked_paid_note = note
    invoice.paid_at = utcnow()
    # The client may still pay the link: reconcile_due_at is kept, so reconciliation goes on asking
    # the provider about marked-paid invoices too (jobs.RECONCILED_INVOICES) and a provider
    # payment that does arrive turns the invoice paid (marked_paid -> paid).
    ticket = await desk.load_ticket(session, account_id, invoice.ticket_id)
    await desk.history(
        session, ticket, actor, "invoice_marked_paid", {**_invoice_data(invoice), "note": note}
    )
    await desk.activity(
        session,
        account_id,
        invoice.contact_id,
        "invoice_marked_paid",
        invoice.id,
        f"Invoice {invoice.id} marked paid",
        _invoice_data(invoice),
        ticket_id=invoice.ticket_id,
    )
    await desk.refresh_flags(session, ticket)
    return invoice


async def make_unpaid(session: AsyncSession, account_id: int, actor: Actor, invoice_id: int) -> Invoice:
    """Seed 002 §23: an invoice issued by mistake (or marked paid) goes back to draft."""
    invoice = await lock_invoice(session, account_id, invoice_id)
    old_payment = invoice.provider_payment_id
    invoice_transition(invoice, "make_unpaid")
    if old_payment and invoice.payment_account_id:
        await enqueue(
            session,
            account_id=account_id,
            topic=CANCEL_PAYMENT_TOPIC,
            payload={"payment_account_id": invoice.payment_account_id, "provider_payment_id": old_payment},
            idempotency_key=f"payments:cancel:{invoice.payment_account_id}:{old_payment}",
        )
    invoice.payment_url = None
    invoice.provider_payment_id = None
    invoice.provider_status = None
    invoice.payment_ref = None
    invoice.issued_at = None
    invoice.paid_at = None
    invoice.marked_paid_by = None
    invoice.marked_paid_note = None
    invoice.reconcile_due_at = None
    ticket = await desk.load_ticket(session, account_id, invoice.ticket_id)
    await desk.history(session, ticket, actor, "invoice_made_unpaid", _invoice_data(invoice))
    await desk.activity(
        session,
        account_id,
        invoice.contact_id,
        "invoice_withdrawn",
        invoice.id,
        f"Invoice {invoice.id} withdrawn",
        _invoice_data(invoice),
        ticket_id=invoice.ticket_id,
    )
    await desk.refresh_flags(session, ticket)
    return invoice


# --- refunds (PAY-7) -----------------------------------------------------------------------------


def refundable_amount(invoice: Invoice) -> Decimal:
    """What may still be asked back: paid, minus refunded, minus refunds in flight."""
    return invoice.paid_amount - invoice.refunded_amount - invoice.reserved_amount


async def get_refund(session: AsyncSession, account_id: int, refund_id: int) -> Refund:
    refund = await session.get(Refund, refund_id)
    if refund is None or refund.account_id != account_id:
        raise NotFound("No such refund", code="refund_not_found")
    return refund


async def _refund_lines(
    session: AsyncSession, invoice: Invoice, data: RefundCreate, by_client: bool
) -> tuple[Decimal, list[dict[str, Any]]]:
    lines = {line.id: line for line in await lines_of(session, invoice)}
    in_flight: dict[int, Decimal] = {}
    for other in await session.scalars(
        select(Refund).where(Refund.invoice_id == invoice.id, Refund.status.in_(("requested", "approved")))
    ):
        for taken in other.lines:
            line_id = int(taken["line_id"])
            in_flight[line_id] = in_flight.get(line_id, ZERO) + Decimal(taken["amount"])
    chosen: list[dict[str, Any]] = []
    picks: list[tuple[InvoiceLine, Decimal | None]]
    if data.full:
        picks = [(line, None) for line in lines.values()]
    else:
        if not data.lines:
            raise BadRequest(
                "Choose the lines to refund, or ask for a full refund", code="refund_lines_required"
            )
        picks = []
        seen: set[int] = set()
        for part in data.lines:
            line = lines.get(part.line_id)
            if line is None:
                raise NotFound(
                    "No such line on this invoice", code="invoice_line_not_found", line_id=part.line_id
                )
            if part.line_id in seen:
                raise BadRequest("A line is named twice", code="refund_line_repeated", line_id=part.line_id)
            seen.add(part.line_id)
            picks.append((line, part.amount))
    total = ZERO
    for line, asked in picks:
        remaining = line.amount - line.refunded_amount - in_flight.get(line.id, ZERO)
        if by_client and not line.refundable:
            if data.full:
                continue
            raise Forbidden(
                "This service cannot be refunded on request", code="line_not_refundable", line_id=line.id
            )
        amount = (
            remaining if asked is None else quantize(_money(asked, "amount", positive=True), invoice.currency)
        )
        if amount > remaining:
            raise Conflict(
                "More than is left to refund on this line",
                code="refund_exceeds_paid",
                line_id=line.id,
                remaining=f"{remaining:f}",
            )
        if amount > 0:
            chosen.append({"line_id": line.id, "amount": f"{amount:f}"})
            total += amount
    if total <= 0:
        raise Conflict("Nothing is left to refund", code="nothing_to_refund")
    return total, chosen


async def _staff(session: AsyncSession, account_id: int) -> list[tuple[str, int]]:
    """Employees with the refund permission (PAY-7, granted by an administrator)."""
    return [("employee", i) for i in await permissions.holders(session, account_id, Permission.REFUNDS)]


def _refund_data(refund: Refund) -> dict[str, Any]:
    return {
        "refund_id": refund.id,
        "invoice_id": refund.invoice_id,
        "status": refund.status,
        "amount": str(in_units(refund.amount, refund.currency)),
        "currency": refund.currency,
    }


def _client(invoice: Invoice, refund: Refund) -> list[tuple[str, int]]:
    contact = refund.requested_by_id if refund.requested_by_kind == "contact" else invoice.contact_id
    return [("contact", contact)] if contact else []


async def request_refund(
    session: AsyncSession, principal: Principal, invoice_id: int, data: RefundCreate
) -> Refund:
    """A client asks (only for their own invoice, only refundable services) or staff starts one.

    The refund amount is reserved against the invoice under the invoice's row lock, so concurrent
    requests can never ask back more than was paid.
    """
    account_id = principal.account_id
    invoice = await lock_invoice(session, account_id, invoice_id)
    by_client = principal.kind == "app_user"
    if by_client and (principal.contact_id is None or principal.contact_id != invoice.contact_id):
        raise NotFound("No such invoice", code="invoice_not_found")
    if invoice.status != "paid":
        raise Conflict("Only an invoice paid through the provider can be refunded", code="invoice_not_paid")
    if not data.reason.strip():
        raise BadRequest("A reason is required", code="refund_reason_required")
    amount, chosen = await _refund_lines(session, invoice, data, by_client)
    if amount > refundable_amount(invoice):
        raise Conflict("More than is left to refund", code="refund_exceeds_paid")
    actor = Actor.from_principal(principal)
    refund = Refund(
        account_id=account_id,
        invoice_id=invoice.id,
        ticket_id=invoice.ticket_id,
        status="requested",
        full=data.full,
        amount=amount,
        currency=invoice.currency,
        lines=chosen,
        reason=data.reason.strip(),
        requested_by_kind="contact" if by_client else "employee",
        requested_by_id=actor.id,
    )
    session.add(refund)
    invoice.reserved_amount += amount
    await session.flush()
    ticket = await desk.load_ticket(session, account_id, invoice.ticket_id)
    told = {**_refund_data(refund), "reason": refund.reason}
    await desk.history(session, ticket, actor, "refund_requested", told)
    await desk.activity(
        session,
        account_id,
        invoice.contact_id,
        "refund_requested",
        refund.id,
        f"Refund of {in_units(amount, invoice.currency)} {invoice.currency} requested",
        _refund_data(refund),
        ticket_id=invoice.ticket_id,
    )
    await desk.refresh_flags(session, ticket)
    await desk.notify(
        session,
        account_id,
        "refund_requested",
        ticket,
        await _staff(session, account_id),
        _refund_data(refund),
    )
    if not by_client:  # PAY-7: the client hears of a refund staff started, too
        await desk.notify(session, account_id, "refund_changed", ticket, _client(invoice, refund), told)
    return refund


async def _locked_refund(session: AsyncSession, account_id: int, refund_id: int) -> tuple[Invoice, Refund]:
    refund = await get_refund(session, account_id, refund_id)
    invoice = await lock_invoice(session, account_id, refund.invoice_id)
    await session.refresh(refund)
    return invoice, refund


async def approve_refund(session: AsyncSession, account_id: int, actor: Actor, refund_id: int) -> Refund:
    invoice, refund = await _locked_refund(session, account_id, refund_id)
    refund_transition(refund, "approve")
    now = utcnow()
    refund.decided_by = actor.id
    refund.decided_at = now
    pa = await session.get(PaymentAccount, invoice.payment_account_id) if invoice.payment_account_id else None
    refund.reconcile_due_at = now + timedelta(seconds=pa.reconcile_after_seconds if pa else 900)
    await enqueue(
        session,
        account_id=account_id,
        topic=REFUND_TOPIC,
        payload={"refund_id": refund.id},
        idempotency_key=f"payments:refund:{refund.id}",
        ordering_key=f"invoice:{invoice.id}",
    )
    await _refund_changed(session, invoice, refund, actor, "refund_approved")
    return refund


async def reject_refund(
    session: AsyncSession, account_id: int, actor: Actor, refund_id: int, reason: str | None
) -> Refund:
    if not reason or not reason.strip():
        raise BadRequest("A reason is required to reject a refund", code="refund_reason_required")
    invoice, refund = await _locked_refund(session, account_id, refund_id)
    refund_transition(refund, "reject")
    refund.decided_by = actor.id
    refund.decided_at = utcnow()
    refund.decision_reason = reason.strip()
    invoice.reserved_amount -= refund.amount
    await _refund_changed(session, invoice, refund, actor, "refund_rejected")
    return refund


async def _refund_changed(
    session: AsyncSession, invoice: Invoice, refund: Refund, actor: Actor, kind: str
) -> None:
    """History, the client's activity feed, list flags and the client's notification (PAY-7)."""
    await session.flush()
    ticket = await desk.load_ticket(session, invoice.account_id, invoice.ticket_id)
    data = {**_refund_data(refund), "reason": refund.decision_reason or refund.failure}
    await desk.history(session, ticket, actor, kind, data)
    await desk.activity(
        session,
        invoice.account_id,
        invoice.contact_id,
        kind,
        refund.id,
        f"Refund of {in_units(refund.amount, refund.currency)} {refund.currency}: {refund.status}",
        data,
        ticket_id=invoice.ticket_id,
    )
    await desk.refresh_flags(session, ticket)
    await desk.notify(session, invoice.account_id, "refund_changed", ticket, _client(invoice, refund), data)


async def complete_refund(session: AsyncSession, invoice: Invoice, refund: Refund, actor: Actor) -> None:
    """approved (or failed) -> refunded: the money is back; counted against the invoice and its
    lines. A failed refund's reserve was already released, so only an approved one releases it."""
    was_reserved = refund.status == "approved"
    refund_transition(refund, "provider_succeeded")
    refund.completed_at = utcnow()
    refund.reconcile_due_at = None
    if was_reserved:
        invoice.reserved_amount -= refund.amount
    invoice.refunded_amount += refund.amount
    for part in refund.lines:
        line = await session.get(InvoiceLine, int(part["line_id"]))
        if line is not None:
            line.refunded_amount += Decimal(part["amount"])
    await _refund_changed(session, invoice, refund, actor, "refund_completed")


async def fail_refund(
    session: AsyncSession, invoice: Invoice, refund: Refund, actor: Actor, why: str
) -> None:
    refund_transition(refund, "provider_failed")
    refund.failure = why[:500]
    refund.reconcile_due_at = None
    invoice.reserved_amount -= refund.amount
    await _refund_changed(session, invoice, refund, actor, "refund_failed")
